"""scripts/reproduce-cpu.sh turns run names into training commands; with ``SJSCC="echo sjscc"`` it prints them
instead of training, and the printed overrides must build the configuration that the name promises."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sjscc.common.config import load_config
from sjscc.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
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


LADDER = {1: 32, 2: 16, 4: 8}  # quantizer bits -> latent channels c2 of the 512-bit CNN ladder


def test_ladder_stage_trains_the_matched_bits_cnns_like_their_config_files(tmp_path: Path) -> None:
    """Each rung sends n bit planes of c2 = 32/n channels at (4, 4): 512 bits, like the shipped pair; the
    config files of the ladder hold the same settings as the script's runs."""
    commands = planned(tmp_path, stage="ladder", LINEAGE="v3")
    assert len(commands) == 6
    for (n, c2), (step2, step3) in zip(LADDER.items(), zip(commands[::2], commands[1::2], strict=True), strict=True):
        for step, argv in ((2, step2), (3, step3)):
            config = config_of(argv)
            codec = config.model.codec_config
            assert config.model.codec == f"cnn-q{n}" and config.alpha is None and config.seed == 0
            assert (codec.c2, codec.timesteps, codec.in_channels) == (c2, n, 256)
            assert codec.timesteps * codec.c2 * 4 * 4 == 512
            assert config.out.endswith(f"cnn-T{n}-bsc0.15-c{c2}/step{step}")
            shipped = load_config(TrainConfig, ROOT / "sjscc/training/configs" / f"cpu-cnn-wide-q{n}-step{step}.yaml")
            assert shipped.model == config.model and shipped.optim == config.optim
            assert (shipped.alpha, shipped.channel, shipped.seed, shipped.step) == (
                config.alpha, config.channel, config.seed, config.step)
            assert (shipped.freeze_head, shipped.cache_features) == (config.freeze_head, config.cache_features)
            assert shipped.out == f"runs/cpu-wide/cnn-T{n}-bsc0.15-c{c2}/step{step}"


def test_seeds_stage_trains_seeds_one_and_two_of_the_three_models(tmp_path: Path) -> None:
    configs = [config_of(argv) for argv in planned(tmp_path, stage="seeds", LINEAGE="v3")]
    assert len(configs) == 12
    trained = sorted({(c.model.codec, c.model.codec_config.c2, c.seed) for c in configs})
    assert trained == [("cnn-q1", 32, 1), ("cnn-q1", 32, 2), ("cnn-q8", 4, 1), ("cnn-q8", 4, 2),
                       ("snn", 4, 1), ("snn", 4, 2)]
    assert configs[1].export == str(tmp_path / "runs" / "bundles" / "snn-T8-bsc0.15-s1")  # not the shipped folder


def test_chained_variants_and_a_bad_variant_part(tmp_path: Path) -> None:
    step2, _ = planned(tmp_path, "snn-T8-bsc0.15-ihf-m-a0.7-s3")
    config = config_of(step2)
    assert (config.model.codec_config.reconstructor_neuron, config.alpha, config.seed) == ("ihf-m", 0.7, 3)
    out = run_train(tmp_path, "cnn-T1-bsc0.15-c32-x9")
    assert out.returncode != 0 and "unknown variant x9" in out.stderr and "sjscc train" not in out.stdout


def test_bursts_stage_sweeps_the_ge_channel_with_and_without_the_interleaver(tmp_path: Path) -> None:
    out = run_train(tmp_path, stage="bursts", RESULTS=str(tmp_path / "results"), BURST="12")
    assert out.returncode == 0, out.stderr
    commands = [shlex.split(line) for line in out.stdout.splitlines() if line.startswith("sjscc eval")]
    assert len(commands) == 6
    for argv in commands:
        assert argv[argv.index("--channel") + 1] == "ge" and argv[argv.index("--burst") + 1] == "12"
        assert argv[argv.index("--split") + 1] == "val"
        target = Path(argv[argv.index("--out") + 1]).name
        assert ("--interleave" in argv) == target.endswith("-ge-il.json")
    assert [Path(a[a.index("--bundle") + 1]).name for a in commands[::2]] == [
        "default", "baseline-cnn-q8", "cnn-T1-bsc0.15-c32"]


def test_a_bundle_as_backbone_starts_step_two_from_its_backbone_only(tmp_path: Path) -> None:
    """LINEAGE v3s: BACKBONE is a bundle folder (the step-1 checkpoint was not kept), so step 2 reads its head
    and tail through ``init_bundle`` and leaves its codec out; step 3 still starts from step 2."""
    bundle = tmp_path / "bb"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    step2, step3 = (config_of(argv) for argv in planned(tmp_path, "cnn-T1-bsc0.15-c32-s2", LINEAGE="v3s"))
    assert step2.init == "" and step2.init_bundle == str(bundle) and step2.init_bundle_codec is False
    assert (step2.model.codec, step2.model.codec_config.c2, step2.seed) == ("cnn-q1", 32, 2)
    assert step3.init == step2.out and step3.init_bundle == ""


