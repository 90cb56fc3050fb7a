"""scripts/results_tables.py: SNN − CNN gaps over training seeds with an unpaired Welch interval, on synthetic
reports whose numbers are checked by hand."""

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

def report(accuracies: dict[float, float], channel: str = "bsc", **extra) -> dict:
    return {"bundle": "b", "dataset": "cifar10", "split": "val", "n_images": 5000,
            "results": [{"channel": channel, "p": p, "accuracy_mean": a, "accuracy_std": 0.0, "repeats": 10, **extra}
                        for p, a in accuracies.items()]}


def test_seed_gaps_are_unpaired_welch_by_hand() -> None:
    # p = 0.1: SNN seeds 0.81, 0.83, 0.82 (mean 0.82, s² = 1e-4), CNN seeds 0.80, 0.80, 0.80 (s² = 0):
    #   se = sqrt(1e-4 / 3) = 0.0057735, ν = (1e-4/3)² / ((1e-4/3)² / 2) = 2, t(0.975, 2) = 4.3027 -> ±0.024841
    # p = 0.3: SNN 0.65, 0.66, 0.67 against CNN 0.60 ×3: gap 0.06, the same half width: SNN better
    snn = [report({0.1: 0.81, 0.3: 0.65}), report({0.1: 0.83, 0.3: 0.66}), report({0.1: 0.82, 0.3: 0.67})]
    cnn = [report({0.1: 0.80, 0.3: 0.60}), report({0.1: 0.80, 0.3: 0.60}), report({0.1: 0.80, 0.3: 0.60})]
    low, high = results_tables.seed_gaps(snn, cnn)
    half = 4.302652729911275 * (1e-4 / 3) ** 0.5
    assert half == pytest.approx(0.0248414, abs=1e-7)
    assert (low["p"], low["seeds"], low["verdict"]) == (0.1, (3, 3), "not resolved")
    assert low["gap_mean"] == pytest.approx(0.02) and low["degrees_of_freedom"] == pytest.approx(2.0)
    assert low["interval"] == pytest.approx((0.02 - half, 0.02 + half))
    assert high["interval"] == pytest.approx((0.06 - half, 0.06 + half)) and high["verdict"] == "SNN better"
    text = results_tables.markdown_gaps([low, high], "SNN − CNN-q8")
    assert "3 SNN and 3 CNN training seeds, unpaired, 95% Welch t-interval" in text
    assert "| 0.1 | +2.00 | [-0.48, +4.48] | not resolved |" in text
    assert "| 0.3 | +6.00 | [+3.52, +8.48] | SNN better |" in text


def test_seed_order_does_not_matter() -> None:
    # a paired interval would change when the CNN seeds are shuffled; the unpaired one must not
    snn = [report({0.2: a}) for a in (0.70, 0.74, 0.69)]
    cnn = [report({0.2: a}) for a in (0.60, 0.66, 0.61)]
    (forward,) = results_tables.seed_gaps(snn, cnn)
    (shuffled,) = results_tables.seed_gaps(snn, cnn[::-1])
    assert forward["interval"] == pytest.approx(shuffled["interval"], abs=1e-12)


def test_conditions_are_matched_on_burst_and_interleaver() -> None:
    snn = [report({0.1: 0.7}, "ge", burst=8.0), report({0.1: 0.6}, "ge", burst=8.0)]
    cnn = [report({0.1: 0.8}, "ge", burst=8.0), report({0.1: 0.9}, "ge", burst=8.0)]
    (row,) = results_tables.seed_gaps(snn, cnn)
    # gap -0.2, s² = 0.005 each: se = 0.070711, ν = 0.005² / (2 · 0.0025² / 1) = 2, t(0.975, 2) = 4.302653
    assert row["half_width"] == pytest.approx(4.302652729911275 * 0.0707107, rel=1e-6)
    assert row["burst"] == 8.0 and row["verdict"] == "not resolved"
    assert "GE L=8" in results_tables.markdown_gaps([row])
    other = [report({0.1: 0.8}, "ge", burst=4.0), report({0.1: 0.8}, "ge", burst=4.0)]
    assert results_tables.seed_gaps(snn, other) == []  # a different burst length is another condition


