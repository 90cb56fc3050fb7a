"""``sjscc eval`` / ``sjscc plot`` and the functions behind them: the JSON contract, encode-once equals the full
forward pass, seeded repeats, the validation split read from the bundle, plots, and clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import tiny_spec

from sjscc.cli import main
from sjscc.common.bundle import load_bundle, save_bundle
from sjscc.common.channels import build_channel
from sjscc.common.model import build_split_model
from sjscc.training.data import DataError, Normalize, load_cifar, train_val_split
from sjscc.training.evaluate import (
    binary_seed,
    count_correct,
    decode_logits,
    draw_seed,
    encode,
    evaluate_bundle,
    format_table,
    load_eval_data,
    parse_channels,
    parse_probabilities,
    position_seed,
    sweep,
)

PNG = b"\x89PNG\r\n\x1a\n"
CONTRACT_RESULT = {"channel", "p", "accuracy_mean", "accuracy_std", "repeats"}
CONTRACT = {"bundle", "dataset", "split", "n_images", "clean_accuracy", "results"}


@pytest.fixture(scope="module")
def cnn_bundle(tmp_path_factory: pytest.TempPathFactory):
    """A second bundle (4-bit CNN baseline, random weights) with a training config in its manifest."""
    torch.manual_seed(1)
    spec = tiny_spec("cnn-q4", timesteps=4)
    model = build_split_model(spec).eval()
    training = {"config": {"data": {"dataset": "cifar10", "val_fraction": 0.2, "split_seed": 3}}}
    return save_bundle(model, spec, tmp_path_factory.mktemp("cnn") / "cnn", [f"class{i}" for i in range(10)],
                       train_channel={"kind": "bec", "p": 0.25}, metrics={}, extra={"training": training})


def check_contract(report: dict) -> None:
    assert set(report) >= CONTRACT
    assert isinstance(report["bundle"], str) and isinstance(report["n_images"], int)
    assert report["dataset"] in ("cifar10", "cifar100") and report["split"] in ("test", "val")
    assert 0.0 <= report["clean_accuracy"] <= 1.0
    for row in report["results"]:
        assert set(row) >= CONTRACT_RESULT
        assert row["channel"] in ("bsc", "bec") and isinstance(row["repeats"], int)
        assert 0.0 <= row["accuracy_mean"] <= 1.0 and row["accuracy_std"] >= 0.0


def test_eval_cli_writes_the_contract(tiny_bundle, synthetic_cifar10: Path, tmp_path: Path, capsys) -> None:
    out, plot, hist = tmp_path / "eval.json", tmp_path / "acc.png", tmp_path / "rate.png"
    code = main(["eval", "--bundle", str(tiny_bundle.path), "--data-root", str(synthetic_cifar10),
                 "--dataset", "cifar10", "--split", "test", "--channel", "bsc,bec", "--p", "0,0.2,0.5",
                 "--repeats", "3", "--seed", "5", "--batch-size", "16", "--limit", "40", "--out", str(out),
                 "--plot", str(plot), "--firing-hist", str(hist)])
    assert code == 0
    report = json.loads(out.read_text())
    check_contract(report)
    assert report["bundle"] == tiny_bundle.model_id and report["n_images"] == 40 and report["split"] == "test"
    assert report["draw_keys"] == "setting" and report["seed"] == 5
    assert [(r["channel"], r["p"]) for r in report["results"]] == [
        ("bsc", 0.0), ("bsc", 0.2), ("bsc", 0.5), ("bec", 0.0), ("bec", 0.2), ("bec", 0.5)]
    for row in report["results"]:
        assert row["repeats"] == 3 and len(row["accuracies"]) == 3
        if row["p"] == 0.0:  # no noise: every repeat is the clean accuracy
            assert row["accuracies"] == [report["clean_accuracy"]] * 3 and row["accuracy_std"] == 0.0
    rate = report["firing_rate"]
    assert sum(rate["counts"]) == 40 and 0.0 <= rate["mean"] <= 1.0
    printed = capsys.readouterr().out
    assert tiny_bundle.model_id in printed and "accuracy mean" in printed and printed.count("\n  bec") == 3
    assert plot.read_bytes().startswith(PNG) and hist.read_bytes().startswith(PNG)


def test_several_bundles_give_a_list_and_one_plot(tiny_bundle, cnn_bundle, synthetic_cifar10: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "both.json"
    code = main(["eval", "--bundle", str(tiny_bundle.path), "--bundle", str(cnn_bundle.path), "--data-root",
                 str(synthetic_cifar10), "--split", "val", "--p", "0.1,0.3", "--repeats", "2", "--out", str(out)])
    assert code == 0
    reports = json.loads(out.read_text())
    assert isinstance(reports, list) and [r["bundle"] for r in reports] == [tiny_bundle.model_id, cnn_bundle.model_id]
    for report in reports:
        check_contract(report)
    assert reports[1]["codec"] == "cnn-q4" and reports[1]["data"]["val_fraction"] == 0.2
    figure = tmp_path / "fig.png"
    assert main(["plot", "--inputs", str(out), "--out", str(figure), "--title", "two bundles"]) == 0
    assert figure.read_bytes().startswith(PNG)
    histogram = tmp_path / "hist.png"
    assert main(["plot", "--kind", "firing-rate", "--inputs", str(out), str(out), "--out", str(histogram)]) == 0
    assert histogram.read_bytes().startswith(PNG)


def test_cached_bits_give_the_full_forward_pass(tiny_bundle, synthetic_cifar10: Path) -> None:
    """Encoding once and decoding the cached bits equals ``model(x, channel, p, generator)`` with the same noise."""
    model = tiny_bundle.build()
    data = load_cifar(synthetic_cifar10, "cifar10", train=False)
    normalize = Normalize(tiny_bundle.spec.mean, tiny_bundle.spec.std)
    encoded = encode(model, data, normalize, torch.device("cpu"), batch_size=64)
    assert encoded.bits.dtype == torch.uint8 and list(encoded.bits.shape) == [50, *tiny_bundle.payload_shape]
    for channel, p in (("bsc", 0.2), ("bec", 0.4)):
        with torch.no_grad():
            logits, _ = model(normalize(data.images), build_channel(channel), p, torch.Generator().manual_seed(9))
        got = decode_logits(model, encoded, channel, p, torch.Generator().manual_seed(9), torch.device("cpu"), 64)
        assert torch.allclose(got, logits, atol=1e-6)
        hits = count_correct(model, encoded, channel, p, torch.Generator().manual_seed(9), torch.device("cpu"), 64)
        assert hits == int((logits.argmax(1) == data.labels).sum())


def test_repeats_are_seeded(tiny_bundle, synthetic_cifar10: Path) -> None:
    kwargs = {"data_root": synthetic_cifar10, "split": "test", "channels": ["bsc"], "probabilities": [0.3],
              "repeats": 2, "batch_size": 25, "device": "cpu"}
    first, again = evaluate_bundle(tiny_bundle.path, seed=1, **kwargs), evaluate_bundle(tiny_bundle.path, seed=1,
                                                                                           **kwargs)
    assert first["results"] == again["results"] and first["draw_keys"] == "setting"
    model = tiny_bundle.build()
    data = load_cifar(synthetic_cifar10, "cifar10", train=False)
    encoded = encode(model, data, Normalize(tiny_bundle.spec.mean, tiny_bundle.spec.std), torch.device("cpu"))
    logits = [decode_logits(model, encoded, "bsc", 0.3, torch.Generator().manual_seed(binary_seed(1, r, "bsc", 0.3)),
                            torch.device("cpu")) for r in (0, 0, 1)]
    assert torch.equal(logits[0], logits[1]) and not torch.equal(logits[0], logits[2])
    table = format_table([first])
    assert "bsc" in table and "0.300" in table


def test_binary_seed_is_keyed_by_the_setting() -> None:
    """Distinct over seed x repeat x kind x p (x GE's burst), the same for the same setting, whatever the list."""
    grid = [(s, r, kind, p, burst) for s in range(2) for r in range(5) for kind in ("bsc", "bec", "ge")
            for p in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5) for burst in ((2.0, 8.0) if kind == "ge" else (8.0,))]
    seeds = {binary_seed(*key) for key in grid}
    assert len(seeds) == len(grid) == 2 * 5 * 7 * 4 and all(0 <= s < 2**63 for s in seeds)
    assert binary_seed(0, 1, "bsc", 0.1) == binary_seed(0, 1, "bsc", 0.1)
    assert binary_seed(0, 1, "bsc", 0) == binary_seed(0, 1, "bsc", 0.0)  # p as a number, not as typed
    assert binary_seed(0, 1, "bsc", 0.1, burst=2.0) == binary_seed(0, 1, "bsc", 0.1)  # burst is GE's only
    assert binary_seed(0, 1, "ge", 0.1, 8) == binary_seed(0, 1, "ge", 0.1, 8.0)
    # under setting keys the index of p plays no part; under position keys only the index does
    assert draw_seed("setting", 3, 2, "bec", 0.2, 0) == draw_seed("setting", 3, 2, "bec", 0.2, 7) == binary_seed(
        3, 2, "bec", 0.2)
    assert draw_seed("position", 3, 2, "bec", 0.2, 4) == draw_seed("position", 3, 2, "bsc", 0.4, 4) == position_seed(
        3, 2, 4)
    with pytest.raises(ValueError, match="'index'.*'setting'.*'position'"):
        draw_seed("index", 0, 0, "bsc", 0.1, 0)


