"""Markdown tables from the radio-link eval JSONs (docs/results/radio/): hard vs soft per bundle, link and Eb/N0.

The interval on soft - hard is a 95% normal interval treating the two arms as independent samples of the
``n_images`` images (a(1-a)/n per arm): it spans image sampling and channel draws, not training seeds; hard and
soft share images and noise, so the true paired interval is narrower and this one is conservative.
usage: python scripts/radio_table.py docs/results/radio
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def rows(folder: Path) -> dict[tuple, dict]:
    table = {}
    for path in sorted(folder.glob("*.json")):
        report = json.loads(path.read_text())
        name = path.name.split("-awgn-")[0].split("-rayleigh-")[0]
        for row in report["results"]:
            key = (name, row["channel"], row["modulation"], row["coherence"], row["snr_db"])
            table.setdefault(key, {"n": report["n_images"], "seconds": 0.0})[row["decisions"]] = row
            table[key]["seconds"] += report["seconds"]["total"] / len(report["results"])
    return table


def main(folder: str) -> None:
    print("| bundle | link | Eb/N0 dB | BER measured (closed form) | hard | soft | soft - hard, 95% | BSC(p) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for key, arms in sorted(rows(Path(folder)).items()):
        name, kind, modulation, coherence, snr = key
        hard, soft, n = arms.get("hard"), arms.get("soft"), arms["n"]
        any_row = hard or soft
        link = f"{kind} {modulation}" + (f" ({coherence})" if kind == "rayleigh" else "")
        ber = f"{any_row['ber']:.4f} ({any_row['p']:.4f})"
        cells = [f"{100 * r['accuracy_mean']:.2f}" if r else "-" for r in (hard, soft)]
        diff = "-"
        if hard and soft:
            a, b = hard["accuracy_mean"], soft["accuracy_mean"]
            half = 1.96 * math.sqrt(a * (1 - a) / n + b * (1 - b) / n)
            low, high = 100 * (b - a - half), 100 * (b - a + half)
            diff = f"{100 * (b - a):+.2f} [{low:+.2f}, {high:+.2f}]" + (" not resolved" if low < 0 < high else "")
        bsc = (hard or {}).get("bsc_equivalent")
        print(f"| {name} | {link} | {snr:g} | {ber} | {cells[0]} | {cells[1]} | {diff} | "
              f"{100 * bsc['accuracy_mean']:.2f} |" if bsc else
              f"| {name} | {link} | {snr:g} | {ber} | {cells[0]} | {cells[1]} | {diff} | - |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/results/radio")
