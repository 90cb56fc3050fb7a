"""``sjscc eval`` over radio links: the row fields, seeding by the setting, hard/soft pairing, plot, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sjscc.cli import main
from sjscc.common.channels import LinkSettings
from sjscc.common.channels.radio import closed_form_ber
from sjscc.training.evaluate import link_seed, parse_channels, parse_snrs

PNG = b"\x89PNG\r\n\x1a\n"


def _eval(tiny_bundle, data: Path, out: Path, *extra: str) -> dict:
    code = main(["eval", "--bundle", str(tiny_bundle.path), "--data-root", str(data), "--split", "test",
                 "--repeats", "2", "--seed", "3", "--batch-size", "16", "--limit", "24", "--energy-images", "0",
                 "--quiet", "--out", str(out), *extra])
    assert code == 0
    return json.loads(out.read_text())


def test_eval_over_awgn_writes_link_rows_and_plot(tiny_bundle, synthetic_cifar10: Path, tmp_path: Path,
                                                  capsys) -> None:
    plot = tmp_path / "link.png"
    report = _eval(tiny_bundle, synthetic_cifar10, tmp_path / "a.json", "--channel", "awgn", "--snr-db", "-2,4",
                   "--modulation", "qpsk", "--decisions", "soft", "--plot", str(plot))
    rows = report["results"]
    assert [(r["channel"], r["snr_db"]) for r in rows] == [("awgn", -2.0), ("awgn", 4.0)]
    for row in rows:
        assert {"p", "accuracy_mean", "accuracy_std", "repeats", "modulation", "coherence", "decisions", "ber",
                "symbols", "bsc_equivalent"} <= set(row)
        assert row["modulation"] == "qpsk" and row["decisions"] == "soft" and row["soft_bits"] == 4
        assert row["p"] == pytest.approx(closed_form_ber("awgn", LinkSettings(row["snr_db"], "qpsk")))
        assert row["symbols"] == 4 * 2 * 8 * 8 // 2  # tiny bundle: T=4, latent (2, 8, 8), QPSK
        assert row["bsc_equivalent"]["p"] == row["p"]
    assert rows[0]["ber"] > rows[1]["ber"] > 0  # 512 bits x 24 images x 2 repeats: some errors even at 4 dB
    assert abs(rows[0]["ber"] - rows[0]["p"]) < 0.03
    printed = capsys.readouterr()
    assert "awgn qpsk soft" in printed.out and "Eb/N0" in printed.out
    assert plot.read_bytes().startswith(PNG)
    assert "%" not in printed.err  # --quiet: no progress bar


def test_rows_are_keyed_by_the_setting_and_hard_soft_share_noise(tiny_bundle, synthetic_cifar10: Path,
                                                                 tmp_path: Path) -> None:
    """4 dB alone gives the same row as 4 dB inside a longer list; hard and soft at one setting see one noise."""
    alone = _eval(tiny_bundle, synthetic_cifar10, tmp_path / "b.json", "--channel", "rayleigh", "--snr-db", "4",
                  "--coherence", "step", "--no-bsc-equivalent")["results"]
    listed = _eval(tiny_bundle, synthetic_cifar10, tmp_path / "c.json", "--channel", "rayleigh", "--snr-db",
                   "0,4", "--coherence", "step", "--no-bsc-equivalent")["results"]
    soft = _eval(tiny_bundle, synthetic_cifar10, tmp_path / "d.json", "--channel", "rayleigh", "--snr-db", "4",
                 "--coherence", "step", "--decisions", "soft", "--no-bsc-equivalent")["results"]
    assert alone[0] == listed[1]
    assert "bsc_equivalent" not in alone[0] and alone[0]["coherence"] == "step"
    assert soft[0]["ber"] == alone[0]["ber"]  # the same hard-decision errors under the same draws


def test_link_seed_depends_on_the_setting_not_the_decisions() -> None:
    a = LinkSettings(2.0, "qpsk", "packet", "hard")
    assert link_seed(0, 1, "awgn", a) == link_seed(0, 1, "awgn", LinkSettings(2.0, "qpsk", "packet", "soft"))
    others = [link_seed(0, 1, "rayleigh", a), link_seed(0, 1, "awgn", LinkSettings(2.5, "qpsk")),
              link_seed(0, 1, "awgn", LinkSettings(2.0, "bpsk")), link_seed(0, 2, "awgn", a),
              link_seed(1, 1, "awgn", a), link_seed(0, 1, "awgn", LinkSettings(2.0, "qpsk", 64))]
    assert len({link_seed(0, 1, "awgn", a), *others}) == 7


def test_snr_and_channel_parsers() -> None:
    assert parse_snrs("-4,-2,0,2.5") == [-4.0, -2.0, 0.0, 2.5]
    with pytest.raises(ValueError, match="'x' is not a number"):
        parse_snrs("1,x")
    with pytest.raises(ValueError, match=r"\[-30, 60\]"):
        parse_snrs("100")
    with pytest.raises(ValueError, match="separate runs"):
        parse_channels("bsc,awgn")
    assert parse_channels("awgn,rayleigh") == ["awgn", "rayleigh"]


@pytest.mark.parametrize("argv,message", [
    (["--channel", "rayleigh", "--coherence", "0"], "coherence"),
    (["--channel", "awgn", "--soft-bits", "1"], "soft_bits"),
    (["--channel", "awgn", "--snr-db", "nan"], "finite"),
])
def test_bad_link_settings_are_clear(tiny_bundle, synthetic_cifar10: Path, argv: list[str], message: str,
                                     capsys) -> None:
    assert main(["eval", "--bundle", str(tiny_bundle.path), "--data-root", str(synthetic_cifar10), *argv]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_unknown_modulation_is_an_argparse_error(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--channel", "awgn", "--modulation", "8psk"])
    assert "invalid choice: '8psk'" in capsys.readouterr().err


def test_paired_hard_is_the_hard_run_of_the_same_noise(tiny_bundle, synthetic_cifar10: Path, tmp_path: Path) -> None:
    """--paired-hard decodes the sign of the same LLRs: its hard accuracy equals a separate hard run exactly (the
    draws are keyed by the setting, not the decisions), and soft - hard is the difference of the two means."""
    soft = _eval(tiny_bundle, synthetic_cifar10, tmp_path / "s.json", "--channel", "awgn", "--snr-db", "-6,0",
                 "--decisions", "soft", "--paired-hard", "--no-bsc-equivalent")["results"]
    hard = _eval(tiny_bundle, synthetic_cifar10, tmp_path / "h.json", "--channel", "awgn", "--snr-db", "-6,0",
                 "--no-bsc-equivalent")["results"]
    for s, h in zip(soft, hard, strict=True):
        assert s["hard"]["accuracy_mean"] == h["accuracy_mean"] and s["ber"] == h["ber"]
        diff = s["soft_minus_hard"]
        assert diff["mean"] == pytest.approx(s["accuracy_mean"] - h["accuracy_mean"], abs=1e-12)
        low, high = diff["ci95"]
        assert low <= diff["mean"] <= high and diff["images"] == 24
        assert diff["resolved"] == (not low <= 0.0 <= high)


def test_paired_difference_by_hand() -> None:
    """Three images, two draws: per-image differences (2-1)/2, (0-0)/2, (1-2)/2 = 0.5, 0, -0.5: mean 0, sd 0.5."""
    import torch

    from sjscc.training.evaluate import paired_difference

    out = paired_difference(torch.tensor([2, 0, 1]), torch.tensor([1, 0, 2]), 2)
    assert out["mean"] == 0.0 and out["ci95"] == pytest.approx([-1.96 * 0.5 / 3 ** 0.5, 1.96 * 0.5 / 3 ** 0.5])
    assert out["resolved"] is False


def test_paired_hard_needs_soft_decisions(tiny_bundle, synthetic_cifar10: Path, capsys) -> None:
    assert main(["eval", "--bundle", str(tiny_bundle.path), "--data-root", str(synthetic_cifar10), "--split", "test",
                 "--limit", "8", "--quiet", "--channel", "awgn", "--snr-db", "2", "--paired-hard"]) == 2
    assert "--decisions soft" in capsys.readouterr().err
