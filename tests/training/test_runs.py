"""Run names and lineages (sjscc.training.runs): the grammar, the overrides a name becomes, where bundles land."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sjscc.training.runs import (
    LINEAGES,
    RunName,
    bundle_folder,
    describe,
    lineage,
    main,
    overrides,
    parse_run_name,
    plan,
    stage_runs,
    sweeps,
)


def settings(name: str) -> list[str]:
    argv = overrides(name)
    assert argv[::2] == ["--set"] * (len(argv) // 2)
    return argv[1::2]


def test_a_plain_snn_name_sets_timesteps_and_channel_only() -> None:
    assert parse_run_name("snn-T8-bsc0.15") == RunName("snn", 8, "bsc", "0.15", ())
    assert settings("snn-T8-bsc0.15") == ["model.codec_config.timesteps=8", "channel.kind=bsc", "channel.p=0.15"]


def test_a_cnn_name_picks_the_quantizer_and_drops_the_regularizer() -> None:
    assert settings("cnn-T4-bec.25") == ["model.codec_config.timesteps=4", "channel.kind=bec", "channel.p=.25",
                                         "model.codec=cnn-q4", "alpha=null"]


def test_chained_variants_apply_in_order() -> None:
    assert parse_run_name("snn-T8-bsc0.15-ihf-m-a0.7-s3").variants == ("ihfm", "a0.7", "s3")
    assert settings("snn-T8-bsc0.15-ihf-m-a0.7-s3")[3:] == [
        "model.codec_config.reconstructor_neuron=ihf-m", "alpha=null", "alpha=0.7", "seed=3"]
    assert settings("cnn-T1-bsc0.15-c32-s2")[5:] == ["model.codec_config.c2=32", "seed=2"]
    assert settings("snn-T8-bsc0.25-if")[3:] == ["model.codec_config.reconstructor_neuron=if", "alpha=null"]


@pytest.mark.parametrize("name", ["rnn-T8-bsc0.15", "snn-T0-bsc0.15", "snn-T8-awgn0.1", "snn-T8-bsc2", "snn-8-bsc0.1"])
def test_names_off_the_grammar_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=f"bad run name {name}: want <snn|cnn>"):
        overrides(name)


@pytest.mark.parametrize("part", ["bogus", "a0.4", "c0", "c1000", "s01", "s100"])
def test_unknown_variants_are_refused_by_name(part: str) -> None:
    with pytest.raises(ValueError, match=f"^unknown variant {part}$"):
        parse_run_name(f"snn-T8-bsc0.15-{part}")


def test_only_the_shipped_pair_exports_to_the_shipped_folder() -> None:
    assert bundle_folder("snn-T8-bsc0.15", "bundles", "runs/b") == "bundles/default"
    assert bundle_folder("cnn-T8-bsc0.15", "bundles", "runs/b") == "bundles/baseline-cnn-q8"
    assert bundle_folder("snn-T8-bsc0.15-s1", "bundles", "runs/b") == "runs/b/snn-T8-bsc0.15-s1"


def test_sweeps_follow_the_training_channel_and_the_matched_plan() -> None:
    assert sweeps("cnn-T8-bsc0.15") == ["bsc", "bec"] and sweeps("snn-T4-bec0.25") == ["bec"]
    assert sweeps("snn-T8-bsc0.25-if") == ["bsc"]
    assert sweeps("cnn-T1-bsc0.15-c32", matched=True) == ["bsc", "bec", "ge", "ge-il"]
    assert sweeps("cnn-T2-bsc0.15-c16", matched=True) == ["bsc", "bec"]
    assert sweeps("snn-T8-bsc0.15-s1", matched=True) == ["bsc"]


def test_lineages_and_their_errors() -> None:
    assert list(LINEAGES) == ["v1", "v2", "v3", "v3s"]
    assert lineage("v3s").backbone == "bundles/baseline-cnn-q8" and lineage("v3").shipped == "bundles"
    assert {lineage(n).codec for n in ("v3", "v3s")} == {"cpu-codec-wide"}
    with pytest.raises(ValueError, match="unknown LINEAGE v9: want v1, v2, v3 or v3s"):
        lineage("v9")


def test_stages_name_valid_runs() -> None:
    assert stage_runs("fig4", 4)[:2] == ["snn-T4-bsc0.15", "cnn-T4-bsc0.15"] and len(stage_runs("fig4")) == 8
    assert len(stage_runs("matched")) == 11 and len(set(stage_runs("matched"))) == 11
    for stage in ("default", "ablations", "ladder", "seeds", "bursts", "matched"):
        for name in stage_runs(stage):
            overrides(name)
    with pytest.raises(ValueError, match="stage train has no fixed runs"):
        stage_runs("train")


def test_the_plan_is_bash_that_round_trips() -> None:
    """``describe NAME`` from the plan sets the same values in bash (a folder with a space stays one word), and
    refuses a run that was not planned."""
    code = "\n".join(plan(["snn-T8-bsc0.15", "cnn-T8-bsc0.15", "snn-T8-bsc0.15"], "my shipped", "b"))
    script = code + '\ndescribe cnn-T8-bsc0.15\nprintf "%s\\n" "$run_bundle" "${run_overrides[@]}" "$run_sweeps"' \
        ' "$run_matched_sweeps"\ndescribe snn-T4-bsc0.15 || echo refused'
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout.splitlines() == ["my shipped/baseline-cnn-q8", *overrides("cnn-T8-bsc0.15"), "bsc bec",
                                       "bsc bec ge ge-il", "refused"]
    assert run.stderr.strip() == "run snn-T4-bsc0.15 was not planned"
    assert describe("snn-T8-bsc0.15", "s", "b")[0] == "run_bundle=s/default"


def test_command_line_exit_status_and_messages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lineage", "v3s"]) == 0
    assert shlex.split(capsys.readouterr().out)[1] == "bb=bundles/baseline-cnn-q8"
    assert main(["overrides", "snn-T8-bsc0.15-x9"]) == 2
    assert capsys.readouterr().err.strip() == "unknown variant x9"
    assert main(["plan", "snn-T8-bsc0.15", "rnn-T8-bsc0.15", "--shipped", "s", "--bundles", "b"]) == 2
    assert capsys.readouterr().err.startswith("bad run name rnn-T8-bsc0.15")
    run = subprocess.run([sys.executable, "-m", "sjscc.training.runs", "stage", "ladder"], capture_output=True,
                         text=True, check=True)
    assert run.stdout.split() == ["cnn-T1-bsc0.15-c32", "cnn-T2-bsc0.15-c16", "cnn-T4-bsc0.15-c8"]


def test_the_script_without_a_stage_prints_its_usage_and_trains_nothing() -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "reproduce-cpu.sh"
    env = {**os.environ, "SJSCC": "echo sjscc", "PYTHON": sys.executable}
    quiet = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and "usage: scripts/reproduce-cpu.sh backbone|" in quiet.stdout
    assert "LINEAGE picks a backbone" in quiet.stdout and "sjscc train" not in quiet.stdout
    wrong = subprocess.run(["bash", str(script), "everything"], env=env, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and wrong.stderr.startswith("unknown stage everything\n") and not wrong.stdout
