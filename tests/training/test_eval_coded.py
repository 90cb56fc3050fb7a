"""``sjscc eval`` of a separate-coding bundle over a radio link runs its CRC + LDPC block, as serving does."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from sjscc.cli import main
from sjscc.common.model import build_split_model
from tests.conftest import tiny_spec

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def coded_bundle(tmp_path_factory: pytest.TempPathFactory):
    """A random-weights CNN-q2 bundle (T = 2 planes of (2, 8, 8): 256 bits) whose manifest names CRC16 + LDPC into
    512 QPSK-mapped coded bits (256 channel uses, rate 272/512); ``on_failure`` = misclassify."""
    from sjscc.common.bundle import save_bundle

    torch.manual_seed(0)
    spec = tiny_spec("cnn-q2", timesteps=2)
    model = build_split_model(spec).eval()
    code = {"kind": "ldpc", "crc": "CRC16", "k": 256, "n": 512, "rate": 272 / 512, "modulation": "qpsk",
            "channel_uses": 256, "on_failure": "misclassify", "fill": "random"}
    return save_bundle(model, spec, tmp_path_factory.mktemp("coded") / "b", CLASSES, {"kind": "none", "p": 0.0},
                       {"note": "random weights, untrained"}, extra={"channel_code": code})


def _eval(bundle, data: Path, out: Path, *extra: str) -> dict:
    assert main(["eval", "--bundle", str(bundle.path), "--data-root", str(data), "--split", "test", "--repeats", "2",
                 "--batch-size", "16", "--limit", "24", "--energy-images", "0", "--quiet", "--channel", "awgn",
                 "--modulation", "qpsk", "--no-bsc-equivalent", "--out", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_a_coded_bundle_is_evaluated_through_its_code(coded_bundle, synthetic_cifar10: Path, tmp_path: Path) -> None:
    """Far above the waterfall every block decodes and the accuracy is the clean accuracy exactly (the decoder sees
    the sent bits); far below it every block fails and ``misclassify`` counts every image wrong."""
    report = _eval(coded_bundle, synthetic_cifar10, tmp_path / "a.json", "--snr-db=-6,8", "--decisions", "soft")
    low, high = report["results"]
    assert high["bler"] == 0.0 and high["accuracy_mean"] == report["clean_accuracy"]
    assert low["bler"] == 1.0 and low["accuracy_mean"] == 0.0
    for row in (low, high):
        assert row["code"] == {"kind": "ldpc", "crc": "CRC16", "k": 256, "n": 512, "rate": round(272 / 512, 6),
                               "on_failure": "misclassify", "fill": "random"}
        assert row["symbols"] == 256 and row["modulation"] == "qpsk" and row["soft_bits"] == 4
    # the coded bits' raw BER at Eb/N0 per information bit: Es/N0 = Eb/N0 x rate x 2 for QPSK, p = Q(sqrt(2 Eb R / N0))
    ebno = 10 ** (-6 / 10) * 272 / 512
    p = 0.5 * math.erfc(math.sqrt(2 * ebno) / math.sqrt(2))
    assert low["p"] == pytest.approx(p, rel=1e-6)
    assert abs(low["ber"] - p) < 0.02  # 512 x 24 x 2 = 24,576 coded bits: 99% binomial half-width ~0.008


def test_hard_decisions_and_the_seed_reproduce(coded_bundle, synthetic_cifar10: Path, tmp_path: Path) -> None:
    one = _eval(coded_bundle, synthetic_cifar10, tmp_path / "b.json", "--snr-db=2", "--decisions", "hard")
    two = _eval(coded_bundle, synthetic_cifar10, tmp_path / "c.json", "--snr-db=0,2", "--decisions", "hard")
    assert one["results"][0] == two["results"][1]  # keyed by the setting, not its place in the list
    assert one["results"][0]["decisions"] == "hard" and "soft_bits" not in one["results"][0]


@pytest.mark.parametrize("extra, message", [
    (["--modulation", "16qam"], "sent with qpsk"),
    (["--coherence", "step"], "coherence step"),
])
def test_settings_the_code_cannot_use_are_refused(coded_bundle, synthetic_cifar10: Path, tmp_path: Path, capsys,
                                                  extra: list[str], message: str) -> None:
    args = ["eval", "--bundle", str(coded_bundle.path), "--data-root", str(synthetic_cifar10), "--split", "test",
            "--limit", "8", "--quiet", "--channel", "awgn", "--modulation", "qpsk", "--snr-db=2", *extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_over_a_bsc_the_block_decodes_below_its_threshold_and_fails_above(coded_bundle, synthetic_cifar10: Path,
                                                                          tmp_path: Path) -> None:
    out = tmp_path / "bsc.json"
    assert main(["eval", "--bundle", str(coded_bundle.path), "--data-root", str(synthetic_cifar10), "--split", "test",
                 "--repeats", "2", "--limit", "24", "--energy-images", "0", "--quiet", "--channel", "bsc",
                 "--p", "0.001,0.3", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    good, bad = report["results"]
    assert good["bler"] == 0.0 and good["accuracy_mean"] == report["clean_accuracy"]
    assert bad["bler"] == 1.0 and bad["accuracy_mean"] == 0.0  # rate 0.53 cannot correct 30% flips
    assert abs(bad["ber"] - 0.3) < 0.02 and good["code"]["n"] == 512


def test_a_coded_bundle_refuses_channels_its_block_is_not_sent_over(coded_bundle, synthetic_cifar10: Path,
                                                                    capsys) -> None:
    assert main(["eval", "--bundle", str(coded_bundle.path), "--data-root", str(synthetic_cifar10), "--split",
                 "test", "--limit", "8", "--quiet", "--channel", "bec", "--p", "0.1"]) == 2
    assert "channel 'bec' is not evaluated with it" in capsys.readouterr().err


def test_paired_hard_is_refused_for_a_coded_bundle(coded_bundle, synthetic_cifar10: Path, capsys) -> None:
    assert main(["eval", "--bundle", str(coded_bundle.path), "--data-root", str(synthetic_cifar10), "--split",
                 "test", "--limit", "8", "--quiet", "--channel", "awgn", "--modulation", "qpsk", "--snr-db=2",
                 "--decisions", "soft", "--paired-hard"]) == 2
    assert "--paired-hard is for uncoded links" in capsys.readouterr().err
