"""Figures from ``sjscc eval`` reports (matplotlib, Agg backend: no display needed).

- :func:`plot_accuracy`: accuracy vs p with one line per bundle and error bars of one std over the channel draws
  (a footnote on every accuracy figure says so: not the spread over training seeds),
  one panel per channel kind (the papers' Fig. 4/5). As in the papers, bundles trained under the same
  channel condition share a colour; SNN codecs are solid lines and CNN baselines dashed.
- :func:`plot_firing_rates`: histogram of the per-image firing rate of the encoder output (Fig. 7).
- :func:`plot_rate_accuracy`: accuracy against bits per image, one panel per (channel, p): a progressive
  bundle's confidence curve and fixed-prefix curve, every other bundle as one point at its payload bits, and
  fixed-rate CNN-q<n> bundles of one latent size joined into one line (the rate ladder a fixed codec offers).

Both take the report dicts of :mod:`sjscc.training.evaluate` (or the JSON files ``sjscc eval --out`` wrote,
through :func:`load_reports`), so every figure is one command away from saved results.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def load_reports(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Read eval JSON files; each holds one report or a list of them."""
    reports: list[dict[str, Any]] = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as error:
            raise FileNotFoundError(f"cannot read {path}: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        items = data if isinstance(data, list) else [data]
        for item in items:
            if not isinstance(item, dict) or "results" not in item or "bundle" not in item:
                raise ValueError(f"{path} does not hold sjscc eval reports (no 'bundle' and 'results')")
            reports.append(item)
    if not reports:
        raise ValueError("no eval reports to plot")
    return reports


def _labels(reports: Sequence[dict[str, Any]]) -> list[str]:
    """Legend entries; bundles that would share one get their model id appended."""
    labels = [str(r.get("label") or r["bundle"]) for r in reports]
    return [f"{label} [{r['bundle'][:8]}]" if labels.count(label) > 1 else label
            for label, r in zip(labels, reports, strict=True)]


def _condition(report: dict[str, Any]) -> str:
    """What decides a line's colour: the training channel and the bits per element (T or n)."""
    train = report.get("train_channel") or {}
    return f"{train.get('kind')}|{train.get('p')}|{train.get('p_max')}|{report.get('timesteps')}"


def _linestyle(report: dict[str, Any]) -> str:
    return "--" if str(report.get("codec", "")).startswith("cnn") else "-"


def _colours(reports: Sequence[dict[str, Any]]) -> list[str]:
    """One colour per training condition; a second bundle with the same condition and line style gets its own."""
    by_condition: dict[str, str] = {}
    used: set[tuple[str, str]] = set()
    colours, next_colour = [], 0
    for report in reports:
        condition, style = _condition(report), _linestyle(report)
        if condition not in by_condition or (by_condition[condition], style) in used:
            by_condition[condition] = f"C{next_colour % 10}"
            next_colour += 1
        used.add((by_condition[condition], style))
        colours.append(by_condition[condition])
    return colours


def _panel(row: dict[str, Any]) -> str:
    """A sweep row's panel: its channel kind, and whether a bit interleaver was around the channel."""
    return row["channel"] + (" + interleaver" if row.get("interleave") is not None else "")


def plot_accuracy(reports: Sequence[dict[str, Any]], out: str | Path, title: str | None = None) -> Path:
    """Accuracy (mean ± std over channel draws) against p; one panel per channel kind, one line per bundle.

    Reports of the same bundle (e.g. its BSC and its BEC sweep saved apart) are merged first, so a bundle keeps
    one colour and one legend entry across panels. A channel swept with and without the interleaver gets two
    panels."""
    merged: dict[str, dict[str, Any]] = {}
    for report in reports:
        if report["bundle"] in merged:
            merged[report["bundle"]]["results"] = merged[report["bundle"]]["results"] + list(report["results"])
        else:
            merged[report["bundle"]] = {**report, "results": list(report["results"])}
    reports = list(merged.values())
    channels = list(dict.fromkeys(_panel(row) for report in reports for row in report["results"]))
    if not channels:
        raise ValueError("the reports hold no channel results to plot")
    colours, labels = _colours(reports), _labels(reports)
    figure, axes = plt.subplots(1, len(channels), figsize=(5.2 * len(channels), 4.0), squeeze=False)
    for axis, channel in zip(axes[0], channels, strict=True):
        for report, colour, label in zip(reports, colours, labels, strict=True):
            rows = sorted((row for row in report["results"] if _panel(row) == channel and "mode" not in row),
                          key=lambda r: r["p"])
            if not rows:
                continue
            axis.errorbar([r["p"] for r in rows], [100 * r["accuracy_mean"] for r in rows],
                          yerr=[100 * r["accuracy_std"] for r in rows], label=label,
                          color=colour, linestyle=_linestyle(report), marker="o",
                          markersize=3, capsize=3, linewidth=1.4)
        names = {"bsc": "bit error rate (BSC)", "bec": "bit erasure rate (BEC)"}
        kind = names.get(channel, f"mean error rate ({channel})")
        axis.set_xlabel(kind)
        axis.set_ylabel("accuracy (%)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
        axis.set_title(channel.upper().replace("INTERLEAVER", "interleaver"))
    if title:
        figure.suptitle(title)
    _add_note(figure, error_bar_note(reports))
    return _save(figure, out)


def _link_panel(row: dict[str, Any]) -> str:
    """A radio-link row's panel: link kind, modulation and (Rayleigh) coherence."""
    panel = f"{row['channel'].upper()} {row['modulation'].upper()}"
    return panel + (f", coherence {row['coherence']}" if row["channel"] == "rayleigh" else "")


def plot_link_accuracy(reports: Sequence[dict[str, Any]], out: str | Path, title: str | None = None) -> Path:
    """Accuracy (mean ± std over channel draws) against Eb/N0 over radio links, one panel per (link, modulation,
    coherence); per bundle a solid line for hard and a dash-dot line for soft decisions, and a dotted line for the
    same bundle over BSC(p = the link's closed-form BER): where the dotted line and the link's line part, the BSC
    abstraction no longer describes the link. Reports of one bundle (its hard and soft sweeps saved apart) are
    merged first, so a bundle keeps one colour."""
    merged: dict[str, dict[str, Any]] = {}
    for report in reports:
        if report["bundle"] in merged:
            merged[report["bundle"]]["results"] = merged[report["bundle"]]["results"] + list(report["results"])
        else:
            merged[report["bundle"]] = {**report, "results": list(report["results"])}
    reports = list(merged.values())
    rows_of = [_with_paired_hard([row for row in report["results"] if row.get("snr_db") is not None])
               for report in reports]
    panels = list(dict.fromkeys(_link_panel(row) for rows in rows_of for row in rows))
    if not panels:
        raise ValueError("the reports hold no radio-link results (rows with snr_db) to plot")
    colours, labels = [f"C{i % 10}" for i in range(len(reports))], _labels(reports)  # line style = decisions
    figure, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.2), squeeze=False)
    for axis, panel in zip(axes[0], panels, strict=True):
        for rows, colour, label in zip(rows_of, colours, labels, strict=True):
            for decisions, style in (("hard", "-"), ("soft", "-.")):
                line = sorted((r for r in rows if _link_panel(r) == panel and r["decisions"] == decisions),
                              key=lambda r: r["snr_db"])
                if not line:
                    continue
                axis.errorbar([r["snr_db"] for r in line], [100 * r["accuracy_mean"] for r in line],
                              yerr=[100 * r["accuracy_std"] for r in line], label=f"{label}, {decisions}",
                              color=colour, linestyle=style, marker="o", markersize=3, capsize=3, linewidth=1.4)
            equivalent = sorted((r for r in rows if _link_panel(r) == panel and r.get("bsc_equivalent")),
                                key=lambda r: r["snr_db"])
            seen: dict[float, dict[str, Any]] = {r["snr_db"]: r["bsc_equivalent"] for r in equivalent}
            if seen:
                axis.errorbar(list(seen), [100 * e["accuracy_mean"] for e in seen.values()],
                              yerr=[100 * e["accuracy_std"] for e in seen.values()], label=f"{label}, BSC(p) equiv.",
                              color=colour, linestyle=":", marker="x", markersize=3, capsize=2, linewidth=1.0)
        axis.set_xlabel("Eb/N0 (dB)")
        axis.set_ylabel("accuracy (%)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=6)
        axis.set_title(panel)
    if title:
        figure.suptitle(title)
    _add_note(figure, error_bar_note(reports))
    return _save(figure, out)


def _with_paired_hard(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Soft rows of ``--paired-hard`` runs carry the hard decisions of the same noise (``row["hard"]``): add them as
    hard rows (unless the reports already hold a hard row at that setting), so both lines are drawn."""
    seen = {(r["channel"], r["modulation"], r["coherence"], r["snr_db"]) for r in rows if r["decisions"] == "hard"}
    extra = [{**row, **row["hard"], "decisions": "hard"} for row in rows
             if row.get("hard") and (row["channel"], row["modulation"], row["coherence"], row["snr_db"]) not in seen]
    return rows + extra


def _ladder_key(report: dict[str, Any]) -> int | None:
    """Latent values per image of a fixed-rate ``cnn-q<n>`` report (its rung's family), else None."""
    codec, bits, n = str(report.get("codec", "")), report.get("payload_bits"), report.get("timesteps")
    if not (codec.startswith("cnn-q") and bits and n) or any(row.get("mode") for row in report["results"]):
        return None
    return int(bits) // int(n)


def plot_firing_rates(reports: Sequence[dict[str, Any]], out: str | Path, title: str | None = None) -> Path:
    """Per-image firing-rate histograms of the encoder output, one step outline per bundle, mean marked."""
    usable = [r for r in reports if isinstance(r.get("firing_rate"), dict) and r["firing_rate"].get("counts")]
    if not usable:
        raise ValueError("the reports hold no firing-rate histogram (run sjscc eval from this version)")
    figure, axis = plt.subplots(figsize=(5.6, 4.0))
    for i, (report, label) in enumerate(zip(usable, _labels(usable), strict=True)):
        rate = report["firing_rate"]
        counts, bins = rate["counts"], int(rate.get("bins", len(rate["counts"])))
        total = max(1, sum(counts))
        edges = [k / bins for k in range(bins + 1)]
        colour = f"C{i % 10}"
        axis.stairs([c / total for c in counts], edges, label=f"{label} (mean {rate['mean']:.3f})",
                    color=colour, fill=len(usable) == 1, alpha=0.6 if len(usable) == 1 else 1.0)
        axis.axvline(rate["mean"], color=colour, linestyle=":", linewidth=1)
    axis.set_xlabel("firing rate of the encoder output per image")
    axis.set_ylabel("fraction of images")
    axis.set_xlim(0, 1)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7)
    axis.set_title(title or "Firing rate of the transmitted bits")
    return _save(figure, out)


def plot_rate_accuracy(reports: Sequence[dict[str, Any]], out: str | Path, title: str | None = None) -> Path:
    """Accuracy (%) against mean payload bits per image, one panel per (channel, p) found in the reports.

    Progressive reports (rows with ``mode``) give two curves: the confidence rule (one point per threshold) and the
    model cut at each fixed prefix; any other report gives one point at its ``payload_bits`` (its full-T row),
    except that two or more ``cnn-q<n>`` reports with the same number of latent values are one line through their
    rungs, marked with n. When a progressive report is given, its (channel, p) pairs are the panels.
    """
    progressive = [r for r in reports if any(row.get("mode") == "progressive" for row in r["results"])]
    panels = list(dict.fromkeys((row["channel"], row["p"]) for r in progressive or reports for row in r["results"]))
    if not panels:
        raise ValueError("the reports hold no channel results to plot")
    families: dict[int, list[dict[str, Any]]] = {}
    for report in reports:
        if (key := _ladder_key(report)) is not None:
            families.setdefault(key, []).append(report)
    ladders = {key: sorted(rungs, key=lambda r: r["payload_bits"]) for key, rungs in families.items() if len(rungs) > 1}
    in_ladder = {id(r) for rungs in ladders.values() for r in rungs}
    labels = _labels(reports)
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for axis, (channel, p) in zip(axes[0], panels, strict=True):
        for i, (report, label) in enumerate(zip(reports, labels, strict=True)):
            rows = [row for row in report["results"] if row["channel"] == channel and row["p"] == p]
            colour = f"C{i % 10}"
            prefix = sorted((r for r in rows if r.get("mode") == "prefix"), key=lambda r: r["timesteps"])
            rule = sorted((r for r in rows if r.get("mode") == "progressive"), key=lambda r: r["mean_payload_bits"])
            fixed = [r for r in rows if "mode" not in r]
            if prefix:
                axis.plot([r["mean_payload_bits"] for r in prefix], [100 * r["accuracy_mean"] for r in prefix],
                          color=colour, linestyle=":", marker="s", markersize=3, label=f"{label}: fixed prefix t")
            if rule:
                axis.errorbar([r["mean_payload_bits"] for r in rule], [100 * r["accuracy_mean"] for r in rule],
                              yerr=[100 * r["accuracy_std"] for r in rule], color=colour, marker="o", markersize=4,
                              capsize=2, label=f"{label}: stop at confidence")
                for r in rule:
                    axis.annotate(f"{r['confidence']:g}", (r["mean_payload_bits"], 100 * r["accuracy_mean"]),
                                  fontsize=6, xytext=(3, -8), textcoords="offset points")
            if fixed and not (prefix or rule) and report.get("payload_bits") and id(report) not in in_ladder:
                axis.errorbar([report["payload_bits"]], [100 * fixed[0]["accuracy_mean"]],
                              yerr=[100 * fixed[0]["accuracy_std"]], color=colour, marker="D", linestyle="none",
                              capsize=3, label=label)
        for j, (latent, rungs) in enumerate(ladders.items()):
            points = [(r["payload_bits"], row, r["timesteps"]) for r in rungs for row in r["results"]
                      if row["channel"] == channel and row["p"] == p and "mode" not in row]
            if not points:
                continue
            axis.errorbar([b for b, _, _ in points], [100 * row["accuracy_mean"] for _, row, _ in points],
                          yerr=[100 * row["accuracy_std"] for _, row, _ in points], color="k", alpha=0.8 - 0.3 * j,
                          linestyle="--", marker="D", markersize=3, capsize=2,
                          label=f"CNN-q<n> trained per rate ({latent} latent values)")
            for bits, row, n in points:
                axis.annotate(f"q{n}", (bits, 100 * row["accuracy_mean"]), fontsize=6, xytext=(3, 4),
                              textcoords="offset points")
        axis.set_xlabel("bits per image (mean)")
        axis.set_ylabel("accuracy (%)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=6)
        axis.set_title(f"{channel.upper()} p = {p:g}")
    if title:
        figure.suptitle(title)
    _add_note(figure, error_bar_note(reports))
    return _save(figure, out)


def error_bar_note(reports: Sequence[dict[str, Any]]) -> str:
    """What the error bars span, printed under every accuracy figure: the channel draws of one trained model,
    which a reader must not take for the spread over training seeds (docs/RESULTS.md, "How to read")."""
    repeats = sorted({int(row["repeats"]) for report in reports for row in report["results"] if row.get("repeats")})
    count = "/".join(str(r) for r in repeats) or "the"
    return f"error bars: ±1 std over {count} channel draws of one trained model, not over training seeds"


def _add_note(figure: plt.Figure, note: str) -> None:
    """A footnote under the axes (``_save`` writes with a tight bounding box, which takes it in)."""
    figure.text(0.5, 0.0, note, ha="center", va="top", fontsize=7, color="0.3")


def _save(figure: plt.Figure, out: str | Path) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(figure)
    return path


PLOTS = {"accuracy": plot_accuracy, "firing-rate": plot_firing_rates, "rate": plot_rate_accuracy,
         "link": plot_link_accuracy}