@pytest.mark.parametrize(("snn", "cnn"), [(1, 2), (3, 1)])
def test_bad_inputs_are_refused(snn: int, cnn: int) -> None:
    with pytest.raises(ValueError, match="at least 2 seeds"):
        results_tables.seed_gaps([report({0.1: 0.5})] * snn, [report({0.1: 0.5})] * cnn)
    other_data = {**report({0.1: 0.5}), "split": "test"}
    with pytest.raises(ValueError, match="different data"):
        results_tables.seed_gaps([report({0.1: 0.5})] * 2, [report({0.1: 0.5}), other_data])


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
    assert "| 0.1 | +2.00 | [-0.48, +4.48] | not resolved |" in out.stdout
    bad = subprocess.run([sys.executable, str(SCRIPT), "--gap-snn", str(paths["snn0"]), "--gap-cnn",
                          str(paths["cnn0"])], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "at least 2 seeds" in bad.stderr


def test_seed_spread_by_hand() -> None:
    # seeds 0.80, 0.82, 0.84: mean 0.82, std over seeds 0.02; per-seed draw stds 0.01, 0.02, 0.03: mean 0.02
    reports = [report({0.3: a}) for a in (0.80, 0.82, 0.84)]
    for r, std in zip(reports, (0.01, 0.02, 0.03), strict=True):
        r["results"][0]["accuracy_std"] = std
    (row,) = results_tables.seed_spread(reports)
    assert (row["mean"], row["seed_std"], row["draw_std"]) == pytest.approx((0.82, 0.02, 0.02))
    assert "| BSC 0.3 | 82.00 | 2.00 | 2.00 | 1.0 |" in results_tables.markdown_spread([row], "SNN")
    with pytest.raises(ValueError, match="at least 2 seeds"):
        results_tables.seed_spread(reports[:1])


ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "docs" / "results" / "wide-s"


def _seed_files(stem: str, channel: str) -> list[str]:
    return [str(SEEDS / f"{stem}{suffix}-{channel}.json") for suffix in ("", "-s1", "-s2")]


@pytest.mark.parametrize("channel", ["bsc", "bec"])
@pytest.mark.parametrize(("stem", "label"), [("cnn-T8-bsc0.15", "CNN-q8"), ("cnn-T1-bsc0.15-c32", "CNN-q1")])
def test_results_md_gap_tables_are_the_scripts_output(stem: str, label: str, channel: str) -> None:
    """docs/RESULTS.md's seed-gap tables are exactly what the script prints from the committed JSONs."""
    rows = results_tables.seed_gaps(results_tables.load_list(_seed_files("snn-T8-bsc0.15", channel)),
                                    results_tables.load_list(_seed_files(stem, channel)))
    table = results_tables.markdown_gaps(rows, f"SNN − {label}").strip()
    assert table in (ROOT / "docs" / "RESULTS.md").read_text()


def test_results_md_seed_spread_table() -> None:
    """The 'std over seeds / std over draws' table of docs/RESULTS.md against the committed JSONs."""
    text = (ROOT / "docs" / "RESULTS.md").read_text()
    start = text.index("| BSC p | SNN | CNN-q8 | CNN-q1 |")
    lines = text[start:].split("\n\n")[0].splitlines()[2:]
    documented = {float(cells[0]): cells[1:] for cells in
                  ([c.strip() for c in line.strip("|").split("|")] for line in lines)}
    for column, stem in enumerate(("snn-T8-bsc0.15", "cnn-T8-bsc0.15", "cnn-T1-bsc0.15-c32")):
        for row in results_tables.seed_spread(results_tables.load_list(_seed_files(stem, "bsc"))):
            seeds, draws = documented[row["p"]][column].split(" / ")
            assert float(seeds) == pytest.approx(100 * row["seed_std"], abs=0.005 + 1e-9), (stem, row["p"])
            assert float(draws) == pytest.approx(100 * row["draw_std"], abs=0.005 + 1e-9), (stem, row["p"])


def _mean(row: dict, with_spread: bool) -> str:
    return f"{100 * row['accuracy_mean']:.2f}" + (f" ± {100 * row['accuracy_std']:.2f}" if with_spread else "")


def test_results_md_held_out_threshold_table() -> None:
    """The 'picked on A, reported on B' table of docs/RESULTS.md against the committed --halves reports."""
    folder = ROOT / "docs" / "results" / "wide" / "progressive" / "halves"
    progressive = json.loads((folder / "progressive-halves.json").read_text())
    reference = {row["p"]: row["halves"]["B"] for row in
                 json.loads((folder / "snn-default-halves.json").read_text())["halves"]["rows"]}
    text = (ROOT / "docs" / "RESULTS.md").read_text()
    for pick in progressive["halves"]["selection"]:
        a, b, ref = pick["picked_on"], pick["reported_on"], reference[pick["p"]]
        noisy = pick["p"] > 0  # a clean link has no channel draws to spread over: no "±"
        row = (f"| {pick['p']:g} | {pick['confidence']:g} | {_mean(a, noisy)}, "
               f"{a['mean_payload_bits']:.1f} | {_mean(b, noisy)}, "
               f"{b['mean_payload_bits']:.1f} ({100 * b['mean_payload_bits'] / 512:.0f}%) | "
               f"{_mean(ref, noisy)} | "
               f"{100 * (b['accuracy_mean'] - ref['accuracy_mean']):+.2f} |".replace("-", "−"))
        assert row in text, row
