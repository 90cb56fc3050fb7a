#!/usr/bin/env python3
"""Markdown tables from saved ``sjscc eval`` JSON files (docs/RESULTS.md is built from its output).

    .venv/bin/python scripts/results_tables.py docs/results/snn-T8-bsc0.15-bsc.json ... [--pairs]

One table per swept channel: a row per p, a column per file (accuracy mean ± std over the repeats, in %).
``--pairs`` adds, for every SNN file with a CNN file of the same condition, the SNN − CNN difference per p.

Training seeds (issue 16): the SNN − CNN gap per p as a paired mean over seeds with a 95% t-interval::

    .venv/bin/python scripts/results_tables.py --gap-snn snn-s0.json snn-s1.json snn-s2.json \
        --gap-cnn cnn-s0.json cnn-s1.json cnn-s2.json --gap-label "SNN − CNN-q8"

The i-th SNN file is paired with the i-th CNN file (the same training seed; ``sjscc eval`` draws the same
channel noise for both, so the pair differs only by the model). Per seed, the gap is the difference of the
accuracy means over the repeats; over the n seeds, ``mean ± t(0.975, n−1) · s / sqrt(n)`` with ``s`` the
sample standard deviation (n − 1). A claim "holds beyond the noise" at p when the interval excludes 0.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def load(paths: list[str]) -> dict[str, dict]:
    reports = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        for report in data if isinstance(data, list) else [data]:
            reports[Path(path).stem] = report
    return reports


def load_list(paths: list[str]) -> list[dict]:
    """One report per file, in the order given (files with one report each)."""
    reports = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        if isinstance(data, list):
            raise ValueError(f"{path} holds {len(data)} reports; give one file per seed")
        reports.append(data)
    return reports


def by_channel(reports: dict[str, dict]) -> dict[str, dict[str, dict[float, tuple[float, float]]]]:
    table: dict[str, dict[str, dict[float, tuple[float, float]]]] = defaultdict(dict)
    for name, report in reports.items():
        for row in report["results"]:
            table[row["channel"]].setdefault(name, {})[row["p"]] = (row["accuracy_mean"], row["accuracy_std"])
    return table


def markdown(reports: dict[str, dict], pairs: bool) -> str:
    lines = []
    for channel, columns in by_channel(reports).items():
        names = list(columns)
        ps = sorted({p for column in columns.values() for p in column})
        lines.append(f"**{channel.upper()} sweep** (validation accuracy %, mean ± std over the repeats)\n")
        lines.append("| p | " + " | ".join(names) + " |")
        lines.append("|---" * (len(names) + 1) + "|")
        for p in ps:
            cells = [f"{100 * columns[n][p][0]:.2f} ± {100 * columns[n][p][1]:.2f}" if p in columns[n] else ""
                     for n in names]
            lines.append(f"| {p:g} | " + " | ".join(cells) + " |")
        lines.append("")
        if pairs:
            snn = [n for n in names if n.startswith("snn-") and "cnn-" + n[4:] in columns]
            if snn:
                lines.append(f"SNN − CNN on {channel.upper()} (percentage points):\n")
                lines.append("| p | " + " | ".join(n[4:] for n in snn) + " |")
                lines.append("|---" * (len(snn) + 1) + "|")
                for p in ps:
                    cells = []
                    for n in snn:
                        a, b = columns[n].get(p), columns["cnn-" + n[4:]].get(p)
                        cells.append(f"{100 * (a[0] - b[0]):+.2f}" if a and b else "")
                    lines.append(f"| {p:g} | " + " | ".join(cells) + " |")
                lines.append("")
    return "\n".join(lines)


def _condition(row: dict) -> tuple:
    """What makes two result rows comparable: channel, p, and the GE burst / interleaver when present."""
    return (row["channel"], row.get("burst"), row.get("interleave"), float(row["p"]))


def paired_gaps(snn: list[dict], cnn: list[dict], confidence: float = 0.95) -> list[dict]:
    """Per condition present in every report: the mean over seeds of (SNN − CNN) accuracy, its sample std and
    the ``confidence`` t-interval. ``snn[i]`` and ``cnn[i]`` are the same training seed."""
    from scipy.stats import t as student

    if len(snn) != len(cnn):
        raise ValueError(f"{len(snn)} SNN reports but {len(cnn)} CNN reports: pair them seed by seed")
    if len(snn) < 2:
        raise ValueError(f"an interval over seeds needs at least 2 seeds, got {len(snn)}")
    for a, b in zip(snn, cnn, strict=True):
        if (a.get("dataset"), a.get("split"), a.get("n_images")) != (b.get("dataset"), b.get("split"),
                                                                      b.get("n_images")):
            raise ValueError(f"unpaired reports: {a.get('bundle')} and {b.get('bundle')} were evaluated on "
                             "different data")
    tables = [{_condition(row): row["accuracy_mean"] for row in report["results"]} for report in snn + cnn]
    common = [c for c in tables[0] if all(c in table for table in tables)]
    n = len(snn)
    quantile = float(student.ppf(0.5 + confidence / 2, n - 1))
    rows = []
    for condition in common:
        gaps = [tables[i][condition] - tables[n + i][condition] for i in range(n)]
        mean = sum(gaps) / n
        std = (sum((g - mean) ** 2 for g in gaps) / (n - 1)) ** 0.5
        half = quantile * std / n**0.5
        channel, burst, interleave, p = condition
        verdict = "SNN better" if mean - half > 0 else "CNN better" if mean + half < 0 else "within noise"
        rows.append({"channel": channel, "burst": burst, "interleave": interleave, "p": p, "seeds": n,
                     "gaps": gaps, "gap_mean": mean, "gap_std": std, "half_width": half,
                     "interval": (mean - half, mean + half), "confidence": confidence, "verdict": verdict})
    return rows


def markdown_gaps(rows: list[dict], label: str = "SNN − CNN") -> str:
    """One table per channel condition: gap mean and interval in percentage points, and the verdict."""
    lines = []
    conditions = dict.fromkeys((r["channel"], r["burst"], r["interleave"]) for r in rows)
    for channel, burst, interleave in conditions:
        name = channel.upper() + (f" L={burst:g}" if burst is not None else "") + (
            " + interleaver" if interleave is not None else "")
        chosen = [r for r in rows if (r["channel"], r["burst"], r["interleave"]) == (channel, burst, interleave)]
        level = round(100 * chosen[0]["confidence"])
        lines.append(f"**{label} on {name}** (percentage points, paired over {chosen[0]['seeds']} training seeds, "
                     f"{level}% t-interval)\n")
        lines.append(f"| p | gap | {level}% interval | verdict |")
        lines.append("|---|---|---|---|")
        for r in chosen:
            low, high = r["interval"]
            lines.append(f"| {r['p']:g} | {100 * r['gap_mean']:+.2f} | [{100 * low:+.2f}, {100 * high:+.2f}] | "
                         f"{r['verdict']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="sjscc eval JSON files, one column each")
    parser.add_argument("--pairs", action="store_true", help="add SNN - CNN differences for matched conditions")
    parser.add_argument("--gap-snn", nargs="+", default=[], metavar="FILE", help="SNN reports, one per seed")
    parser.add_argument("--gap-cnn", nargs="+", default=[], metavar="FILE", help="CNN reports, same seed order")
    parser.add_argument("--gap-label", default="SNN − CNN", help="title of the gap tables")
    args = parser.parse_args()
    if not args.files and not args.gap_snn:
        parser.error("give eval JSON files, or --gap-snn and --gap-cnn")
    if args.files:
        print(markdown(load(args.files), args.pairs))
    if args.gap_snn or args.gap_cnn:
        try:
            rows = paired_gaps(load_list(args.gap_snn), load_list(args.gap_cnn))
        except ValueError as error:
            parser.error(str(error))
        print(markdown_gaps(rows, args.gap_label))


if __name__ == "__main__":
    main()
