"""The SSCC frontier (issue 24): combine each code's BLER curve with each source's accuracy, per budget and SNR.

Inputs: the BLER curves of scripts/sscc/bler.py (AWGN, Eb/N0 per information bit) and the per-half correctness of
scripts/sscc/sources.py. The x axis is **Es/N0 per channel use** (one complex symbol): at a budget of B channel uses
and a given Es/N0 every scheme spends the same symbols and the same energy per image; for uncoded BPSK it equals
Eb/N0. Conversions: a code of rate r on M bits per symbol sees Eb/N0 = Es/N0 - 10 log10(r M); Gray QPSK is two BPSKs
(same BLER at the same Eb/N0). Block Rayleigh with one fade per block (coherence = packet, perfect CSI) is exactly
the AWGN result averaged over the fade's power g ~ Exp(1) (2,000 quantiles of g). A scheme's accuracy at BLER b is
(1 - b) * clean + b * failed, where ``failed`` is the accuracy of an erased block (``erase``: fair-coin fill, or a
gray picture) or 0 (``misclassify``). Each family picks its best configuration on the design half of the validation
split; the table reports the report half.

    python scripts/sscc/frontier.py --results docs/results/sscc
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

BUDGETS = (128, 256, 512, 1024)
BPS = {"bpsk": 1, "qpsk": 2, "16qam": 4}
CRC = 16
GRID = np.arange(-6.0, 20.01, 0.5)
FADES = -np.log(1 - (np.arange(2000) + 0.5) / 2000)  # quantiles of |h|^2 ~ Exp(1)
QPSK_SHIFT = 10 * math.log10(2)


def load_bler(paths: list[Path]) -> dict[tuple, tuple[np.ndarray, np.ndarray, int]]:
    """(k, n, modulation, decisions) -> (Eb/N0 points, BLER, fewest blocks at a point) with repeated points merged."""
    curves = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            record = json.loads(line)
            merged = defaultdict(lambda: [0, 0])
            for point in record["points"]:
                merged[point["snr_db"]][0] += point["errors"]
                merged[point["snr_db"]][1] += point["blocks"]
            snrs = np.array(sorted(merged))
            curves[(record["k"], record["n"], record["modulation"], record["decisions"])] = (
                snrs, np.array([merged[s][0] / merged[s][1] for s in snrs]), min(b for _, b in merged.values()))
    return curves


def bler_at(curve: tuple[np.ndarray, np.ndarray, int], ebno: np.ndarray) -> np.ndarray:
    """Linear interpolation; 1 below the first measured point (every block failed there), 0 above the last (none)."""
    snrs, bler, _ = curve
    return np.interp(ebno, snrs, bler, left=1.0, right=0.0)


def faded(function, esno: np.ndarray) -> np.ndarray:
    """E_g[function(Es/N0 + 10 log10 g)] for block Rayleigh fading (one fade per image)."""
    shifted = esno[:, None] + 10 * np.log10(FADES)[None, :]
    return function(shifted.ravel()).reshape(shifted.shape).mean(axis=1)


def code_bler(curves: dict, k: int, n: int, modulation: str, decisions: str, channel: str) -> np.ndarray | None:
    key = (k, n, "16qam" if modulation == "16qam" else "bpsk", decisions)
    if key not in curves:
        return None
    rate_db = 10 * math.log10((k + CRC) / n * BPS[modulation])

    def awgn(esno: np.ndarray) -> np.ndarray:
        return bler_at(curves[key], esno - rate_db)

    return awgn(GRID) if channel == "awgn" else faded(awgn, GRID)


def uncoded_curve(rows: list[dict], source: str, modulation: str, half: int, n_half: int,
                  channel: str) -> np.ndarray | None:
    base = "16qam" if modulation == "16qam" else "bpsk"
    points = sorted((r["esno_db"], r["correct"][half] / n_half) for r in rows
                    if r["source"] == source and r["modulation"] == base)
    if not points:
        return None
    snrs, accuracy = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    shift = QPSK_SHIFT if modulation == "qpsk" else 0.0

    def awgn(esno: np.ndarray) -> np.ndarray:  # clamped at the ends of the measured grid
        return np.interp(esno - shift, snrs, accuracy)

    return awgn(GRID) if channel == "awgn" else faded(awgn, GRID)


def candidates(sources: dict, curves: dict, budget: int, channel: str, on_failure: str) -> list[dict]:
    """Every configuration at ``budget`` channel uses: its family, name and accuracy curve per half."""
    halves = sources["half_sizes"]
    out = []
    for modulation, bps in BPS.items():
        n = budget * bps
        for rung in range(1, 9):
            source = sources["sources"][f"cnn-q{rung}"]
            for decisions in ("soft", "hard"):
                bler = code_bler(curves, 64 * rung, n, modulation, decisions, channel)
                if bler is None:
                    continue
                per_half = []
                for h in (0, 1):
                    clean = source["clean"][h] / halves[h]
                    failed = source["erase_random"][h] / halves[h] if on_failure == "erase" else 0.0
                    per_half.append((1 - bler) * clean + bler * failed)
                out.append({"family": f"CNN-q+LDPC ({decisions})", "name": f"q{rung} r={(64 * rung + CRC) / n:.2f} "
                            f"{modulation}", "accuracy": per_half, "bler": bler})
        for source, bits in (("snn", 512), ("cnn-q2", 128), ("cnn-q4", 256), ("cnn-q8", 512), ("progressive-t2", 128),
                             ("progressive-t4", 256), ("progressive-t8", 512)):
            if bits != n:
                continue
            family = {"snn": "SNN (uncoded)", "cnn": "CNN-q (uncoded)", "pro": "progressive SNN (uncoded)"}[source[:3]]
            curves_h = [uncoded_curve(sources["uncoded"], source, modulation, h, halves[h], channel) for h in (0, 1)]
            if curves_h[0] is not None:
                out.append({"family": family, "name": f"{source} {modulation}", "accuracy": curves_h})
    if budget == 1024:  # the 512-symbol uncoded schemes with the budget's energy: 3 dB more per symbol
        for source in ("snn", "progressive-t8", "cnn-q8"):
            family = {"snn": "SNN (uncoded)", "cnn": "CNN-q (uncoded)", "pro": "progressive SNN (uncoded)"}[source[:3]]
            curves_h = []
            for h in (0, 1):
                points = sorted((r["esno_db"], r["correct"][h] / halves[h]) for r in sources["uncoded"]
                                if r["source"] == source and r["modulation"] == "bpsk")
                snrs, accuracy = np.array([p[0] for p in points]), np.array([p[1] for p in points])

                def awgn(esno: np.ndarray, snrs=snrs, accuracy=accuracy) -> np.ndarray:
                    return np.interp(esno + QPSK_SHIFT, snrs, accuracy)

                curves_h.append(awgn(GRID) if channel == "awgn" else faded(awgn, GRID))
            out.append({"family": family, "name": f"{source} bpsk 512 uses x2 energy", "accuracy": curves_h})
    out += picture_candidates(sources, curves, budget, channel)
    return out


def picture_candidates(sources: dict, curves: dict, budget: int, channel: str) -> list[dict]:
    """WebP + LDPC: per image the highest quality whose payload fits the code's k bits; none fits -> failed."""
    if not sources.get("pictures"):
        return []
    half = np.array(sources["labels_half"])[: sources["picture_images"]]  # pictures ran on the first images only
    labels_gray = sources["gray_correct_pictures"]
    by_side = defaultdict(list)
    for row in sources["pictures"]:
        by_side[row["side"]].append(row)
    out = []
    for (k, n, modulation, decisions) in sorted(curves):
        if decisions != "soft" or k < 250:  # any soft code whose k can hold the smallest WebP payloads
            continue
        for mod in (("bpsk", "qpsk") if modulation == "bpsk" else ("16qam",)):
            if n != budget * BPS[mod]:
                continue
            bler = code_bler(curves, k, n, mod, "soft", channel)
            for side, rows in by_side.items():
                rows = sorted(rows, key=lambda r: r["quality"])
                bits = np.array([r["bits"] for r in rows])
                correct = np.array([r["correct"] for r in rows])
                fits = bits <= k
                best = np.where(fits.any(axis=0), fits.shape[0] - 1 - np.argmax(fits[::-1], axis=0), -1)
                got = np.where(best >= 0, correct[np.clip(best, 0, None), np.arange(len(best))], 0)
                per_half = []
                for h in (0, 1):
                    members = half == h
                    fit_share = (best[members] >= 0).mean()
                    clean = got[members].mean()  # images that fit and are right, over all images of the half
                    failed = labels_gray[h]
                    per_half.append((1 - bler) * (clean + (1 - fit_share) * failed) + bler * failed)
                out.append({"family": "picture+LDPC (soft)", "name": f"webp{side} k={k} r={(k + CRC) / n:.2f} {mod}",
                            "accuracy": per_half, "bler": bler})
    return out


