"""sjscc/training/selection.py: stratified halves, per-half rows that add up to the whole, the threshold picked
on half A and reported on half B, and ``sjscc eval --halves``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_spec

from sjscc.cli import main
from sjscc.common.bundle import save_bundle
from sjscc.common.model import build_split_model
from sjscc.training.data import Normalize, load_split
from sjscc.training.evaluate import encode, sweep
from sjscc.training.progressive_eval import progressive_sweep
from sjscc.training.selection import half_sweep, select_thresholds, split_halves


def test_split_halves_is_stratified_disjoint_and_seeded() -> None:
    labels = torch.tensor([0] * 10 + [1] * 7 + [2] * 4)
    a, b = split_halves(labels, 3)
    assert sorted(torch.cat([a, b]).tolist()) == list(range(21))  # disjoint and complete
    assert [int((labels[a] == c).sum()) for c in range(3)] == [5, 3, 2]  # n_c // 2 of each class in A
    again, _ = split_halves(labels, 3)
    other, _ = split_halves(labels, 4)
    assert torch.equal(a, again) and not torch.equal(a, other)
    for bad, message in ((torch.tensor([1]), "at least 2"), (torch.tensor([0, 1]), "half A is empty")):
        with pytest.raises(ValueError, match=message):
            split_halves(bad, 0)
    with pytest.raises(ValueError, match=">= 0"):
        split_halves(labels, -1)


def _row(mode: str, a: float, b: float, bits_a: float, bits_b: float, **extra) -> dict:
    return {"channel": "bsc", "p": 0.1, "mode": mode, **extra,
            "halves": {"A": {"accuracy_mean": a, "mean_payload_bits": bits_a},
                       "B": {"accuracy_mean": b, "mean_payload_bits": bits_b}}}


def test_select_thresholds_by_hand() -> None:
    rows = [_row("prefix", 0.80, 0.81, 64, 64, timesteps=1), _row("prefix", 0.90, 0.88, 128, 128, timesteps=2),
            _row("progressive", 0.893, 0.87, 70, 72, confidence=0.5),   # 0.7 points under all steps on A
            _row("progressive", 0.896, 0.86, 90, 91, confidence=0.9),   # 0.4 under: eligible, fewest bits
            _row("progressive", 0.899, 0.88, 110, 112, confidence=0.98)]
    (pick,) = select_thresholds(rows, margin=0.005)
    assert pick["confidence"] == 0.9 and pick["within_margin_on_A"]
    assert pick["reported_on"]["accuracy_mean"] == 0.86 and pick["all_steps_on_B"]["accuracy_mean"] == 0.88
    (strict,) = select_thresholds(rows, margin=0.002)
    assert strict["confidence"] == 0.98
    (none,) = select_thresholds(rows, margin=0.0)  # nobody matches all steps on A: the most accurate is taken
    assert none["confidence"] == 0.98 and not none["within_margin_on_A"]
    with pytest.raises(ValueError, match="margin"):
        select_thresholds(rows, margin=1.5)


@pytest.fixture(scope="module")
def progressive(tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(3)
    spec = tiny_spec("snn-progressive")
    return save_bundle(build_split_model(spec).eval(), spec, tmp_path_factory.mktemp("pbh") / "progressive",
                       [f"c{i}" for i in range(10)], {"kind": "bsc", "p": 0.1}, {"note": "random weights"})


def test_halves_add_up_to_the_whole(progressive, synthetic_cifar10: Path) -> None:
    model = progressive.build()
    data = load_split(synthetic_cifar10, "cifar10", "test", 0.1, 0, False)
    encoded = encode(model, data, Normalize(progressive.spec.mean, progressive.spec.std), torch.device("cpu"))
    halves = split_halves(encoded.labels, 0)
    n_a, n_b = len(halves[0]), len(halves[1])
    rows = progressive_sweep(model, encoded, ["bsc"], [0.0, 0.2], [0.3, 0.6], repeats=2, seed=5, halves=halves)
    for row in rows:
        for r in range(2):
            whole = (row["halves"]["A"]["accuracies"][r] * n_a + row["halves"]["B"]["accuracies"][r] * n_b)
            assert whole / (n_a + n_b) == pytest.approx(row["accuracies"][r], abs=1e-9)
        bits = row["halves"]["A"]["mean_payload_bits"] * n_a + row["halves"]["B"]["mean_payload_bits"] * n_b
        assert bits / (n_a + n_b) == pytest.approx(row["mean_payload_bits"], rel=1e-6)
    # the fixed pass draws the same noise as the sweep, under either draw keys
    for keys in ("setting", "position"):
        fixed = sweep(model, encoded, ["bsc"], [0.0, 0.2], repeats=2, seed=5, draw_keys=keys)
        split = half_sweep(model, encoded, ["bsc"], [0.0, 0.2], halves, repeats=2, seed=5, draw_keys=keys)
        for whole, parts in zip(fixed, split, strict=True):
            a, b = parts["halves"]["A"]["accuracies"], parts["halves"]["B"]["accuracies"]
            assert [(x * n_a + y * n_b) / (n_a + n_b) for x, y in zip(a, b, strict=True)] == pytest.approx(
                whole["accuracies"], abs=1e-9)


def test_eval_cli_halves(progressive, tiny_bundle, synthetic_cifar10: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "p.json"
    assert main(["eval", "--bundle", str(progressive.path), "--data-root", str(synthetic_cifar10), "--p", "0,0.1",
                 "--repeats", "2", "--confidence", "0.5,0.9", "--halves", "1", "--select-margin", "1",
                 "--energy-images", "0", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["halves"]["seed"] == 1 and sum(report["halves"]["n_images"]) == report["n_images"]
    assert [(s["p"], s["margin"]) for s in report["halves"]["selection"]] == [(0.0, 0.01), (0.1, 0.01)]
    assert "picked on A" in capsys.readouterr().out
    fixed = tmp_path / "f.json"
    assert main(["eval", "--bundle", str(tiny_bundle.path), "--data-root", str(synthetic_cifar10), "--p", "0.1",
                 "--repeats", "1", "--halves", "0", "--energy-images", "0", "--out", str(fixed)]) == 0
    (row,) = json.loads(fixed.read_text())["halves"]["rows"]
    assert set(row["halves"]) == {"A", "B"} and row["p"] == 0.1
    for extra, message in ((["--halves", "-1"], ">= 0"), (["--select-margin", "1"], "give --halves"),
                           (["--halves", "0", "--channel", "ge"], "GE")):
        assert main(["eval", "--bundle", str(tiny_bundle.path), "--data-root", str(synthetic_cifar10),
                     "--p", "0.1", *extra]) == 2
        assert message in capsys.readouterr().err
