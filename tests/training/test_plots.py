"""What the figures draw, read back from matplotlib's artists (the figure is captured instead of saved)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sjscc.training import plots


@pytest.fixture
def captured(monkeypatch) -> list:
    figures: list = []
    monkeypatch.setattr(plots, "_save", lambda figure, out: figures.append(figure) or Path(out))
    return figures


def report(codec: str, n: int, bits: int, rows: list[dict[str, Any]], bundle: str) -> dict[str, Any]:
    return {"bundle": bundle, "label": f"{codec} {bundle}", "codec": codec, "timesteps": n, "payload_bits": bits,
            "results": rows}


def row(p: float, accuracy: float, channel: str = "bsc", **extra: Any) -> dict[str, Any]:
    return {"channel": channel, "p": p, "accuracy_mean": accuracy, "accuracy_std": 0.01, **extra}


def test_cnn_rungs_of_one_latent_size_are_one_line_in_the_panels_of_the_progressive_report(captured) -> None:
    progressive = report("snn-progressive", 8, 512, [
        row(0.1, 0.88, mode="progressive", confidence=0.9, mean_payload_bits=100.0, timesteps=8),
        row(0.1, 0.87, mode="prefix", mean_payload_bits=64.0, timesteps=1)], "prog")
    rungs = [report(f"cnn-q{n}", n, 64 * n, [row(0.0, 0.5 + n / 100), row(0.1, 0.4 + n / 100)], f"q{n}")
             for n in (4, 1, 8)]
    other = report("cnn-q1", 1, 512, [row(0.1, 0.86)], "q1-wide")  # another latent size: its own point
    plots.plot_rate_accuracy([progressive, *rungs, other], "rate.png")
    (axis,) = captured[0].axes  # only p = 0.1: the progressive report's panel, not the rungs' p = 0
    assert axis.get_title() == "BSC p = 0.1"
    ladder = [c for c in axis.containers if c.get_label().startswith("CNN-q<n> trained per rate")]
    assert len(ladder) == 1 and ladder[0].get_label().endswith("(64 latent values)")
    x, y = (np.asarray(data, float) for data in ladder[0].lines[0].get_data())
    np.testing.assert_allclose(x, [64, 256, 512])  # sorted by bits
    np.testing.assert_allclose(y, [41, 44, 48])
    assert {t.get_text() for t in axis.texts} >= {"q1", "q4", "q8"}
    labels = {c.get_label() for c in axis.containers}
    assert "cnn-q1 q1-wide" in labels and not any(label.startswith("cnn-q4") for label in labels)


def test_a_channel_swept_with_and_without_the_interleaver_gets_two_panels(captured) -> None:
    ge = report("snn", 8, 512, [row(0.1, 0.8, "ge", burst=8.0, interleave=None),
                                row(0.2, 0.7, "ge", burst=8.0, interleave=None)], "a")
    ge_il = report("snn", 8, 512, [row(0.1, 0.85, "ge", burst=8.0, interleave=1)], "a")
    plots.plot_accuracy([ge, ge_il], "acc.png")
    axes = captured[0].axes
    assert [a.get_title() for a in axes] == ["GE", "GE + interleaver"]
    assert [len(a.containers[0].lines[0].get_xdata()) for a in axes] == [2, 1]
    np.testing.assert_allclose(np.asarray(axes[1].containers[0].lines[0].get_ydata(), float), [85])


def test_every_accuracy_figure_says_what_its_error_bars_span() -> None:
    """The "±" of one trained model is the spread over channel draws; the figures say so (issue 24's statistics)."""
    from sjscc.training.plots import error_bar_note

    reports = [{"results": [{"p": 0.1, "repeats": 10}, {"p": 0.2, "repeats": 10}]}, {"results": [{"repeats": 5}]}]
    assert error_bar_note(reports) == ("error bars: ±1 std over 5/10 channel draws of one trained model, "
                                       "not over training seeds")


def test_a_paired_soft_row_also_draws_its_hard_decisions() -> None:
    from sjscc.training.plots import _with_paired_hard

    soft = {"channel": "awgn", "modulation": "bpsk", "coherence": "packet", "snr_db": 0.0, "decisions": "soft",
            "accuracy_mean": 0.9, "accuracy_std": 0.0, "hard": {"accuracy_mean": 0.8, "accuracy_std": 0.01}}
    rows = _with_paired_hard([soft])
    assert [(r["decisions"], r["accuracy_mean"]) for r in rows] == [("soft", 0.9), ("hard", 0.8)]
    separate = {**soft, "decisions": "hard", "accuracy_mean": 0.7}
    del separate["hard"]
    assert len(_with_paired_hard([soft, separate])) == 2  # a separate hard run at that setting wins