def test_position_seed_is_the_key_of_the_committed_jsons() -> None:
    """The legacy key, pinned: eval JSONs without ``draw_keys`` were drawn with exactly these seeds."""
    seeds = {position_seed(s, r, i) for s in range(3) for r in range(10) for i in range(11)}
    assert len(seeds) == 3 * 10 * 11 and all(0 <= s < 2**63 for s in seeds)
    assert position_seed(0, 1, 2) == 2218982919628031225 and position_seed(5, 9, 10) == 4621168859043929654


def test_setting_keys_pair_runs_with_different_p_lists(cnn_bundle, synthetic_cifar10: Path) -> None:
    """At a p both lists hold, setting keys give the same draws (hence per-draw accuracies); position keys give
    other draws when p stands elsewhere in the list. The random-weights CNN is sensitive to the noise."""
    model = cnn_bundle.build()
    data = load_cifar(synthetic_cifar10, "cifar10", train=False)
    encoded = encode(model, data, Normalize(cnn_bundle.spec.mean, cnn_bundle.spec.std), torch.device("cpu"))
    channels, kwargs = ["bsc", "bec", "ge"], {"repeats": 4, "seed": 0, "batch_size": 20}
    for keys, paired in (("setting", True), ("position", False)):
        long = sweep(model, encoded, channels, [0.1, 0.3], draw_keys=keys, **kwargs)
        short = sweep(model, encoded, channels, [0.3], draw_keys=keys, **kwargs)
        for row in short:
            twin = next(r for r in long if (r["channel"], r["p"]) == (row["channel"], 0.3))
            assert (twin["accuracies"] == row["accuracies"]) is paired, (keys, row["channel"])
    # and under setting keys the kinds do not share a generator: BSC and BEC at one p get other seeds
    assert binary_seed(0, 0, "bsc", 0.3) != binary_seed(0, 0, "bec", 0.3)
    with pytest.raises(ValueError, match="draw keys 'p-index'"):
        sweep(model, encoded, ["bsc"], [0.3], draw_keys="p-index")


