"""``sjscc eval`` on the burst channel, with the interleaver, and its energy estimate (tiny random bundle:
plumbing and exact identities, not accuracy)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from sjscc.cli import main
from sjscc.common.bundle import load_bundle
from sjscc.training.data import Normalize, load_split
from sjscc.training.evaluate import encode, parse_channels, sweep


def test_eval_ge_with_interleaver_and_energy(tiny_bundle, synthetic_cifar10: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ge.json"
    code = main(["eval", "--bundle", str(tiny_bundle.path), "--data-root", str(synthetic_cifar10),
                 "--dataset", "cifar10", "--split", "test", "--channel", "ge,bsc", "--p", "0,0.2", "--burst", "4",
                 "--interleave", "7", "--repeats", "2", "--batch-size", "16", "--limit", "30",
                 "--energy-images", "20", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    ge = [row for row in report["results"] if row["channel"] == "ge"]
    bsc = [row for row in report["results"] if row["channel"] == "bsc"]
    assert [row["p"] for row in ge] == [0.0, 0.2] and all(row["burst"] == 4.0 for row in ge)
    assert all(row["interleave"] == 7 for row in ge + bsc) and all("burst" not in row for row in bsc)
    assert ge[0]["accuracies"] == [report["clean_accuracy"]] * 2  # p = 0: no bit changes, interleaved or not
    energy = report["energy"]
    assert energy["images"] == 20 and energy["constants"] == {"pj_per_ac": 0.9, "pj_per_mac": 4.6,
                                                              "source": energy["constants"]["source"]}
    assert set(energy["device"]["parts"]) == {"head", "encoder"}
    assert set(energy["edge"]["parts"]) == {"reconstructor", "converter", "tail"}
    # the reconstructor's first layer reads the spikes: accumulates, and its second reads spikes too
    assert energy["edge"]["parts"]["reconstructor"]["accumulates"] > 0
    assert energy["device"]["parts"]["head"]["accumulates"] == 0 and energy["device"]["parts"]["head"]["macs"] > 0
    total = energy["device"]["energy_uj"] + energy["edge"]["energy_uj"]
    assert energy["total_energy_uj"] == pytest.approx(total)
    printed = capsys.readouterr().out
    assert "ge L=4 +il" in printed and "energy per image over 20 images" in printed


def test_interleaving_changes_the_ge_draw_but_not_clean_decoding(tiny_bundle, synthetic_cifar10: Path) -> None:
    bundle = load_bundle(tiny_bundle.path)
    model = bundle.build(device=torch.device("cpu"))
    data = load_split(synthetic_cifar10, "cifar10", "test")
    encoded = encode(model, data, Normalize(bundle.spec.mean, bundle.spec.std), torch.device("cpu"))
    plain = sweep(model, encoded, ["ge"], [0.0, 0.3], repeats=3, seed=2, burst=8)
    spread = sweep(model, encoded, ["ge"], [0.0, 0.3], repeats=3, seed=2, burst=8, interleave=1)
    again = sweep(model, encoded, ["ge"], [0.0, 0.3], repeats=3, seed=2, burst=8, interleave=1)
    assert plain[0]["accuracies"] == spread[0]["accuracies"]
    assert spread == again  # seeded
    assert "interleave" not in plain[0] and spread[1]["interleave"] == 1 and spread[1]["burst"] == 8.0


def test_parse_channels_knows_ge() -> None:
    assert parse_channels("bsc,ge") == ["bsc", "ge"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--channel", "ge", "--burst", "0.5"], "burst length must be a finite number >= 1"),
    (["--channel", "ge", "--p", "0.6", "--burst", "1"], r"at most L/\(L\+1\) = 0.5"),
    (["--interleave", "-1"], "--interleave must be a seed >= 0"),
    (["--energy-images", "-1"], "--energy-images must be >= 0"),
])
def test_bad_link_options_are_clear(tiny_bundle, synthetic_cifar10: Path, argv: list[str], message: str,
                                    capsys) -> None:
    assert main(["eval", "--bundle", str(tiny_bundle.path), "--data-root", str(synthetic_cifar10), *argv]) == 2
    error = capsys.readouterr().err
    assert error.startswith("sjscc eval: error:") and re.search(message, error), error
