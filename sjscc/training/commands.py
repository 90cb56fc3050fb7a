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
    _check_halves(args, channels)
    bundles = args.bundle or [args.bundle_default]
    thresholds = _check_progressive(args, bundles)
    reports = []
    for bundle in bundles:
        report = evaluate_bundle(bundle, args.data_root, args.dataset, args.split, channels, probabilities,
                                 args.repeats, args.seed, args.batch_size, args.limit, args.device,
                                 args.erasure_policy, args.download, burst=burst, interleave=interleave,
                                 energy_images=energy_images)
        reports.append(report)
        print(format_table([report]), flush=True)
        if thresholds is not None:
            _add_progressive(report, bundle, thresholds, channels, probabilities, args)
        elif getattr(args, "halves", None) is not None:
            _add_halves(report, bundle, channels, probabilities, args)
    if args.out:
        _write_json(args.out, reports[0] if len(reports) == 1 else reports)
        print(f"wrote {args.out}", file=sys.stderr)
    from sjscc.training.plots import plot_accuracy, plot_firing_rates

    if args.plot:
        print(f"wrote {plot_accuracy(reports, args.plot, args.title)}", file=sys.stderr)
    if getattr(args, "rate_plot", None):
        from sjscc.training.plots import plot_rate_accuracy

        print(f"wrote {plot_rate_accuracy(reports, args.rate_plot, args.title)}", file=sys.stderr)
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


def _check_halves(args: argparse.Namespace, channels: list[str]) -> None:
    """``--halves`` and ``--select-margin`` are checked before any image is encoded."""
    halves = getattr(args, "halves", None)
    margin = getattr(args, "select_margin", 0.5)
    if margin != 0.5 and halves is None:
        raise ValueError("--select-margin picks a threshold on half A: give --halves SEED too")
    if halves is None:
        return
    if halves < 0:
        raise ValueError(f"--halves must be a seed >= 0, got {halves}")
    if not 0 <= margin < 100:
        raise ValueError(f"--select-margin is in percentage points, in [0, 100), got {margin}")
    if "ge" in channels or getattr(args, "interleave", None) is not None:
        raise ValueError("--halves splits BSC and BEC sweeps; run GE or interleaved sweeps without it")


def _check_progressive(args: argparse.Namespace, bundles: list[str]) -> list[float] | None:
    """``--confidence`` thresholds (``[]`` for ``--prefixes`` alone, None for neither), after checking before any
    work that every bundle can be cut at a prefix (and is progressive when thresholds are given)."""
    text = getattr(args, "confidence", None)
    if not text and not getattr(args, "prefixes", False):
        return None
    from sjscc.common.bundle import load_bundle
    from sjscc.training.progressive_eval import parse_thresholds

    thresholds = parse_thresholds(text) if text else []
    for path in bundles:
        bundle = load_bundle(path)
        codec = str(bundle.manifest.get("codec"))
        if text and not bundle.progressive:
            raise ValueError(f"--confidence needs a progressive bundle (codec snn-progressive); {bundle.path} is "
                             f"{codec!r}, which always sends all {bundle.timesteps} steps")
        if not (bundle.progressive or codec.startswith("cnn-q")):
            raise ValueError(f"--prefixes needs a progressive or cnn-q<n> bundle; {bundle.path} is {codec!r}, "
                             "whose converter reads all T steps")
    return thresholds


def _add_progressive(report: dict[str, Any], bundle: str, thresholds: list[float], channels: list[str],
                     probabilities: list[float], args: argparse.Namespace) -> None:
    """Append the fixed-prefix and confidence rows of a progressive bundle to its report and print them."""
    from sjscc.training.progressive_eval import evaluate_progressive, format_progressive_table

    extra = evaluate_progressive(bundle, thresholds, args.data_root, args.dataset, args.split, channels,
                                 probabilities, args.repeats, args.seed, args.batch_size, args.limit, args.device,
                                 args.erasure_policy, args.download, getattr(args, "halves", None),
                                 getattr(args, "select_margin", 0.5) / 100)
    report["results"] = report["results"] + extra["rows"]
    report["progressive"] = extra["progressive"]
    print(format_progressive_table(report), flush=True)
    if "halves" in extra:
        from sjscc.training.selection import format_halves

        report["halves"] = extra["halves"]
        print(format_halves(report["halves"]), flush=True)


def _add_halves(report: dict[str, Any], bundle: str, channels: list[str], probabilities: list[float],
                args: argparse.Namespace) -> None:
    """Add the sweep split into halves A and B (``--halves``) to a bundle's report and print it."""
    from sjscc.training.selection import evaluate_halves, format_halves

    report["halves"] = evaluate_halves(bundle, args.halves, args.data_root, args.dataset, args.split, channels,
                                       probabilities, args.repeats, args.seed, args.batch_size, args.limit,
                                       args.device, args.erasure_policy, args.download)
    print(format_halves(report["halves"]), flush=True)


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