def frontier(cands: list[dict]) -> dict[str, dict]:
    """Per family: at each SNR, the configuration best on the design half, with its report-half accuracy."""
    families = defaultdict(list)
    for cand in cands:
        families[cand["family"]].append(cand)
    result = {}
    for family, members in families.items():
        design = np.stack([m["accuracy"][0] for m in members])
        report = np.stack([m["accuracy"][1] for m in members])
        pick = design.argmax(axis=0)
        result[family] = {"report": report[pick, np.arange(len(GRID))], "design": design.max(axis=0),
                          "names": [members[i]["name"] for i in pick]}
    return result


def cliff(cands: list[dict], family: str, design_db: float) -> tuple[str, np.ndarray] | None:
    """The configuration of ``family`` best (design half) at ``design_db``, run at every SNR (report half)."""
    index = int(np.argmin(np.abs(GRID - design_db)))
    members = [c for c in cands if c["family"] == family]
    if not members:
        return None
    best = max(members, key=lambda c: c["accuracy"][0][index])
    return best["name"], best["accuracy"][1]


def checks(curves: dict, path: Path) -> list[dict]:
    """Direct runs (scripts/sscc/direct.py) against the combination: BLER and accuracy predicted from the curve on
    the same images, with the direct accuracy's 95% binomial half-width."""
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        run = json.loads(line)
        bler = code_bler(curves, run["k"], run["n"], run["modulation"], "soft", run["channel"])
        if bler is None:
            continue
        b = float(np.interp(run["esno_db"], GRID, bler))
        predicted = (1 - b) * run["clean"] + b * run["erased"]
        half_width = 1.96 * math.sqrt(run["accuracy"] * (1 - run["accuracy"]) / run["images"])
        rows.append({**run, "bler_curve": b, "accuracy_predicted": predicted, "accuracy_half_width_95": half_width,
                     "agrees": abs(predicted - run["accuracy"]) <= half_width})
    return rows


