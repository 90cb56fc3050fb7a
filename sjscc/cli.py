"""``sjscc``: the one command. Each subcommand imports only what it needs (``sjscc edge`` never loads FastAPI).

Every option can also come from an environment variable ``SJSCC_<OPTION>`` (for containers); a flag on the
command line wins over the environment.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_BUNDLE = str(Path(__file__).resolve().parent.parent / "bundles" / "default")


def env_default(name: str, default: object) -> object:
    """``SJSCC_<NAME>`` from the environment, else ``default``."""
    return os.environ.get(f"SJSCC_{name.upper()}", default)


def _train(args: argparse.Namespace) -> int:
    from sjscc.common.config import load_config
    from sjscc.training.config import TrainConfig
    from sjscc.training.steps import train

    config = load_config(TrainConfig, args.config, args.set)
    train(config, resume=args.resume)
    return 0


def _edge(args: argparse.Namespace) -> int:
    from sjscc.edge.commands import run_edge

    return run_edge(args)


def _device(args: argparse.Namespace) -> int:
    from sjscc.device.commands import run_device

    return run_device(args)


def _demo(args: argparse.Namespace) -> int:
    from sjscc.demo import run_demo

    return run_demo(args)


def _eval(args: argparse.Namespace) -> int:
    from sjscc.training.commands import run_eval

    return run_eval(args)


def _plot(args: argparse.Namespace) -> int:
    from sjscc.training.commands import run_plot

    return run_plot(args)


def _bench(args: argparse.Namespace) -> int:
    from sjscc.bench import run_bench

    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sjscc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser("train", help="train one step (backbone, codec, joint) from a YAML config",
                           description="Train one step of the three-step strategy; see sjscc/training/configs/.")
    train.add_argument("--config", help="YAML config file (defaults when omitted)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set optim.lr=0.01 --set channel.kind=bec (repeatable)")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    train.set_defaults(func=_train)

    # --- services (sjscc/edge, sjscc/device, sjscc/demo.py) --------------------------------------
    edge = sub.add_parser("edge", help="run the edge gRPC server (reconstructor, converter, tail)")
    edge.add_argument("--bundle", default=env_default("bundle", DEFAULT_BUNDLE), help="model bundle folder")
    edge.add_argument("--host", default=env_default("edge_host", "127.0.0.1"), help="address to bind")
    edge.add_argument("--port", type=int, default=int(env_default("edge_port", 50051)), help="port to bind")
    edge.add_argument("--compute-device", default=env_default("compute_device", "auto"),
                      help="torch device for the model: auto (CUDA when available, else CPU), cpu, cuda, cuda:1")
    edge.add_argument("--max-batch-size", type=int, default=int(env_default("max_batch_size", 8)),
                      help="most requests that share one forward pass")
    edge.add_argument("--max-wait-ms", type=float, default=float(env_default("max_wait_ms", 2.0)),
                      help="longest a request waits for its batch to fill")
    edge.set_defaults(func=_edge)

    device = sub.add_parser("device", help="run the device REST endpoint (head, encoder, pack, channel)")
    device.add_argument("--bundle", default=env_default("bundle", DEFAULT_BUNDLE), help="model bundle folder")
    device.add_argument("--edge", default=env_default("edge", "127.0.0.1:50051"), help="edge address H:P")
    device.add_argument("--host", default=env_default("device_host", "127.0.0.1"), help="address to bind")
    device.add_argument("--port", type=int, default=int(env_default("device_port", 8000)), help="port to bind")
    device.add_argument("--channel", choices=["none", "bsc", "bec"], default=env_default("channel", "none"),
                        help="channel applied to the payload bits")
    device.add_argument("--p", type=float, default=float(env_default("p", 0.0)),
                        help="bit error (BSC) or erasure (BEC) probability")
    device.add_argument("--seed", default=env_default("seed", None),
                        help="channel seed, an integer (default: fresh randomness)")
    device.add_argument("--erasure-policy", choices=["random", "zero", "mask"],
                        default=env_default("erasure_policy", "random"),
                        help="what the edge reads for a BEC-erased bit: a fair coin (the papers'), 0, or a coin "
                             "drawn by the edge from an erasure mask sent beside the payload")
    device.add_argument("--compute-device", default=env_default("compute_device", "cpu"),
                        help="torch device for head and encoder")
    device.add_argument("--max-image-bytes", type=int, default=int(env_default("max_image_bytes", 10 * 1024 * 1024)),
                        help="largest upload accepted, in bytes")
    device.add_argument("--max-image-pixels", type=int, default=int(env_default("max_image_pixels", 40_000_000)),
                        help="largest image accepted, in pixels (width x height)")
    device.add_argument("--rpc-timeout", type=float, default=float(env_default("rpc_timeout", 5.0)),
                        help="deadline of every call to the edge, in seconds")
    device.set_defaults(func=_device)

    demo = sub.add_parser("demo", help="start an edge and a device on loopback and classify a few images")
    demo.add_argument("--bundle", default=env_default("bundle", DEFAULT_BUNDLE), help="model bundle folder")
    demo.add_argument("--serve", action="store_true", help="keep both services running after the demo")
    demo.add_argument("--images", help="folder of your own pictures (default: photos shipped with scikit-image)")
    demo.add_argument("--channel", choices=["none", "bsc", "bec"], default="none", help="channel on the payload bits")
    demo.add_argument("--p", type=float, default=0.0, help="bit error (BSC) or erasure (BEC) probability")
    demo.add_argument("--confidence", type=float, default=None, metavar="TAU",
                      help="progressive bundles: send steps until the edge's top-1 probability >= TAU and show the "
                           "bits each image saved (REST mode=progressive)")
    demo.add_argument("--seed", default=None, help="channel seed (default: fresh randomness)")
    demo.add_argument("--device-port", type=int, default=0, help="device REST port (default: a free one)")
    demo.add_argument("--edge-port", type=int, default=0, help="edge gRPC port (default: a free one)")
    demo.set_defaults(func=_demo)

    # --- evaluation and benchmarks (sjscc/training, sjscc/bench.py) -------------------------------
    evaluate = sub.add_parser(
        "eval", help="accuracy over a channel sweep, repeated, as JSON (+ plot)",
        description="Accuracy of one or more bundles over BSC/BEC at each p, repeated with fresh channel noise "
                    "(mean ± std). Head and encoder run once per bundle; each (p, repeat) reruns only channel, "
                    "decoder and tail, with noise seeded from (seed, repeat, p index).")
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
    evaluate.add_argument("--channel", default="bsc", metavar="bsc|bec|bsc,bec", help="channel kind(s) to sweep")
    evaluate.add_argument("--p", default="0,0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.45,0.5", metavar="P,P,...",
                          help="comma-separated bit error / erasure probabilities")
    evaluate.add_argument("--repeats", type=int, default=10, help="channel draws per p (mean ± std over them)")
    evaluate.add_argument("--seed", type=int, default=0, help="base seed of the channel noise")
    evaluate.add_argument("--batch-size", type=int, default=500, help="images per batch")
    evaluate.add_argument("--limit", type=int, default=0, help="use only the first N images of the split (0: all)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    evaluate.add_argument("--erasure-policy", choices=["random", "zero"], default="random",
                          help="what the receiver reads for an erased bit (BEC): a fair coin (papers) or 0")
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
    evaluate.add_argument("--rate-plot", metavar="FILE.png",
                          help="draw accuracy against bits per image (progressive curves, fixed codecs as points)")
    evaluate.set_defaults(func=_eval, bundle_default=DEFAULT_BUNDLE)

    plot = sub.add_parser("plot", help="draw a figure from saved eval JSON files",
                          description="Draw accuracy vs p (one line per bundle, error bars = std over repeats) "
                                      "or the firing-rate histogram from files written by sjscc eval --out.")
    plot.add_argument("--inputs", nargs="+", required=True, metavar="FILE.json", help="sjscc eval outputs")
    plot.add_argument("--out", required=True, metavar="FILE.png", help="image to write")
    plot.add_argument("--kind", choices=["accuracy", "firing-rate", "rate"], default="accuracy",
                      help="which figure (rate: accuracy against bits per image)")
    plot.add_argument("--title", help="figure title")
    plot.add_argument("--labels", help="comma-separated legend entries, one per input (default: from the bundles)")
    plot.set_defaults(func=_plot)

    bench = sub.add_parser(
        "bench", help="measure codec, packing and channel speed; save JSON",
        description="Speed benchmark on random inputs (says nothing about accuracy): SNN encoder with the first "
                    "Conv-BN computed once vs the naive T-fold recompute, decoder, head/tail, pack/unpack, BSC/BEC "
                    "on tensors and on packed payloads, in-process pipeline throughput, peak memory. Prints a table.")
    geometry = bench.add_mutually_exclusive_group()
    geometry.add_argument("--bundle", metavar="DIR", default=None,
                          help="benchmark this model bundle (default: a tiny random model, ResNet-20 width 8)")
    geometry.add_argument("--paper-geometry", action="store_true",
                          help="benchmark the papers' SNN codec alone, (2048,4,4) -> 256 -> 32 at T = 8, "
                               "random weights (speed only)")
    bench.add_argument("--batch-sizes", default="1,32", metavar="N,N",
                       help="comma-separated batch sizes (default 1,32)")
    bench.add_argument("--iterations", type=int, default=10, help="timed runs per measurement; the median is kept")
    bench.add_argument("--out", metavar="FILE.json", default=None, help="save the JSON report here")
    bench.add_argument("--device", choices=["auto", "cpu", "cuda"], default=env_default("bench_device", "auto"),
                       help="torch device (auto: CUDA when available)")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError) as error:
        print(f"sjscc {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
