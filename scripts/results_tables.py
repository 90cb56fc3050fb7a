#!/usr/bin/env python3
"""Markdown tables from saved ``sjscc eval`` JSON files (docs/RESULTS.md is built from its output).

    .venv/bin/python scripts/results_tables.py docs/results/snn-T8-bsc0.15-bsc.json ... [--pairs]

One table per swept channel: a row per p, a column per file (accuracy mean ± std over the repeats, in %).
``--pairs`` adds, for every SNN file with a CNN file of the same condition, the SNN − CNN difference per p.

Training seeds (issues 16, 24): the SNN − CNN gap per p over training seeds with a 95% Welch t-interval::

    .venv/bin/python scripts/results_tables.py --gap-snn snn-s0.json snn-s1.json snn-s2.json \
        --gap-cnn cnn-s0.json cnn-s1.json cnn-s2.json --gap-label "SNN − CNN-q8"

The seeds are **not** paired: SNN seed i and CNN seed i share nothing, so the two models' seeds are two
independent samples (their counts may differ). Per seed, the accuracy is the mean over the repeats (channel
draws); the gap is mean(SNN seeds) − mean(CNN seeds) with the Welch interval of
:func:`sjscc.training.statistics.welch_interval`. A gap is resolved at p when the interval excludes 0;
otherwise the verdict is "not resolved" (which is not "level": the interval says how large a gap it allows).

``--spread FILE...`` (one model, one report per seed): per p the std over training seeds beside the std over
channel draws that a single-seed "±" shows.
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


def seed_gaps(snn: list[dict], cnn: list[dict], confidence: float = 0.95) -> list[dict]:
    """Per condition present in every report: mean over SNN seeds − mean over CNN seeds of the accuracy, with
    the unpaired Welch ``confidence`` interval (``snn`` and ``cnn``: one report per training seed each)."""
    from sjscc.training.statistics import welch_interval

    if len(snn) < 2 or len(cnn) < 2:
        raise ValueError(f"an interval over seeds needs at least 2 seeds per model, got {len(snn)} SNN and "
                         f"{len(cnn)} CNN reports")
    data = {(r.get("dataset"), r.get("split"), r.get("n_images")) for r in snn + cnn}
    if len(data) > 1:
        raise ValueError(f"the reports were evaluated on different data: {sorted(map(str, data))}")
    tables = [{_condition(row): row["accuracy_mean"] for row in report["results"]} for report in snn + cnn]
    common = [c for c in tables[0] if all(c in table for table in tables)]
    rows = []
    for condition in common:
        first = [table[condition] for table in tables[: len(snn)]]
        second = [table[condition] for table in tables[len(snn):]]
        interval = welch_interval(first, second, confidence)
        channel, burst, interleave, p = condition
        rows.append({"channel": channel, "burst": burst, "interleave": interleave, "p": p,
                     "seeds": (len(snn), len(cnn)), "snn": first, "cnn": second, "gap_mean": interval.difference,
                     "half_width": interval.half_width, "degrees_of_freedom": interval.degrees_of_freedom,
                     "interval": (interval.low, interval.high), "confidence": confidence,
                     "verdict": interval.verdict("SNN", "CNN")})
    return rows


def seed_spread(reports: list[dict]) -> list[dict]:
    """Per condition present in every report (one report per training seed of one model): the mean over seeds,
    the sample std over seeds (n − 1) and the mean of the per-seed channel-draw stds (population std over the
    repeats, what a single-seed "±" shows), so the two spreads can be set side by side."""
    if len(reports) < 2:
        raise ValueError(f"a spread over seeds needs at least 2 seeds, got {len(reports)}")
    tables = [{_condition(row): row for row in report["results"]} for report in reports]
    rows = []
    for condition in [c for c in tables[0] if all(c in table for table in tables)]:
        means = [table[condition]["accuracy_mean"] for table in tables]
        mean = sum(means) / len(means)
        seed_std = (sum((m - mean) ** 2 for m in means) / (len(means) - 1)) ** 0.5
        draw_std = sum(table[condition]["accuracy_std"] for table in tables) / len(tables)
        rows.append({"channel": condition[0], "p": condition[3], "seeds": len(reports), "mean": mean,
                     "seed_std": seed_std, "draw_std": draw_std, "repeats": tables[0][condition]["repeats"]})
    return rows


def markdown_spread(rows: list[dict], label: str) -> str:
    """One line per condition: mean over seeds, std over seeds, mean std over channel draws, their ratio."""
    lines = [f"**{label}** (accuracy %, {rows[0]['seeds']} training seeds, {rows[0]['repeats']} channel draws each)\n",
             "| channel, p | mean over seeds | std over seeds | std over draws (mean of the seeds') | ratio |",
             "|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['seed_std'] / r['draw_std']:.1f}" if r["draw_std"] > 0 else "—"
        lines.append(f"| {r['channel'].upper()} {r['p']:g} | {100 * r['mean']:.2f} | {100 * r['seed_std']:.2f} | "
                     f"{100 * r['draw_std']:.2f} | {ratio} |")
    return "\n".join(lines) + "\n"


def markdown_gaps(rows: list[dict], label: str = "SNN − CNN") -> str:
    """One table per channel condition: gap mean and interval in percentage points, and the verdict."""
    lines = []
    conditions = dict.fromkeys((r["channel"], r["burst"], r["interleave"]) for r in rows)
    for channel, burst, interleave in conditions:
        name = channel.upper() + (f" L={burst:g}" if burst is not None else "") + (
            " + interleaver" if interleave is not None else "")
        chosen = [r for r in rows if (r["channel"], r["burst"], r["interleave"]) == (channel, burst, interleave)]
        level = round(100 * chosen[0]["confidence"])
        n_snn, n_cnn = chosen[0]["seeds"]
        lines.append(f"**{label} on {name}** (percentage points, {n_snn} SNN and {n_cnn} CNN training seeds, "
                     f"unpaired, {level}% Welch t-interval)\n")
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
    parser.add_argument("--gap-cnn", nargs="+", default=[], metavar="FILE", help="CNN reports, one per seed (unpaired)")
    parser.add_argument("--gap-label", default="SNN − CNN", help="title of the gap tables")
    parser.add_argument("--spread", nargs="+", default=[], metavar="FILE",
                        help="one model's reports, one per training seed: spread over seeds against over draws")
    parser.add_argument("--spread-label", default="spread over seeds", help="title of the spread table")
    args = parser.parse_args()
    if not args.files and not args.gap_snn and not args.spread:
        parser.error("give eval JSON files, --gap-snn and --gap-cnn, or --spread")
    if args.spread:
        try:
            print(markdown_spread(seed_spread(load_list(args.spread)), args.spread_label))
        except ValueError as error:
            parser.error(str(error))
    if args.files:
        print(markdown(load(args.files), args.pairs))
    if args.gap_snn or args.gap_cnn:
        try:
            rows = seed_gaps(load_list(args.gap_snn), load_list(args.gap_cnn))
        except ValueError as error:
            parser.error(str(error))
        print(markdown_gaps(rows, args.gap_label))


if __name__ == "__main__":
    main()