STYLE = {"SNN (uncoded)": ("tab:red", "-"), "progressive SNN (uncoded)": ("tab:orange", "-"),
         "CNN-q (uncoded)": ("tab:gray", "-"), "CNN-q+LDPC (soft)": ("tab:blue", "-"),
         "CNN-q+LDPC (hard)": ("tab:cyan", "--"), "picture+LDPC (soft)": ("tab:green", "-")}
TABLE_SNRS = (-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 14.0, 20.0)
CLIFF_DB = 2.0


def gray_share(sources: dict, data_root: str, count: int) -> list[float]:
    """Accuracy of a failed picture (the edge classifies a gray image): the share of its label in each half
    of the first ``count`` images."""
    from sjscc.training.data import load_split

    labels = load_split(data_root, "cifar10", "val").labels.numpy()[:count]
    half = np.array(sources["labels_half"])[:count]
    return [float((labels[half == h] == sources["backbone_gray_label"]).mean()) for h in (0, 1)]


def resolution(row: dict, n_report: int) -> dict:
    """The runner-up family on the report half and whether the winner's margin over it exceeds the 95% half-width
    of an unpaired difference of two binomial proportions on ``n_report`` images (otherwise: not resolved)."""
    others = [(v, f) for f, v in row["best"].items() if f != row["winner"]]
    if not others:
        return {"runner_up": None, "margin": None, "resolved": True}
    second, family = max(others)
    a, b = row["accuracy"], second
    half_width = 1.96 * math.sqrt((a * (1 - a) + b * (1 - b)) / n_report)
    return {"runner_up": family, "margin": a - second, "half_width_95": half_width, "resolved": a - second > half_width}


SHORT = {"SNN (uncoded)": "SNN", "progressive SNN (uncoded)": "prog. SNN", "CNN-q (uncoded)": "CNN-q",
         "CNN-q+LDPC (soft)": "CNN-q+LDPC", "CNN-q+LDPC (hard)": "CNN-q+LDPC hard", "picture+LDPC (soft)": "WebP+LDPC"}


