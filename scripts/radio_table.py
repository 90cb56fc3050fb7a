"""Markdown tables from the radio-link eval JSONs: hard vs soft per bundle, link and Eb/N0.

Files written by ``scripts/radio-evals.sh`` (``NAME-<kind>-<modulation>-<coherence>.json``, one ``sjscc eval
--decisions soft --paired-hard`` run each) hold, per Eb/N0, the soft and the hard decisions of the *same* received
symbols, so "soft - hard" is a paired interval over images (the draws of an image averaged first): it spans image
sampling and channel draws, **not training seeds** (``evaluate.paired_difference``). Older files, one per decision
(``...-hard.json`` / ``...-soft.json``), are read too; their interval is the conservative unpaired one (a(1-a)/n
per arm).

usage: python scripts/radio_table.py docs/results/radio/val5000 [--bundles NAME,NAME]
       python scripts/radio_table.py docs/results/radio/val5000 --columns NAME:hard,NAME:soft,...
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

LINK_SUFFIX = re.compile(r"-(awgn|rayleigh)-(bpsk|qpsk|16qam)-(packet|step|\d+)(-(hard|soft))?(-low)?\.json$")
"""``NAME-<kind>-<modulation>-<coherence>[-<decisions>][-low].json``, as scripts/radio-evals.sh names its files."""


def rows(folder: Path) -> dict[tuple, dict]:
    """(bundle name, kind, modulation, coherence, Eb/N0) -> {"n", "hard": row, "soft": row, "paired": bool}."""
    table: dict[tuple, dict] = {}
    for path in sorted(folder.glob("*.json")):
        match = LINK_SUFFIX.search(path.name)
        if not match:
            continue
        name = path.name[: match.start()]
        report = json.loads(path.read_text())
        for row in report["results"]:
            key = (name, row["channel"], row["modulation"], row["coherence"], row["snr_db"])
            entry = table.setdefault(key, {"n": report["n_images"], "paired": False})
            entry[row["decisions"]] = row
            if "hard" in row and "soft_minus_hard" in row:
                entry["hard"] = {**row["hard"], "bsc_equivalent": row.get("bsc_equivalent")}
                entry["paired"] = True
    return table


def difference(entry: dict) -> str:
    hard, soft, n = entry.get("hard"), entry.get("soft"), entry["n"]
    if not (hard and soft):
        return "-"
    if entry["paired"]:
        diff = soft["soft_minus_hard"]
        mean, (low, high) = diff["mean"], diff["ci95"]
    else:
        a, b = hard["accuracy_mean"], soft["accuracy_mean"]
        half = 1.96 * math.sqrt(a * (1 - a) / n + b * (1 - b) / n)
        mean, low, high = b - a, b - a - half, b - a + half
    text = f"{100 * mean:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]"
    return text + (" not resolved" if low <= 0 <= high else "")


def main(folder: str, bundles: list[str] | None = None) -> None:
    print("| bundle | link | Eb/N0 dB | BER measured (closed form) | hard % | soft % | soft − hard, 95% | BSC(p) % |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    table = rows(Path(folder))
    order = {name: i for i, name in enumerate(bundles or [])}
    for key in sorted(table, key=lambda k: (order.get(k[0], len(order)), k[0], k[1], k[2], k[3], k[4])):
        name, kind, modulation, coherence, snr = key
        if bundles and name not in order:
            continue
        entry = table[key]
        hard, soft = entry.get("hard"), entry.get("soft")
        any_row = soft or hard
        link = f"{kind} {modulation}" + (f" ({coherence})" if kind == "rayleigh" else "")
        ber = f"{any_row['ber']:.4f} ({any_row['p']:.4f})" if "ber" in any_row else f"({any_row['p']:.4f})"
        cells = [f"{100 * r['accuracy_mean']:.2f}" if r else "-" for r in (hard, soft)]
        bsc = (hard or {}).get("bsc_equivalent") or (soft or {}).get("bsc_equivalent")
        bsc_cell = f"{100 * bsc['accuracy_mean']:.2f}" if bsc else "-"
        print(f"| {name} | {link} | {snr:g} | {ber} | {cells[0]} | {cells[1]} | {difference(entry)} | {bsc_cell} |")


def columns_table(folder: str, columns: list[str]) -> None:
    """One row per (link, Eb/N0), one column per ``NAME:decisions``: the accuracy side by side (one training seed
    per bundle; the draws are keyed by the setting, so every column saw the same noise and images)."""
    table = rows(Path(folder))
    wanted = [tuple(c.split(":")) for c in columns]
    print("| link | Eb/N0 dB | " + " | ".join(f"{name} {decisions}" for name, decisions in wanted) + " |")
    print("|---|---:|" + "---:|" * len(wanted))
    settings = sorted({key[1:] for key in table if key[0] in {name for name, _ in wanted}})
    for kind, modulation, coherence, snr in settings:
        cells = []
        for name, decisions in wanted:
            entry = table.get((name, kind, modulation, coherence, snr)) or {}
            row = entry.get(decisions)
            cells.append(f"{100 * row['accuracy_mean']:.2f}" if row else "-")
        link = f"{kind} {modulation}" + (f" ({coherence})" if kind == "rayleigh" else "")
        print(f"| {link} | {snr:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    selected = None
    if "--bundles" in arguments:
        at = arguments.index("--bundles")
        selected = arguments[at + 1].split(",")
        del arguments[at: at + 2]
    if "--columns" in arguments:
        at = arguments.index("--columns")
        wanted = arguments[at + 1].split(",")
        del arguments[at: at + 2]
        columns_table(arguments[0] if arguments else "docs/results/radio/val5000", wanted)
    else:
        main(arguments[0] if arguments else "docs/results/radio/val5000", selected)
