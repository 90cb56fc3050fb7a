"""``sjscc train``, ``sjscc eval`` and ``sjscc plot``: their parsers, and the glue that calls :mod:`steps`,
:mod:`evaluate` and :mod:`plots` and prints. The models load when a command runs, not when the parser is built."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sjscc.common.channels.settings import CHANNEL_NAMES, ERASURE_POLICIES
from sjscc.common.cli_support import DEFAULT_BUNDLE, env_default


def add_train(sub: argparse._SubParsersAction) -> None:
    """Register ``sjscc train`` on the root parser's subcommands."""
    train = sub.add_parser("train", help="train one step (backbone, codec, joint) from a YAML config",
                           description="Train one step of the three-step strategy; see sjscc/training/configs/.")
    train.add_argument("--config", help="YAML config file (defaults when omitted)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set optim.lr=0.01 --set channel.kind=bec (repeatable)")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    train.set_defaults(func=run_train)


def add_eval(sub: argparse._SubParsersAction) -> None:
    kinds = "|".join(kind for kind in CHANNEL_NAMES if kind != "none")
    evaluate = sub.add_parser(
        "eval", help="accuracy over a channel sweep, repeated, as JSON (+ plot)",
        description="Accuracy of one or more bundles over BSC/BEC/GE at each p, or over a radio link (awgn, "
                    "rayleigh; Sionna) at each Eb/N0, repeated with fresh channel noise (mean ± std). Head and "
                    "encoder run once per bundle; each (p, repeat) reruns only channel, decoder and tail, with "
                    "noise seeded from (seed, repeat, the setting: kind, p or Eb/N0, ...); --draw-keys position "
                    "replays binary-channel reports written before the setting keying.")
    evaluate.add_argument("--bundle", action="append", metavar="DIR",
                          help=f"bundle folder (repeatable: one report per bundle; default {DEFAULT_BUNDLE})")
    evaluate.add_argument("--data-root", default=env_default("data_root", None),
                          help="folder that contains cifar-10-batches-py/ or cifar-100-python/ "
                               "(default: the data root in the bundle's training config)")
    evaluate.add_argument("--dataset", choices=["cifar10", "cifar100"], default=None,
                          help="data set (default: the one the bundle was trained on)")
    evaluate.add_argument("--split", choices=["test", "val"], default="test",
                          help="test split, or the seeded stratified validation split training used "
                               "(val_fraction and split_seed read from the bundle)")
    evaluate.add_argument("--channel", default="bsc", metavar=f"{kinds}|bsc,ge",
                          help="channel kind(s) to sweep: bsc, bec, ge (Gilbert-Elliott bursts, see --burst) over "
                               "--p, or the radio links awgn, rayleigh over --snr-db (not both in one run)")
    evaluate.add_argument("--snr-db", default="-4,-2,0,2,4,6,8,10", metavar="DB,DB,...",
                          help="awgn/rayleigh only: comma-separated Eb/N0 values in dB (per information bit)")
    evaluate.add_argument("--modulation", choices=["bpsk", "qpsk", "16qam"], default="bpsk",
                          help="awgn/rayleigh only: Gray-mapped modulation (Sionna)")
    evaluate.add_argument("--coherence", default="packet", metavar="packet|step|N",
                          help="rayleigh only: one fade per payload (packet), per time step (step) or per N "
                               "symbols; the receiver knows each fade (perfect CSI)")
    evaluate.add_argument("--decisions", choices=["hard", "soft"], default="hard",
                          help="awgn/rayleigh only: hard bits, or soft P(bit=1) from k-bit quantised LLRs")
    evaluate.add_argument("--soft-bits", type=int, default=4, metavar="K",
                          help="soft decisions: bits per quantised LLR (2..8), what crosses the wire to the edge")
    evaluate.add_argument("--paired-hard", action="store_true",
                          help="with --decisions soft: also decode the hard decisions of the same received symbols "
                               "and report soft - hard as a paired difference with its 95%% interval")
    evaluate.add_argument("--no-bsc-equivalent", action="store_true",
                          help="awgn/rayleigh: skip the BSC(p = the link's closed-form BER) runs beside each SNR")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars on stderr")
    evaluate.add_argument("--p", default="0,0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.45,0.5", metavar="P,P,...",
                          help="comma-separated bit error / erasure probabilities (ge: mean bit error rates)")
    evaluate.add_argument("--burst", type=float, default=8.0, metavar="L",
                          help="ge only: mean burst length in bits (a run of consecutive bit errors), >= 1; "
                               "p may be at most L/(L+1)")
    evaluate.add_argument("--interleave", type=int, default=None, metavar="SEED",
                          help="spread bursts with the seeded bit interleaver SEED (a permutation of each "
                               "payload before the channel, inverted after); default: none")
    evaluate.add_argument("--energy-images", type=int, default=200, metavar="N",
                          help="estimate energy per image (MACs, accumulates from measured firing rates) on "
                               "the first N images into the JSON's 'energy' (0: skip)")
    evaluate.add_argument("--repeats", type=int, default=10, help="channel draws per p (mean ± std over them)")
    evaluate.add_argument("--seed", type=int, default=0, help="base seed of the channel noise")
    evaluate.add_argument("--draw-keys", choices=["setting", "position"], default="setting",
                          help="how BSC/BEC/GE draws are seeded: by (seed, repeat, kind, p, GE's burst), so runs with "
                               "different --p lists are paired at a shared p (default), or by the position of p in "
                               "--p, to reproduce eval JSONs without a draw_keys field; recorded in the report")
    evaluate.add_argument("--batch-size", type=int, default=500, help="images per batch")
    evaluate.add_argument("--limit", type=int, default=0, help="use only the first N images of the split (0: all)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    evaluate.add_argument("--erasure-policy", choices=list(ERASURE_POLICIES), default="random",
                          help="what the receiver reads for an erased bit (BEC): a fair coin (papers) or 0; mask "
                               "reads 0 here like zero (the decoders take no mask; in serving the edge draws the coin)")
    evaluate.add_argument("--download", action="store_true", help="download the data set if missing")
    evaluate.add_argument("--out", metavar="FILE.json", help="write the report (a list for several bundles)")
    evaluate.add_argument("--plot", metavar="FILE.png", help="draw accuracy vs p, one line per bundle")
    evaluate.add_argument("--firing-hist", metavar="FILE.png",
                          help="draw the per-image firing-rate histogram of the encoder output")
    evaluate.add_argument("--title", help="figure title")
    evaluate.add_argument("--confidence", metavar="TAU,TAU,...",
                          help="progressive bundles only: add rows for the streaming rule 'stop once the top-1 "
                               "softmax >= TAU' (mean payload bits, steps distribution) and for every fixed "
                               "prefix t = 1..T")
    evaluate.add_argument("--prefixes", action="store_true",
                          help="add rows for every fixed prefix t = 1..T alone: a progressive bundle decodes it, a "
                               "cnn-q<n> bundle reads the bit planes not sent as 0 (its rate ladder)")
    evaluate.add_argument("--halves", type=int, default=None, metavar="SEED",
                          help="also split the images into two seeded class-stratified halves A and B and report "
                               "every point on each; with --confidence, pick the threshold on half A (fewest bits "
                               "within --select-margin of all T steps) and report it on half B")
    evaluate.add_argument("--select-margin", type=float, default=0.5, metavar="POINTS",
                          help="with --halves and --confidence: accuracy a threshold may lose on half A against "
                               "sending all T steps, in percentage points (default 0.5)")
    evaluate.add_argument("--rate-plot", metavar="FILE.png",
                          help="draw accuracy against bits per image (progressive curves, fixed codecs as points)")
    evaluate.set_defaults(func=run_eval, bundle_default=DEFAULT_BUNDLE)


