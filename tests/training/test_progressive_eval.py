"""Evaluation of a progressive bundle: the stopping rule, fixed prefixes, common noise with the fixed sweep, CLI."""

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
from sjscc.training.evaluate import binary_seed, encode, sweep
from sjscc.training.progressive_eval import (
    parse_thresholds,
    prefix_probabilities,
    progressive_sweep,
    stopping_step,
)


@pytest.fixture(scope="module")
def progressive_bundle(tmp_path_factory: pytest.TempPathFactory):
    """A progressive bundle with random weights: exercises the evaluation, claims no accuracy."""
    torch.manual_seed(3)
    spec = tiny_spec("snn-progressive")
    return save_bundle(build_split_model(spec).eval(), spec, tmp_path_factory.mktemp("pb") / "progressive",
                       [f"c{i}" for i in range(10)], {"kind": "bsc", "p": 0.1}, {"note": "random weights"})


@pytest.fixture(scope="module")
def encoded(progressive_bundle, synthetic_cifar10: Path):
    model = progressive_bundle.build()
    data = load_split(synthetic_cifar10, "cifar10", "test", 0.1, 0, False)
    return model, encode(model, data, Normalize(progressive_bundle.spec.mean, progressive_bundle.spec.std),
                         torch.device("cpu"))


def test_parse_thresholds() -> None:
    assert parse_thresholds("0.5, 0.9,0.5") == [0.5, 0.9]
    for bad, message in (("0.5,x", "not a number"), ("0", r"\(0, 1\]"), ("1.5", r"\(0, 1\]"), ("nan", r"\(0, 1\]")):
        with pytest.raises(ValueError, match=message):
            parse_thresholds(bad)


def test_stopping_step_by_hand() -> None:
    confidence = torch.tensor([[0.2, 0.95, 0.5], [0.85, 0.1, 0.6], [0.5, 0.1, 0.7]])  # [T=3, N=3]
    assert stopping_step(confidence, 0.8).tolist() == [2, 1, 3]  # image 3 never reaches 0.8: all T steps
    assert stopping_step(confidence, 0.1).tolist() == [1, 1, 1]
    assert stopping_step(confidence, 0.6).tolist() == [2, 1, 2]


def test_rows_against_the_fixed_sweep_and_by_hand(encoded) -> None:
    model, bits = encoded
    thresholds = [1e-9, 0.3, 1.0]
    rows = progressive_sweep(model, bits, ["bsc"], [0.0, 0.1], thresholds, repeats=2, seed=5)
    fixed = sweep(model, bits, ["bsc"], [0.0, 0.1], repeats=2, seed=5)
    bits_per_step = 2 * 8 * 8
    for p in (0.0, 0.1):
        here = [r for r in rows if r["p"] == p]
        prefix = {r["timesteps"]: r for r in here if r["mode"] == "prefix"}
        rule = {r["confidence"]: r for r in here if r["mode"] == "progressive"}
        assert sorted(prefix) == [1, 2, 3, 4] and sorted(rule) == sorted(thresholds)
        # same noise as the fixed sweep: the t = T prefix is its row
        full = next(r for r in fixed if r["p"] == p)
        assert prefix[4]["accuracies"] == pytest.approx(full["accuracies"], abs=1e-12)
        assert prefix[2]["mean_payload_bits"] == 2 * bits_per_step
        # a threshold every image reaches at once stops at t = 1; one nobody reaches sends all T steps
        assert rule[1e-9]["accuracies"] == prefix[1]["accuracies"] and rule[1e-9]["mean_steps"] == 1.0
        assert rule[1e-9]["steps_distribution"] == [1.0, 0.0, 0.0, 0.0]
        assert rule[1.0]["accuracies"] == prefix[4]["accuracies"] and rule[1.0]["mean_payload_bits"] == 4 * 128
        # the middle threshold by hand, repeat 0
        generator = torch.Generator().manual_seed(binary_seed(5, 0, "bsc", p))
        probs = prefix_probabilities(model, bits, "bsc", p, generator, torch.device("cpu"))
        confidence, predicted = probs.max(-1)
        stop = [next((t for t in range(4) if confidence[t, n] >= 0.3), 3) for n in range(len(bits))]
        hits = sum(int(predicted[stop[n], n] == bits.labels[n]) for n in range(len(bits)))
        assert rule[0.3]["accuracies"][0] == pytest.approx(hits / len(bits))
        distribution = rule[0.3]["steps_distribution"]
        assert sum(distribution) == pytest.approx(1.0)
        assert rule[0.3]["mean_payload_bits"] == pytest.approx(rule[0.3]["mean_steps"] * bits_per_step)
        assert rule[0.3]["mean_steps"] == pytest.approx(sum((t + 1) * f for t, f in enumerate(distribution)))


