"""Every ``sjscc edge`` setting is one row of ``sjscc/edge/settings.py``: the parser's flags are exactly the
table's, each row's variable sets it, and each row's default is what an empty environment parses to."""

from __future__ import annotations

from dataclasses import fields

import pytest
from settings_support import clear_environment, expected_default, parser_flags

from sjscc.cli import build_parser
from sjscc.edge.settings import SETTINGS, EdgeSettings

SAMPLES = {
    "--bundle": ("/b", "/b"), "--host": ("0.0.0.0", "0.0.0.0"), "--port": ("6000", 6000),
    "--compute-device": ("cpu", "cpu"), "--max-batch-size": ("3", 3), "--max-wait-ms": ("0.5", 0.5),
    "--max-queue": ("9", 9), "--drain-delay": ("1.5", 1.5), "--tls-cert": ("/c.pem", "/c.pem"),
    "--tls-key": ("/k.pem", "/k.pem"), "--tls-client-ca": ("/ca.pem", "/ca.pem"), "--torch-threads": ("2", 2),
}


def test_the_parser_has_exactly_the_table_flags() -> None:
    flags = [setting.flag for setting in SETTINGS]
    assert parser_flags("edge") == flags
    assert len(set(flags)) == len(flags)
    variables = [setting.variable for setting in SETTINGS]
    assert len(set(variables)) == len(variables) and all(v.startswith("SJSCC_") for v in variables)
    assert [f.name for f in fields(EdgeSettings)] == [setting.dest for setting in SETTINGS]
    assert set(SAMPLES) == set(flags)


def test_each_default_comes_from_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_environment(monkeypatch)
    settings = EdgeSettings.from_args(build_parser().parse_args(["edge"]))
    for setting in SETTINGS:
        assert getattr(settings, setting.dest) == expected_default(setting), setting.flag
    assert (settings.port, settings.max_batch_size, settings.max_wait_ms, settings.max_queue) == (50051, 8, 2.0, 64)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.variable)
def test_each_variable_sets_its_flag(setting, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_environment(monkeypatch)
    text, value = SAMPLES[setting.flag]
    monkeypatch.setenv(setting.variable, text)
    assert getattr(build_parser().parse_args(["edge"]), setting.dest) == value
    assert getattr(build_parser().parse_args(["edge", setting.flag, text]), setting.dest) == value


@pytest.mark.parametrize("path", ["docker-compose.yml", "docker-compose.gpu.yml", "deploy/k8s/edge.yaml",
                                  "deploy/k8s/device.yaml", "deploy/k8s/gpu/edge-gpu.yaml"])
def test_container_files_set_only_declared_variables(path: str) -> None:
    """Every SJSCC_ variable a container file hands a service is a row of the device or the edge table (build
    arguments and Compose's own substitutions excepted)."""
    import re
    from pathlib import Path

    from sjscc.device.settings import SETTINGS as DEVICE_SETTINGS

    text = (Path(__file__).resolve().parents[2] / path).read_text()
    declared = {s.variable for s in (*SETTINGS, *DEVICE_SETTINGS)}
    handed = set(re.findall(r"^\s*(SJSCC_[A-Z_]+):", text, flags=re.MULTILINE))  # Compose: environment keys
    handed |= set(re.findall(r"name:\s*(SJSCC_[A-Z_]+)", text))  # Kubernetes: env entries
    assert handed, f"{path} sets no SJSCC_ variable"
    assert handed <= declared, sorted(handed - declared)