def test_eval_cli_draw_keys_position_is_recorded(tiny_bundle, synthetic_cifar10: Path, tmp_path: Path,
                                                capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["eval", "--bundle", str(tiny_bundle.path), "--draw-keys", "index"])
    assert exited.value.code == 2
    assert re.search(r"^sjscc eval: error: argument --draw-keys: invalid choice: 'index' \(choose from '?setting'?, "
                     r"'?position'?\)", capsys.readouterr().err)
    out = tmp_path / "legacy.json"
    assert main(["eval", "--bundle", str(tiny_bundle.path), "--data-root", str(synthetic_cifar10), "--p", "0.3",
                 "--repeats", "2", "--limit", "20", "--draw-keys", "position", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    check_contract(report)
    assert report["draw_keys"] == "position"


def test_val_split_comes_from_the_bundle(cnn_bundle, synthetic_cifar10: Path) -> None:
    data, source = load_eval_data(load_bundle(cnn_bundle.path), synthetic_cifar10, None, "val", limit=7)
    _, expected = train_val_split(load_cifar(synthetic_cifar10, "cifar10"), 0.2, 3)
    assert torch.equal(data.images, expected.images[:7]) and torch.equal(data.labels, expected.labels[:7])
    assert source == {"dataset": "cifar10", "split": "val", "data_root": str(synthetic_cifar10), "limit": 7,
                      "val_fraction": 0.2, "split_seed": 3}


def test_parsers() -> None:
    assert parse_probabilities("0, 0.05,0.5") == [0.0, 0.05, 0.5]
    assert parse_channels("bsc,bec") == ["bsc", "bec"] and parse_channels("bec") == ["bec"]
    for bad, message in (("0.1,abc", "'abc' is not a number"), ("0.1,", "'' is not a number"),
                         ("1.5", r"\[0, 1\]"), ("-0.1", r"\[0, 1\]")):
        with pytest.raises(ValueError, match=message):
            parse_probabilities(bad)
    with pytest.raises(ValueError, match="unknown channel 'wifi'"):
        parse_channels("bsc,wifi")


@pytest.mark.parametrize(("argv", "message"), [
    (["--p", "0.1,x"], "'x' is not a number"),
    (["--p", "2"], r"must be in \[0, 1\]"),
    (["--channel", "none"], "unknown channel 'none'"),
    (["--repeats", "0"], "--repeats must be >= 1"),
    (["--data-root", "/nonexistent/data"], "--data-root must be the folder that contains cifar-10-batches-py"),
    (["--dataset", "cifar100"], "cifar-100-python"),
    (["--split", "test", "--bundle", "/nonexistent/bundle"], "does not exist"),
])
def test_bad_eval_inputs_are_clear(tiny_bundle, synthetic_cifar10: Path, argv: list[str], message: str,
                                   capsys) -> None:
    base = ["eval", "--bundle", str(tiny_bundle.path), "--data-root", str(synthetic_cifar10)]
    if "--bundle" in argv:
        base = ["eval", "--data-root", str(synthetic_cifar10)]
    assert main(base + argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("sjscc eval: error:")
    assert re.search(message, error), error


def test_dataset_must_match_the_bundle(tiny_bundle, synthetic_cifar100: Path) -> None:
    with pytest.raises(DataError, match="has 10 classes but cifar100 has 100"):
        evaluate_bundle(tiny_bundle.path, synthetic_cifar100, "cifar100", "test", ["bsc"], [0.1], repeats=1)


def test_unknown_dataset_and_bad_plot_input(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--dataset", "mnist"])
    assert exit_info.value.code == 2 and "invalid choice: 'mnist'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a report"}')
    assert main(["plot", "--inputs", str(bad), "--out", str(tmp_path / "x.png")]) == 2
    assert "does not hold sjscc eval reports" in capsys.readouterr().err
    assert main(["plot", "--inputs", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x.png")]) == 2


def test_bundle_label_names_neuron_and_regularizer() -> None:
    from sjscc.training.evaluate import bundle_label

    def manifest(codec: str, neuron: str, alpha: float | None) -> dict:
        config = {"alpha": alpha, "model": {"codec_config": {"reconstructor_neuron": neuron}}}
        return {"codec": codec, "timesteps": 8, "train_channel": {"kind": "bsc", "p": 0.15},
                "training": {"config": config}}

    assert bundle_label(manifest("snn", "ihf", 0.5)) == "snn T=8, alpha=0.5, trained bsc p=0.15"
    assert bundle_label(manifest("snn", "if", None)) == "snn T=8 IF, no reg, trained bsc p=0.15"
    assert bundle_label(manifest("snn", "ihf-m", None)) == "snn T=8 IHF-m, no reg, trained bsc p=0.15"
    assert bundle_label(manifest("cnn-q8", "ihf", None)) == "cnn-q8, trained bsc p=0.15"