def test_fixed_model_is_refused(tiny_bundle, encoded) -> None:
    _, bits = encoded
    with pytest.raises(ValueError, match="no prefix decoder"):
        progressive_sweep(tiny_bundle.build(), bits, ["bsc"], [0.0], [0.9])


def test_eval_cli_confidence_rows_and_rate_plot(progressive_bundle, tiny_bundle, synthetic_cifar10: Path,
                                                tmp_path: Path, capsys) -> None:
    out, figure = tmp_path / "eval.json", tmp_path / "rate.png"
    code = main(["eval", "--bundle", str(progressive_bundle.path), "--data-root", str(synthetic_cifar10),
                 "--channel", "bsc", "--p", "0,0.1", "--repeats", "2", "--confidence", "0.5,0.9",
                 "--out", str(out), "--rate-plot", str(figure)])
    assert code == 0
    report = json.loads(out.read_text())
    modes = [row.get("mode") for row in report["results"]]
    assert modes.count(None) == 2 and modes.count("prefix") == 8 and modes.count("progressive") == 4
    row = next(r for r in report["results"] if r.get("confidence") == 0.9)
    assert {"accuracy_mean", "accuracy_std", "mean_payload_bits", "steps_distribution", "channel", "p"} <= set(row)
    assert report["progressive"]["feedback"] == "error-free" and report["progressive"]["bits_per_step"] == 128
    assert figure.stat().st_size > 1000
    assert "conf >= 0.9" in capsys.readouterr().out
    # the saved report plots again, beside a fixed bundle's, and the accuracy-vs-p plot skips the extra rows
    fixed = tmp_path / "fixed.json"
    assert main(["eval", "--bundle", str(tiny_bundle.path), "--data-root", str(synthetic_cifar10), "--p", "0,0.1",
                 "--repeats", "1", "--out", str(fixed)]) == 0
    assert main(["plot", "--kind", "rate", "--inputs", str(out), str(fixed), "--out", str(tmp_path / "b.png")]) == 0
    assert main(["plot", "--inputs", str(out), "--out", str(tmp_path / "c.png")]) == 0


def test_eval_cli_refuses_confidence_on_a_fixed_bundle(tiny_bundle, synthetic_cifar10: Path, capsys) -> None:
    code = main(["eval", "--bundle", str(tiny_bundle.path), "--data-root", str(synthetic_cifar10),
                 "--confidence", "0.9"])
    assert code == 2
    assert "needs a progressive bundle" in capsys.readouterr().err
    assert main(["eval", "--bundle", str(tiny_bundle.path), "--data-root", str(synthetic_cifar10),
                 "--confidence", "0.9,abc"]) == 2


