#!/usr/bin/env python3
"""Markdown tables from saved ``sjscc eval`` JSON files (docs/RESULTS.md is built from its output).

    .venv/bin/python scripts/results_tables.py docs/results/snn-T8-bsc0.15-bsc.json ... [--pairs]

One table per swept channel: a row per p, a column per file (accuracy mean ± std over the repeats, in %).
``--pairs`` adds, for every SNN file with a CNN file of the same condition, the SNN − CNN difference per p.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--pairs", action="store_true", help="add SNN - CNN differences for matched conditions")
    args = parser.parse_args()
    print(markdown(load(args.files), args.pairs))


if __name__ == "__main__":
    main()