def add_plot(sub: argparse._SubParsersAction) -> None:
    plot = sub.add_parser("plot", help="draw a figure from saved eval JSON files",
                          description="Draw accuracy vs p (one line per bundle, error bars = std over the channel "
                                      "draws of one trained model) or the firing-rate histogram from files written "
                                      "by sjscc eval --out.")
    plot.add_argument("--inputs", nargs="+", required=True, metavar="FILE.json", help="sjscc eval outputs")
    plot.add_argument("--out", required=True, metavar="FILE.png", help="image to write")
    plot.add_argument("--kind", choices=["accuracy", "firing-rate", "rate", "link"], default="accuracy",
                      help="which figure (rate: accuracy against bits per image; link: accuracy against Eb/N0)")
    plot.add_argument("--title", help="figure title")
    plot.add_argument("--labels", help="comma-separated legend entries, one per input (default: from the bundles)")
    plot.set_defaults(func=run_plot)


def _write_json(path: str | Path, data: Any) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2) + "\n")


def run_train(args: argparse.Namespace) -> int:
    """Train one step from its config (``--set`` overrides), resuming from the run's checkpoint if asked."""
    from sjscc.common.config import load_config
    from sjscc.training.config import TrainConfig
    from sjscc.training.trainer import train

    config = load_config(TrainConfig, args.config, args.set)
    train(config, resume=args.resume)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate every ``--bundle``; ``--out`` holds one report, or a list of them for several bundles."""
    from sjscc.training.evaluate import (
        DEFAULT_DRAW_KEYS,
        check_draw_keys,
        evaluate_bundle,
        format_table,
        parse_channels,
        parse_probabilities,
    )

    channels = parse_channels(args.channel)
    probabilities = parse_probabilities(args.p)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.limit < 0:
        raise ValueError(f"--limit must be >= 0, got {args.limit}")
    burst, interleave, energy_images = parse_link_options(args, channels, probabilities)
    draw_keys = check_draw_keys(getattr(args, "draw_keys", DEFAULT_DRAW_KEYS))
    _check_halves(args, channels)
    snrs, link = parse_radio_options(args)
    paired_hard = bool(getattr(args, "paired_hard", False))
    if paired_hard and (link.decisions != "soft" or not all(kind in ("awgn", "rayleigh") for kind in channels)):
        raise ValueError("--paired-hard compares soft decisions with the hard ones of the same noise: use it with "
                         "--channel awgn|rayleigh --decisions soft")
    bundles = args.bundle or [args.bundle_default]
    thresholds = _check_progressive(args, bundles)
    if thresholds is not None and any(kind in ("awgn", "rayleigh") for kind in channels):
        raise ValueError("--confidence/--prefixes sweep p on binary channels; they are not available with a radio "
                         "link (awgn, rayleigh)")
    reports = []
    for bundle in bundles:
        report = evaluate_bundle(bundle, args.data_root, args.dataset, args.split, channels, probabilities,
                                 args.repeats, args.seed, args.batch_size, args.limit, args.device,
                                 args.erasure_policy, args.download, burst=burst, interleave=interleave,
                                 energy_images=energy_images, snrs=snrs, link=link,
                                 bsc_equivalent=not getattr(args, "no_bsc_equivalent", False),
                                 progress=not getattr(args, "quiet", False), draw_keys=draw_keys,
                                 paired_hard=paired_hard)
        reports.append(report)
        print(format_table([report]), flush=True)
        if thresholds is not None:
            _add_progressive(report, bundle, thresholds, channels, probabilities, args, draw_keys)
        elif getattr(args, "halves", None) is not None:
            _add_halves(report, bundle, channels, probabilities, args, draw_keys)
    if args.out:
        _write_json(args.out, reports[0] if len(reports) == 1 else reports)
        print(f"wrote {args.out}", file=sys.stderr)
    from sjscc.training.plots import plot_accuracy, plot_firing_rates

    if args.plot and any(row.get("snr_db") is not None for report in reports for row in report["results"]):
        from sjscc.training.plots import plot_link_accuracy

        print(f"wrote {plot_link_accuracy(reports, args.plot, args.title)}", file=sys.stderr)
    elif args.plot:
        print(f"wrote {plot_accuracy(reports, args.plot, args.title)}", file=sys.stderr)
    if getattr(args, "rate_plot", None):
        from sjscc.training.plots import plot_rate_accuracy

        print(f"wrote {plot_rate_accuracy(reports, args.rate_plot, args.title)}", file=sys.stderr)
    if args.firing_hist:
        print(f"wrote {plot_firing_rates(reports, args.firing_hist, args.title)}", file=sys.stderr)
    return 0


def parse_radio_options(args: argparse.Namespace) -> tuple[list[float], object]:
    """``--snr-db`` and the link's ``--modulation --coherence --decisions --soft-bits`` as (SNRs, LinkSettings),
    checked before any image is encoded."""
    from sjscc.common.channels import LinkSettings
    from sjscc.training.evaluate import DEFAULT_SNR_DB, parse_snrs

    snrs = parse_snrs(getattr(args, "snr_db", None) or list(DEFAULT_SNR_DB))
    link = LinkSettings(snr_db=snrs[0], modulation=getattr(args, "modulation", "bpsk"),
                        coherence=getattr(args, "coherence", "packet"), decisions=getattr(args, "decisions", "hard"),
                        soft_bits=getattr(args, "soft_bits", 4))
    return snrs, link


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
    if any(channel not in ("bsc", "bec") for channel in channels) or getattr(args, "interleave", None) is not None:
        raise ValueError("--halves splits BSC and BEC sweeps; run GE, radio or interleaved sweeps without it")


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
                     probabilities: list[float], args: argparse.Namespace, draw_keys: str) -> None:
    """Append the fixed-prefix and confidence rows of a progressive bundle to its report and print them."""
    from sjscc.training.progressive_eval import evaluate_progressive, format_progressive_table

    extra = evaluate_progressive(bundle, thresholds, args.data_root, args.dataset, args.split, channels,
                                 probabilities, args.repeats, args.seed, args.batch_size, args.limit, args.device,
                                 args.erasure_policy, args.download, getattr(args, "halves", None),
                                 getattr(args, "select_margin", 0.5) / 100, draw_keys)
    report["results"] = report["results"] + extra["rows"]
    report["progressive"] = extra["progressive"]
    print(format_progressive_table(report), flush=True)
    if "halves" in extra:
        from sjscc.training.selection import format_halves

        report["halves"] = extra["halves"]
        print(format_halves(report["halves"]), flush=True)


def _add_halves(report: dict[str, Any], bundle: str, channels: list[str], probabilities: list[float],
                args: argparse.Namespace, draw_keys: str) -> None:
    """Add the sweep split into halves A and B (``--halves``) to a bundle's report and print it."""
    from sjscc.training.selection import evaluate_halves, format_halves

    report["halves"] = evaluate_halves(bundle, args.halves, args.data_root, args.dataset, args.split, channels,
                                       probabilities, args.repeats, args.seed, args.batch_size, args.limit,
                                       args.device, args.erasure_policy, args.download, draw_keys)
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
