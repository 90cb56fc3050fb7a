"""Every ``sjscc device`` setting is one row of ``sjscc/device/settings.py``: the parser's flags are exactly the
table's, each row's variable sets it, each row's default is what an empty environment parses to, and the defaults
the services' own constructors carry agree with the table."""

from __future__ import annotations

import inspect
from dataclasses import fields

import pytest
from settings_support import clear_environment, expected_default, parser_flags

from sjscc.cli import build_parser
from sjscc.device.settings import MAX_IMAGE_BYTES, RPC_TIMEOUT_S, SETTINGS, DeviceSettings

# A valid value for each variable, different from the default, and what it parses to.
SAMPLES = {
    "--bundle": ("/b", "/b"), "--edge": ("e1:1,e2:2", "e1:1,e2:2"), "--host": ("0.0.0.0", "0.0.0.0"),
    "--port": ("8080", 8080), "--channel": ("ge", "ge"), "--p": ("0.25", 0.25), "--burst": ("3", 3.0),
    "--interleave": ("7", "7"), "--seed": ("11", "11"), "--erasure-policy": ("mask", "mask"),
    "--compute-device": ("cuda:1", "cuda:1"), "--max-image-bytes": ("1000", 1000),
    "--max-image-pixels": ("4096", 4096), "--rpc-timeout": ("2.5", 2.5), "--max-in-flight": ("3", 3),
    "--api-token": ("t0k", "t0k"), "--edge-ca": ("/ca.pem", "/ca.pem"), "--tls-cert": ("/c.pem", "/c.pem"),
    "--tls-key": ("/k.pem", "/k.pem"), "--edge-server-name": ("edge.local", "edge.local"),
    "--keepalive": ("1.5", 1.5), "--max-batch-size": ("4", 4), "--torch-threads": ("2", 2),
    "--runtime": ("onnx", "onnx"),
    "--snr-db": ("3.5", 3.5), "--modulation": ("16qam", "16qam"), "--coherence": ("64", 64),
    "--decisions": ("soft", "soft"), "--soft-bits": ("8", 8),
}


def test_the_parser_has_exactly_the_table_flags() -> None:
    flags = [setting.flag for setting in SETTINGS]
    assert parser_flags("device") == flags
    assert len(set(flags)) == len(flags)
    variables = [setting.variable for setting in SETTINGS]
    assert len(set(variables)) == len(variables) and all(v.startswith("SJSCC_") for v in variables)
    assert [f.name for f in fields(DeviceSettings)] == [setting.dest for setting in SETTINGS]
    assert set(SAMPLES) == set(flags)


def test_each_default_comes_from_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_environment(monkeypatch)
    settings = DeviceSettings.from_args(build_parser().parse_args(["device"]))
    for setting in SETTINGS:
        assert getattr(settings, setting.dest) == expected_default(setting), setting.flag
    assert (settings.rpc_timeout, settings.max_image_bytes, settings.channel, settings.p) == (5.0, 10485760, "none",
                                                                                              0.0)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.variable)
def test_each_variable_sets_its_flag(setting, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_environment(monkeypatch)
    text, value = SAMPLES[setting.flag]
    monkeypatch.setenv(setting.variable, text)
    args = build_parser().parse_args(["device"])
    assert getattr(args, setting.dest) == value
    assert getattr(build_parser().parse_args(["device", setting.flag, text]), setting.dest) == value


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.type is not None], ids=lambda s: s.variable)
def test_a_bad_variable_is_one_line_naming_it(setting, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    clear_environment(monkeypatch)
    monkeypatch.setenv(setting.variable, "bogus")
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["device"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {setting.flag}: {setting.variable}='bogus'" in error and error.count("\n") == 1


def test_the_services_own_defaults_agree_with_the_table() -> None:
    from sjscc.device.client import EdgeClient
    from sjscc.device.pipeline import DevicePipeline

    client = inspect.signature(EdgeClient).parameters
    assert client["rpc_timeout_s"].default == RPC_TIMEOUT_S
    assert client["keepalive_s"].default == next(s.default for s in SETTINGS if s.flag == "--keepalive")
    assert inspect.signature(DevicePipeline).parameters["max_image_bytes"].default == MAX_IMAGE_BYTES
    assert inspect.signature(DevicePipeline).parameters["runtime"].default == "torch"
