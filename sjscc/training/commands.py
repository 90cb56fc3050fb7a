"""Command-line glue for ``sjscc eval`` and ``sjscc plot``: parse, call :mod:`evaluate` / :mod:`plots`, print."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sjscc.training.evaluate import evaluate_bundle, format_table, parse_channels, parse_probabilities


def _write_json(path: str | Path, data: Any) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2) + "\n")


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate every ``--bundle``; ``--out`` holds one report, or a list of them for several bundles."""
    channels = parse_channels(args.channel)
    probabilities = parse_probabilities(args.p)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.limit < 0:
        raise ValueError(f"--limit must be >= 0, got {args.limit}")
    burst, interleave, energy_images = parse_link_options(args, channels, probabilities)
    bundles = args.bundle or [args.bundle_default]
    reports = []
    for bundle in bundles:
        report = evaluate_bundle(bundle, args.data_root, args.dataset, args.split, channels, probabilities,
                                 args.repeats, args.seed, args.batch_size, args.limit, args.device,
                                 args.erasure_policy, args.download, burst=burst, interleave=interleave,
                                 energy_images=energy_images)
        reports.append(report)
        print(format_table([report]), flush=True)
    if args.out:
        _write_json(args.out, reports[0] if len(reports) == 1 else reports)
        print(f"wrote {args.out}", file=sys.stderr)
    from sjscc.training.plots import plot_accuracy, plot_firing_rates

    if args.plot:
        print(f"wrote {plot_accuracy(reports, args.plot, args.title)}", file=sys.stderr)
    if args.firing_hist:
        print(f"wrote {plot_firing_rates(reports, args.firing_hist, args.title)}", file=sys.stderr)
    return 0


def parse_link_options(args: argparse.Namespace, channels: list[str],
                       probabilities: list[float]) -> tuple[float, int | None, int]:
    """``--burst`` (GE's mean burst length), ``--interleave`` (interleaver seed or none), ``--energy-images``;
    every GE (p, L) is checked before any image is encoded."""
    from sjscc.common.channels import DEFAULT_BURST, check_burst, gilbert_elliott_transitions

    burst = check_burst(getattr(args, "burst", DEFAULT_BURST))
    if "ge" in channels:
        for p in probabilities:
            gilbert_elliott_transitions(p, burst)
    interleave = getattr(args, "interleave", None)
    if interleave is not None and interleave < 0:
        raise ValueError(f"--interleave must be a seed >= 0, got {interleave}")
    energy_images = getattr(args, "energy_images", 0)
    if energy_images < 0:
        raise ValueError(f"--energy-images must be >= 0, got {energy_images}")
    return burst, interleave, energy_images


def run_plot(args: argparse.Namespace) -> int:
    """Draw a figure from saved ``sjscc eval`` JSON files."""
    from sjscc.training.plots import PLOTS, load_reports

    reports = load_reports(args.inputs)
    if args.labels:
        labels = [label.strip() for label in args.labels.split(",")]
        if len(labels) != len(reports):
            raise ValueError(f"--labels has {len(labels)} entries for {len(reports)} reports")
        reports = [{**report, "label": label} for report, label in zip(reports, labels, strict=True)]
    path = PLOTS[args.kind](reports, args.out, args.title)
    print(f"wrote {path}", file=sys.stderr)
    return 0
