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
    device.add_argument("--seed", type=int, default=env_default("seed", None),
                        help="channel seed (default: fresh randomness)")
    device.set_defaults(func=_device)

    demo = sub.add_parser("demo", help="start an edge and a device on loopback and classify a few images")
    demo.add_argument("--bundle", default=env_default("bundle", DEFAULT_BUNDLE), help="model bundle folder")
    demo.add_argument("--serve", action="store_true", help="keep both services running after the demo")
    demo.set_defaults(func=_demo)

    # --- evaluation and benchmarks (sjscc/training, sjscc/bench.py) -------------------------------
    evaluate = sub.add_parser("eval", help="accuracy over a channel sweep, repeated, as JSON (+ plot)")
    evaluate.set_defaults(func=_eval)

    bench = sub.add_parser("bench", help="measure codec, packing and service speed; save JSON")
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