def markdown(table: list[dict]) -> str:
    """Per channel and budget: the frontier scheme at each SNR (report-half accuracy), the SNN's, and the best
    separate scheme's, as a Markdown table."""
    lines = ["| link | uses | " + " | ".join(f"{s:g} dB" for s in TABLE_SNRS) + " |",
             "| --- | --- | " + " | ".join("---" for _ in TABLE_SNRS) + " |"]
    cells = defaultdict(dict)
    for row in table:
        separate = max((v, f) for f, v in row["best"].items() if "LDPC" in f) if any(
            "LDPC" in f for f in row["best"]) else None
        text = f"**{SHORT[row['winner']]}** {100 * row['accuracy']:.1f}"
        if not row["resolved"]:
            text += f" (n.r. vs {SHORT[row['runner_up']]})"
        if row["snn"] is not None and row["winner"] != "SNN (uncoded)":
            text += f"; SNN {100 * row['snn']:.1f}"
        if separate and "LDPC" not in row["winner"]:
            text += f"; LDPC {100 * separate[0]:.1f}"
        cells[(row["channel"], row["budget"])][row["esno_db"]] = text
    for (channel, budget), by_snr in cells.items():
        lines.append(f"| {channel} | {budget} | " + " | ".join(by_snr[s] for s in TABLE_SNRS) + " |")
    return "\n".join(lines)


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(20, 9), sharey=True)
    for row, channel in enumerate(("awgn", "rayleigh")):
        for col, budget in enumerate(BUDGETS):
            ax = axes[row, col]
            entry = results[channel][str(budget)]
            for family, curve in entry["families"].items():
                color, line = STYLE.get(family, ("black", ":"))
                ax.plot(GRID, 100 * np.array(curve["report"]), color=color, linestyle=line, label=family)
            if entry.get("cliff"):
                ax.plot(GRID, 100 * np.array(entry["cliff"]["report"]), color="tab:blue", linestyle=":",
                        label=f"CNN-q+LDPC designed at {CLIFF_DB:g} dB")
            ax.set_title(f"{channel.upper()}, {budget} channel uses / image")
            ax.set_xlabel("Es/N0 per channel use (dB)")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("val accuracy, report half (%)")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Separate (CNN-q / WebP + CRC + 5G LDPC) vs joint (SNN, progressive SNN, CNN-q uncoded) coding, "
                 "matched channel uses and energy")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("docs/results/sscc"))
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--on-failure", default="erase", choices=("erase", "misclassify"))
    args = parser.parse_args()
    sources = json.loads((args.results / "sources.json").read_text())
    sources["gray_correct_pictures"] = gray_share(sources, args.data_root, sources.get("picture_images", 0))
    curves = load_bler(sorted(args.results.glob("bler-*.jsonl")))
    results: dict = {"grid_esno_db": GRID.tolist(), "on_failure": args.on_failure, "half_sizes": sources["half_sizes"],
                     "codes": len(curves), "gray_correct_pictures": sources["gray_correct_pictures"]}
    table = []
    for channel in ("awgn", "rayleigh"):
        results[channel] = {}
        for budget in BUDGETS:
            cands = candidates(sources, curves, budget, channel, args.on_failure)
            fam = frontier(cands)
            entry = {"families": {f: {"report": v["report"].tolist(), "design": v["design"].tolist(),
                                      "names": v["names"]} for f, v in fam.items()}}
            designed = cliff(cands, "CNN-q+LDPC (soft)", CLIFF_DB)
            if designed:
                entry["cliff"] = {"design_db": CLIFF_DB, "name": designed[0], "report": designed[1].tolist()}
            results[channel][str(budget)] = entry
            for snr in TABLE_SNRS:
                i = int(np.argmin(np.abs(GRID - snr)))
                winner = max(fam, key=lambda f: fam[f]["design"][i])
                snn = fam.get("SNN (uncoded)")
                table.append({"channel": channel, "budget": budget, "esno_db": snr, "winner": winner,
                              "config": fam[winner]["names"][i], "accuracy": float(fam[winner]["report"][i]),
                              "snn": None if snn is None else float(snn["report"][i]),
                              "snn_config": None if snn is None else snn["names"][i],
                              "best": {f: float(v["report"][i]) for f, v in fam.items()}})
                table[-1].update(resolution(table[-1], sources["half_sizes"][1]))
    results["table"] = table
    results["checks"] = checks(curves, args.results / "direct.jsonl")
    for row in results["checks"]:
        print(f"check q{row['rung']} {row['budget']} {row['modulation']} {row['channel']} {row['esno_db']} dB: "
              f"BLER direct {row['bler']:.3f} curve {row['bler_curve']:.3f}; "
              f"accuracy direct {100 * row['accuracy']:.1f} "
              f"+-{100 * row['accuracy_half_width_95']:.1f} predicted {100 * row['accuracy_predicted']:.1f}")
    suffix = "" if args.on_failure == "erase" else f"-{args.on_failure}"
    (args.results / f"frontier{suffix}.json").write_text(json.dumps(results, indent=1))
    plot(results, args.results / f"frontier{suffix}.png")
    (args.results / f"frontier{suffix}.md").write_text(markdown(table) + "\n")
    for row in table:
        snn = "-" if row["snn"] is None else f"{100 * row['snn']:.1f}"
        print(f"{row['channel']:8s} {row['budget']:5d} {row['esno_db']:5.1f}  {row['winner']:26s} "
              f"{row['config']:30s} {100 * row['accuracy']:5.1f}  SNN {snn}")


if __name__ == "__main__":
    main()