@pytest.fixture(scope="module")
def cnn4(tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(2)
    spec = tiny_spec("cnn-q4", timesteps=4)
    return save_bundle(build_split_model(spec).eval(), spec, tmp_path_factory.mktemp("cnn4") / "cnn",
                       [f"c{i}" for i in range(10)], {"kind": "bsc", "p": 0.1}, {"note": "random weights"})


def test_cnn_prefix_rows_cut_the_bit_planes(cnn4, synthetic_cifar10: Path) -> None:
    """cnn-q4 cut after t planes = decoding with the later planes read as 0; t = 4 is the fixed sweep's row."""
    model = cnn4.build()
    data = load_split(synthetic_cifar10, "cifar10", "test", 0.1, 0, False)
    bits = encode(model, data, Normalize(cnn4.spec.mean, cnn4.spec.std), torch.device("cpu"))
    rows = progressive_sweep(model, bits, ["bsc"], [0.1], [], repeats=2, seed=1)
    assert [r["timesteps"] for r in rows] == [1, 2, 3, 4] and all(r["mode"] == "prefix" for r in rows)
    fixed = sweep(model, bits, ["bsc"], [0.1], repeats=2, seed=1)
    assert rows[-1]["accuracies"] == pytest.approx(fixed[0]["accuracies"], abs=1e-12)
    generator = torch.Generator().manual_seed(binary_seed(1, 0, "bsc", 0.1))
    with torch.no_grad():
        from sjscc.common.channels import BinarySymmetricChannel

        received = BinarySymmetricChannel()(bits.bits.float(), 0.1, generator)
        received[:, 1:] = 0  # only the most significant plane was sent
        hits = int((model.tail(model.codec.decoder(received)).argmax(1) == bits.labels).sum())
    assert rows[0]["accuracies"][0] == hits / len(bits)
    with pytest.raises(ValueError, match="progressive codec"):
        progressive_sweep(model, bits, ["bsc"], [0.1], [0.9])


def test_prefix_rows_draw_as_the_fixed_sweep_under_either_keying(cnn4, synthetic_cifar10: Path) -> None:
    """The t = T row is the fixed sweep's row under the same draw keys; setting keys pair p lists that differ,
    position keys (eval JSONs without draw_keys) do not when p moves in the list."""
    model = cnn4.build()
    data = load_split(synthetic_cifar10, "cifar10", "test", 0.1, 0, False)
    bits = encode(model, data, Normalize(cnn4.spec.mean, cnn4.spec.std), torch.device("cpu"))
    for keys, paired in (("setting", True), ("position", False)):
        rows = progressive_sweep(model, bits, ["bsc"], [0.0, 0.3], [], repeats=4, seed=0, draw_keys=keys)
        fixed = sweep(model, bits, ["bsc"], [0.0, 0.3], repeats=4, seed=0, draw_keys=keys)
        assert rows[-1]["accuracies"] == pytest.approx(fixed[-1]["accuracies"], abs=1e-12)
        alone = progressive_sweep(model, bits, ["bsc"], [0.3], [], repeats=4, seed=0, draw_keys=keys)
        assert (alone[-1]["accuracies"] == rows[-1]["accuracies"]) is paired, keys
    with pytest.raises(ValueError, match="draw keys 'p'"):
        progressive_sweep(model, bits, ["bsc"], [0.1], [], draw_keys="p")


def test_eval_cli_prefixes(cnn4, tiny_bundle, synthetic_cifar10: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cnn.json"
    assert main(["eval", "--bundle", str(cnn4.path), "--data-root", str(synthetic_cifar10), "--p", "0",
                 "--repeats", "1", "--prefixes", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r.get("timesteps") for r in report["results"] if r.get("mode") == "prefix"] == [1, 2, 3, 4]
    assert main(["eval", "--bundle", str(tiny_bundle.path), "--data-root", str(synthetic_cifar10),
                 "--prefixes"]) == 2
    assert "reads all T steps" in capsys.readouterr().err
    assert main(["eval", "--bundle", str(cnn4.path), "--data-root", str(synthetic_cifar10), "--confidence",
                 "0.9"]) == 2
    assert "needs a progressive bundle" in capsys.readouterr().err