def test_lineage_v3s_defaults_to_the_shipped_cnn_bundle_and_its_own_trees(tmp_path: Path) -> None:
    """The lineage's default paths are relative to the checkout, so the script runs from a copy in ``tmp_path``
    (whose runs/ holds nothing yet) with the one bundle it needs there."""
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / SCRIPT.name
    script.write_text(SCRIPT.read_text())
    (tmp_path / "bundles" / "baseline-cnn-q8").mkdir(parents=True)
    (tmp_path / "bundles" / "baseline-cnn-q8" / "manifest.json").write_text("{}")
    # the copy has no .venv beside it: the script asks sjscc.training.runs with the interpreter running the tests
    env = {**os.environ, "SJSCC": "echo sjscc", "JOBS": "1", "LINEAGE": "v3s", "PYTHON": sys.executable}
    for name in ("RUNS", "BACKBONE", "SHIPPED", "BUNDLES", "RESULTS", "CODEC"):
        env.pop(name, None)
    out = subprocess.run(["bash", str(script), "train", "snn-T8-bsc0.15"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    step2, step3 = (config_of(shlex.split(line)) for line in out.stdout.splitlines() if line.startswith("sjscc train"))
    assert step2.init_bundle == "bundles/baseline-cnn-q8" and not step2.init_bundle_codec
    assert step3.export == "runs/cpu-wide-s/shipped/default"  # retrained: never over the shipped bundle


def test_matched_stage_trains_the_ladder_and_three_seeds_and_sweeps_each(tmp_path: Path) -> None:
    results = tmp_path / "results"
    out = run_train(tmp_path, stage="matched", LINEAGE="v3s", RESULTS=str(results), REPEATS="5",
                    GE_PS="0.05,0.1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    trains = [config_of(shlex.split(line)) for line in lines if line.startswith("sjscc train")]
    assert len(trains) == 22
    assert sorted({(c.model.codec, c.model.codec_config.c2, c.seed) for c in trains}) == [
        ("cnn-q1", 32, 0), ("cnn-q1", 32, 1), ("cnn-q1", 32, 2), ("cnn-q2", 16, 0), ("cnn-q4", 8, 0),
        ("cnn-q8", 4, 0), ("cnn-q8", 4, 1), ("cnn-q8", 4, 2), ("snn", 4, 0), ("snn", 4, 1), ("snn", 4, 2)]
    evals = [shlex.split(line) for line in lines if line.startswith("sjscc eval")]
    swept = sorted(Path(a[a.index("--out") + 1]).name for a in evals)
    for name in ("snn-T8-bsc0.15", "cnn-T8-bsc0.15", "cnn-T1-bsc0.15-c32"):
        assert {f"{name}-{c}.json" for c in ("bsc", "bec", "ge", "ge-il")} <= set(swept)
    for name in ("cnn-T2-bsc0.15-c16", "cnn-T4-bsc0.15-c8"):
        assert {f"{name}-bsc.json", f"{name}-bec.json"} <= set(swept) and f"{name}-ge.json" not in swept
    assert "snn-T8-bsc0.15-s1-bsc.json" in swept and "snn-T8-bsc0.15-s1-bec.json" not in swept
    assert len(swept) == 3 * 4 + 2 * 2 + 6
    for argv in evals:
        assert argv[argv.index("--repeats") + 1] == "5" and argv[argv.index("--split") + 1] == "val"
        if argv[argv.index("--channel") + 1] == "ge":
            assert argv[argv.index("--p") + 1] == "0.05,0.1"


def test_rate_ladder_fine_tunes_cnn_q8_to_each_rate_at_its_latent_size(tmp_path: Path) -> None:
    """Issue 15's fixed-rate ladder: CNN-q<n> on CNN-q8's 4 x 4 x 4 latent (64 n bits), backbone and codec from
    the shipped CNN-q8 bundle, swept at BSC 0, 0.1, 0.2."""
    out = run_train(tmp_path, "3", "5", stage="rate-ladder", RESULTS=str(tmp_path / "results"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    trains = [config_of(shlex.split(line)) for line in lines if line.startswith("sjscc train")]
    assert [(c.step, c.model.codec, c.model.codec_config.timesteps) for c in trains] == [
        (2, "cnn-q3", 3), (3, "cnn-q3", 3), (2, "cnn-q5", 5), (3, "cnn-q5", 5)]
    for step2, step3 in (trains[:2], trains[2:]):
        assert step2.init_bundle == "bundles/baseline-cnn-q8" and step2.init_bundle_codec and step2.init == ""
        assert step3.init == step2.out and step3.export.endswith(f"rate-ladder/bundles/{step2.model.codec}")
        assert step2.model.codec_config.c2 == 4 and step2.alpha is None
    evals = [shlex.split(line) for line in lines if line.startswith("sjscc eval")]
    assert [a[a.index("--p") + 1] for a in evals] == ["0,0.1,0.2"] * 2
    assert [Path(a[a.index("--out") + 1]).name for a in evals] == ["cnn-q3-rate.json", "cnn-q5-rate.json"]


def test_progressive_eval_sweeps_the_bundle_and_cnn_q8_cut_after_t_planes(tmp_path: Path) -> None:
    out = run_train(tmp_path, stage="progressive-eval", RESULTS=str(tmp_path / "results"))
    assert out.returncode == 0, out.stderr
    evals = [shlex.split(line) for line in out.stdout.splitlines() if line.startswith("sjscc eval")]
    assert [a[a.index("--bundle") + 1] for a in evals] == ["bundles/progressive", "bundles/baseline-cnn-q8"]
    for argv in evals:
        assert argv[argv.index("--p") + 1] == "0,0.1,0.2" and argv[argv.index("--repeats") + 1] == "10"
        assert Path(argv[argv.index("--out") + 1]).parent == tmp_path / "results" / "progressive"
    assert "0.98" in evals[0][evals[0].index("--confidence") + 1].split(",") and "--prefixes" in evals[1]
