"""scripts/reproduce-cpu.sh turns run names into training commands; with ``SJSCC="echo sjscc"`` it prints them
instead of training, and the printed overrides must build the configuration that the name promises."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from sjscc.common.config import load_config
from sjscc.training.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "reproduce-cpu.sh"


def run_train(tmp_path: Path, *names: str, stage: str = "train", **extra: str) -> subprocess.CompletedProcess:
    """``reproduce-cpu.sh STAGE NAMES`` in a tree under ``tmp_path``, printing the commands instead of training.
    An empty ``extra`` value falls back to the script's default (it reads ``${VAR:-default}``)."""
    env = {**os.environ, "SJSCC": "echo sjscc", "RUNS": str(tmp_path / "runs"), "BACKBONE": str(tmp_path / "bb"),
           "SHIPPED": str(tmp_path / "shipped"), "JOBS": "1", **extra}
    return subprocess.run(["bash", str(SCRIPT), stage, *names], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def planned(tmp_path: Path, *names: str, **extra: str) -> list[list[str]]:
    out = run_train(tmp_path, *names, **extra)
    assert out.returncode == 0, out.stderr
    return [shlex.split(line) for line in out.stdout.splitlines() if line.startswith("sjscc train")]


def config_of(argv: list[str]) -> TrainConfig:
    config = argv[argv.index("--config") + 1]
    overrides = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--set"]
    assert "--resume" in argv
    return load_config(TrainConfig, ROOT / config, overrides)


def test_snn_variant_name_becomes_its_configuration(tmp_path: Path) -> None:
    step2, step3 = planned(tmp_path, "snn-T4-bec0.25-ihfm")
    first, second = config_of(step2), config_of(step3)
    assert (first.step, second.step) == (2, 3)
    for config in (first, second):
        assert config.model.codec == "snn" and config.model.codec_config.timesteps == 4
        assert config.model.codec_config.reconstructor_neuron == "ihf-m" and config.alpha is None
        assert (config.channel.kind, config.channel.p) == ("bec", 0.25)
        assert config.feature_cache == str(tmp_path / "runs" / "feature-cache")
    assert first.init == str(tmp_path / "bb") and first.out == str(tmp_path / "runs" / "snn-T4-bec0.25-ihfm" / "step2")
    assert second.init == first.out and second.export == str(tmp_path / "runs" / "bundles" / "snn-T4-bec0.25-ihfm")
    assert (tmp_path / "runs" / "timings.jsonl").read_text().count('"run": "snn-T4-bec0.25-ihfm"') == 1


def test_shipped_names_export_to_the_shipped_folder(tmp_path: Path) -> None:
    snn = [config_of(argv) for argv in planned(tmp_path, "snn-T8-bsc0.15-a0.7", "cnn-T8-bsc0.15")]
    assert snn[0].alpha == 0.7 and snn[0].model.codec == "snn"
    assert snn[1].export == str(tmp_path / "runs" / "bundles" / "snn-T8-bsc0.15-a0.7")
    assert snn[2].model.codec == "cnn-q8" and snn[2].alpha is None
    assert snn[3].export == str(tmp_path / "shipped" / "baseline-cnn-q8")


@pytest.mark.parametrize("name", ["snn-T8-bsc0.15-bogus", "rnn-T8-bsc0.15"])
def test_unknown_names_fail(tmp_path: Path, name: str) -> None:
    out = run_train(tmp_path, name)
    assert out.returncode != 0
    assert "bad run name rnn" in out.stderr or "unknown variant bogus" in out.stderr
    assert "sjscc train" not in out.stdout


def test_lineage_v3_trains_the_wide_codec(tmp_path: Path) -> None:
    """The half-width backbone's split feature is (256, 4, 4): c1 = 256/8, c2 = 256/64, 512 bits at T = 8."""
    for argv in planned(tmp_path, "snn-T8-bsc0.15", LINEAGE="v3"):
        config = config_of(argv)
        assert config.model.backbone.kwargs == {"width": 32}
        codec = config.model.codec_config
        assert (codec.in_channels, codec.c1, codec.c2, codec.timesteps) == (256, 32, 4, 8)
        assert codec.c2 * 4 * 4 * codec.timesteps == 512
    assert config.export == str(tmp_path / "shipped" / "default")


def test_unknown_lineage_fails(tmp_path: Path) -> None:
    out = run_train(tmp_path, "snn-T8-bsc0.15", LINEAGE="v9")
    assert out.returncode == 2 and "unknown LINEAGE v9" in out.stderr and "sjscc train" not in out.stdout


def planned_stage(tmp_path: Path, stage: str) -> TrainConfig:
    """The one ``sjscc train`` call of a step-1 stage (those ignore RUNS, BACKBONE and SHIPPED)."""
    (argv,) = planned(tmp_path, stage=stage)
    return config_of(argv)


@pytest.mark.parametrize(("stage", "after"), [("backbone-long", "backbone"), ("backbone-wide-extend", "backbone-wide")])
def test_backbone_legs_chain(tmp_path: Path, stage: str, after: str) -> None:
    """A second step-1 leg starts from the first leg's output and keeps its architecture."""
    first, second = planned_stage(tmp_path, after), planned_stage(tmp_path, stage)
    assert first.step == second.step == 1 and not first.init
    assert second.init == first.out and second.out != first.out
    assert second.model.backbone == first.model.backbone


def test_lineage_v3_codecs_start_from_the_last_wide_leg(tmp_path: Path) -> None:
    step2, _ = planned(tmp_path, "cnn-T8-bsc0.15", LINEAGE="v3", BACKBONE="")  # empty: the lineage's backbone
    assert config_of(step2).init == planned_stage(tmp_path, "backbone-wide-extend").out
