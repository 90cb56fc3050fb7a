"""scripts/results_tables.py: paired SNN − CNN gaps over training seeds with a t-interval, on synthetic reports
whose numbers are checked by hand."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "results_tables.py"
spec = importlib.util.spec_from_file_location("results_tables", SCRIPT)
results_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results_tables)

T_975_DF2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom (tables: 4.303)


def report(accuracies: dict[float, float], channel: str = "bsc", **extra) -> dict:
    return {"bundle": "b", "dataset": "cifar10", "split": "val", "n_images": 5000,
            "results": [{"channel": channel, "p": p, "accuracy_mean": a, "accuracy_std": 0.0, "repeats": 10, **extra}
                        for p, a in accuracies.items()]}


def test_paired_gaps_by_hand() -> None:
    # gaps at p = 0.1: 0.01, 0.03, 0.02 -> mean 0.02, s = 0.01, half width 4.3027 * 0.01 / sqrt(3) = 0.024841
    # gaps at p = 0.3: 0.05, 0.06, 0.07 -> mean 0.06, s = 0.01, interval [0.035159, 0.084841]: SNN better
    snn = [report({0.1: 0.81, 0.3: 0.65}), report({0.1: 0.83, 0.3: 0.66}), report({0.1: 0.82, 0.3: 0.67})]
    cnn = [report({0.1: 0.80, 0.3: 0.60}), report({0.1: 0.80, 0.3: 0.60}), report({0.1: 0.80, 0.3: 0.60})]
    low, high = results_tables.paired_gaps(snn, cnn)
    half = T_975_DF2 * 0.01 / 3**0.5
    assert half == pytest.approx(0.0248414, abs=1e-7)
    assert (low["p"], low["seeds"], low["verdict"]) == (0.1, 3, "within noise")
    assert low["gap_mean"] == pytest.approx(0.02) and low["gap_std"] == pytest.approx(0.01)
    assert low["interval"] == pytest.approx((0.02 - half, 0.02 + half))
    assert high["interval"] == pytest.approx((0.06 - half, 0.06 + half)) and high["verdict"] == "SNN better"
    text = results_tables.markdown_gaps([low, high], "SNN − CNN-q8")
    assert "| 0.1 | +2.00 | [-0.48, +4.48] | within noise |" in text
    assert "| 0.3 | +6.00 | [+3.52, +8.48] | SNN better |" in text


def test_conditions_are_matched_on_burst_and_interleaver() -> None:
    snn = [report({0.1: 0.7}, "ge", burst=8.0), report({0.1: 0.6}, "ge", burst=8.0)]
    cnn = [report({0.1: 0.8}, "ge", burst=8.0), report({0.1: 0.8}, "ge", burst=8.0)]
    (row,) = results_tables.paired_gaps(snn, cnn)
    # gaps -0.1, -0.2: mean -0.15, s = 0.0707107, t(0.975, 1) = 12.7062 -> half width 0.635310
    assert row["half_width"] == pytest.approx(12.706204736 * 0.0707107 / 2**0.5, rel=1e-6)
    assert row["burst"] == 8.0 and row["verdict"] == "within noise"
    assert "GE L=8" in results_tables.markdown_gaps([row])
    other = [report({0.1: 0.8}, "ge", burst=4.0), report({0.1: 0.8}, "ge", burst=4.0)]
    assert results_tables.paired_gaps(snn, other) == []  # a different burst length is another condition


@pytest.mark.parametrize(("snn", "cnn", "message"), [
    (1, 1, "at least 2 seeds"), (3, 2, "3 SNN reports but 2 CNN"),
])
def test_bad_pairings_are_refused(snn: int, cnn: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        results_tables.paired_gaps([report({0.1: 0.5})] * snn, [report({0.1: 0.5})] * cnn)
    other_data = {**report({0.1: 0.5}), "split": "test"}
    with pytest.raises(ValueError, match="different data"):
        results_tables.paired_gaps([report({0.1: 0.5})] * 2, [report({0.1: 0.5}), other_data])


def test_command_line(tmp_path: Path) -> None:
    paths = {}
    for name, value in (("snn0", 0.81), ("snn1", 0.83), ("snn2", 0.82), ("cnn0", 0.8), ("cnn1", 0.8), ("cnn2", 0.8)):
        paths[name] = tmp_path / name / "same-name.json"  # equal file names in different folders stay apart
        paths[name].parent.mkdir()
        paths[name].write_text(json.dumps(report({0.1: value})))
    out = subprocess.run([sys.executable, str(SCRIPT), "--gap-snn", *(str(paths[f"snn{i}"]) for i in range(3)),
                          "--gap-cnn", *(str(paths[f"cnn{i}"]) for i in range(3))],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "| 0.1 | +2.00 | [-0.48, +4.48] | within noise |" in out.stdout
    bad = subprocess.run([sys.executable, str(SCRIPT), "--gap-snn", str(paths["snn0"]), "--gap-cnn",
                          str(paths["cnn0"])], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "at least 2 seeds" in bad.stderr
