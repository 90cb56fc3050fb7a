"""``sjscc``: the one command. Each subcommand imports only what it needs (``sjscc edge`` never loads FastAPI).

Every option can also come from an environment variable ``SJSCC_<OPTION>`` (for containers); a flag on the
command line wins over the environment. A bad value in either is one line that names the option (and the
variable) and exit status 2, never a traceback; ``--help`` works whatever the environment holds, because
values from the environment are only converted once the command line is parsed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

DEFAULT_BUNDLE = str(Path(__file__).resolve().parent.parent / "bundles" / "default")


class EnvValue(str):
    """A default read from ``SJSCC_<NAME>``: converters name the variable when its value is invalid."""

    variable: str = ""


def env_default(name: str, default: object) -> object:
    """``SJSCC_<NAME>`` from the environment (as an :class:`EnvValue`), else ``default``."""
    variable = f"SJSCC_{name.upper()}"
    raw = os.environ.get(variable)
    if raw is None:
        return default
    value = EnvValue(raw)
    value.variable = variable
    return value


def converter(name: str, convert: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse ``type`` that says where a bad value came from (flag or variable) and why it is bad."""

    def parse(text: str) -> object:
        try:
            return convert(text.strip())
        except (ValueError, TypeError) as error:
            where = f"{text.variable}={text!r}" if isinstance(text, EnvValue) else repr(text)
            reason = str(error) if str(error) else f"not a valid {name}"
            raise argparse.ArgumentTypeError(f"{where}: {reason}") from None

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def _integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise ValueError(f"expected an integer {bounds}, got {value}")
        return value

    return convert


def _number(low: float, high: float = math.inf, low_open: bool = False) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high) or (low_open and value == low):
            opening = "(" if low_open else "["
            interval = f"in {opening}{low:g}, {high:g}]" if high != math.inf else f"{'>' if low_open else '>='} {low:g}"
            raise ValueError(f"expected a finite number {interval}, got {text}")
        return value

    return convert


def _choice(*options: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return text

    return convert


def _address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected HOST:PORT with a port in 1..65535, e.g. 127.0.0.1:50051")
    return text


def _seed(text: str) -> str:
    """Checked here, parsed by the service (``sjscc.device.client.parse_seed``); empty means no seed."""
    if text.lower() not in ("", "none"):
        _integer(0, 2**63 - 1)(text)
    return str(text)


PORT = converter("port", _integer(0, 65535))
POSITIVE_INT = converter("positive integer", _integer(1))
NON_NEGATIVE_INT = converter("non-negative integer", _integer(0))
PROBABILITY = converter("probability", _number(0.0, 1.0))
NON_NEGATIVE = converter("non-negative number", _number(0.0))
POSITIVE = converter("positive number", _number(0.0, low_open=True))


def _edge_address(text: str) -> str:
    """One HOST:PORT, a comma-separated list of them, or a target in gRPC's own syntax (``dns:``, ``ipv4:``...);
    ``sjscc.device.client.edge_target`` turns it into the channel's target."""
    if text.strip().startswith(("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")):
        return text
    for part in text.split(","):
        _address(part.strip())
    return text


EDGE_ADDRESS = converter("edge address", _edge_address)
SEED = converter("seed", _seed)
BURST = converter("burst", _number(1.0))


def _interleave(text: str) -> str:
    """Checked here, parsed by the service (``sjscc.device.client.parse_interleave``); empty/none/off: none."""
    if text.lower() not in ("", "none", "off"):
        _integer(0, 2**63 - 1)(text)
    return str(text)


INTERLEAVE = converter("interleaver seed", _interleave)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``sjscc device: error: argument --p: SJSCC_P='abc': ...``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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


THREADS_HELP = ("intra-op torch threads for the model (0: torch's default, all cores); on a machine shared with "
                "the other service, half the cores each (see docs/PERFORMANCE.md)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="sjscc", description=__doc__.splitlines()[0])
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
    edge.add_argument("--port", type=PORT, default=env_default("edge_port", 50051), help="port to bind")
    edge.add_argument("--compute-device", default=env_default("compute_device", "auto"),
                      help="torch device for the model: auto (CUDA when available, else CPU), cpu, cuda, cuda:1")
    edge.add_argument("--max-batch-size", type=POSITIVE_INT, default=env_default("max_batch_size", 8),
                      help="most requests that share one forward pass")
    edge.add_argument("--max-wait-ms", type=NON_NEGATIVE, default=env_default("max_wait_ms", 2.0),
                      help="longest a request waits for its batch to fill (only while other requests are arriving)")
    edge.add_argument("--max-queue", type=POSITIVE_INT, default=env_default("max_queue", 64),
                      help="most requests waiting for a batch; past it the edge answers RESOURCE_EXHAUSTED at once")
    edge.add_argument("--drain-delay", type=NON_NEGATIVE, default=env_default("drain_delay", 0.0),
                      help="seconds between SIGTERM (health turns NOT_SERVING) and refusing new RPCs")
    edge.add_argument("--tls-cert", default=env_default("tls_cert", None),
                      help="PEM certificate (chain) of the edge; with --tls-key turns TLS on")
    edge.add_argument("--tls-key", default=env_default("tls_key", None), help="PEM private key of --tls-cert")
    edge.add_argument("--tls-client-ca", default=env_default("tls_client_ca", None),
                      help="PEM CA bundle: require every client to present a certificate it signed (mutual TLS)")
    edge.add_argument("--torch-threads", type=NON_NEGATIVE_INT, default=env_default("torch_threads", 0),
                      help=THREADS_HELP)
    edge.set_defaults(func=_edge)

    device = sub.add_parser("device", help="run the device REST endpoint (head, encoder, pack, channel)")
    device.add_argument("--bundle", default=env_default("bundle", DEFAULT_BUNDLE), help="model bundle folder")
    device.add_argument("--edge", type=EDGE_ADDRESS, default=env_default("edge", "127.0.0.1:50051"),
                        help="edge address H:P; a list H1:P1,H2:P2 or a DNS name with several addresses is "
                             "balanced by gRPC round_robin")
    device.add_argument("--host", default=env_default("device_host", "127.0.0.1"), help="address to bind")
    device.add_argument("--port", type=PORT, default=env_default("device_port", 8000), help="port to bind")
    device.add_argument("--channel", type=converter("channel", _choice("none", "bsc", "bec", "ge")),
                        default=env_default("channel", "none"), metavar="{none,bsc,bec,ge}",
                        help="channel applied to the payload bits (ge: Gilbert-Elliott bursts)")
    device.add_argument("--p", type=PROBABILITY, default=env_default("p", 0.0),
                        help="bit error (BSC), erasure (BEC) probability or mean bit error rate (GE)")
    device.add_argument("--burst", type=BURST, default=env_default("burst", "8"), metavar="L",
                        help="ge: mean burst length in bits (runs of consecutive bit errors), >= 1")
    device.add_argument("--interleave", type=INTERLEAVE, default=env_default("interleave", None), metavar="SEED",
                        help="seed of the bit interleaver around the channel (default: none)")
    device.add_argument("--seed", type=SEED, default=env_default("seed", None),
                        help="channel seed, an integer (default: fresh randomness)")
    device.add_argument("--erasure-policy", type=converter("erasure policy", _choice("random", "zero", "mask")),
                        default=env_default("erasure_policy", "random"), metavar="{random,zero,mask}",
                        help="what the edge reads for a BEC-erased bit: a fair coin (the papers'), 0, or a coin "
                             "drawn by the edge from an erasure mask sent beside the payload")
    device.add_argument("--compute-device", default=env_default("compute_device", "cpu"),
                        help="torch device for head and encoder")
    device.add_argument("--max-image-bytes", type=POSITIVE_INT,
                        default=env_default("max_image_bytes", 10 * 1024 * 1024),
                        help="largest upload accepted, in bytes (however the body is sent)")
    device.add_argument("--max-image-pixels", type=POSITIVE_INT, default=env_default("max_image_pixels", None),
                        help="largest image accepted, in pixels (width x height); default (128 x the model's input "
                             "side)^2, at most 4096^2")
    device.add_argument("--rpc-timeout", type=POSITIVE, default=env_default("rpc_timeout", 5.0),
                        help="time budget of a request, in seconds; what is left of it when the bits leave is the "
                             "gRPC deadline at the edge")
    device.add_argument("--max-in-flight", type=POSITIVE_INT, default=env_default("max_in_flight", 32),
                        help="most classifications in progress; past it the answer is 503 + Retry-After at once")
    device.add_argument("--api-token", default=env_default("api_token", None),
                        help="require 'Authorization: Bearer TOKEN' on the API (/healthz and /readyz stay open); "
                             "prefer SJSCC_API_TOKEN to keep it out of the process list")
    device.add_argument("--edge-ca", default=env_default("edge_ca", None),
                        help="PEM CA bundle that signs the edge's certificate; turns TLS to the edge on")
    device.add_argument("--tls-cert", default=env_default("tls_cert", None),
                        help="PEM client certificate for mutual TLS with the edge (needs --edge-ca)")
    device.add_argument("--tls-key", default=env_default("tls_key", None), help="PEM private key of --tls-cert")
    device.add_argument("--edge-server-name", default=env_default("edge_server_name", None),
                        help="name to check in the edge's certificate when the address does not carry it")
    device.add_argument("--keepalive", type=POSITIVE, default=env_default("keepalive", 10.0),
                        help="seconds between gRPC keepalive pings to the edge (a dead connection is noticed "
                             "within twice this)")
    device.add_argument("--max-batch-size", type=POSITIVE_INT, default=env_default("device_max_batch_size", 32),
                        help="most concurrent requests that share one head + encoder pass (1: no batching)")
    device.add_argument("--torch-threads", type=NON_NEGATIVE_INT, default=env_default("torch_threads", 0),
                        help=THREADS_HELP)
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
        description="Accuracy of one or more bundles over BSC/BEC/GE at each p, repeated with fresh channel noise "
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
    evaluate.add_argument("--channel", default="bsc", metavar="bsc|bec|ge|bsc,ge",
                          help="channel kind(s) to sweep: bsc, bec, ge (Gilbert-Elliott bursts, see --burst)")
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
    evaluate.add_argument("--halves", type=int, default=None, metavar="SEED",
                          help="also split the images into two seeded class-stratified halves A and B and report "
                               "every point on each; with --confidence, pick the threshold on half A (fewest bits "
                               "within --select-margin of all T steps) and report it on half B")
    evaluate.add_argument("--select-margin", type=float, default=0.5, metavar="POINTS",
                          help="with --halves and --confidence: accuracy a threshold may lose on half A against "
                               "sending all T steps, in percentage points (default 0.5)")
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
        "bench", help="measure the model, the bits and the service end to end; save JSON",
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
    bench.add_argument("--mode", choices=["all", "model", "e2e"], default="all",
                       help="model: the per-stage model table; e2e: in-process limit, REST through edge and device "
                            "started on loopback, TCP bytes, Gbit/s (needs --bundle); all (default): both when a "
                            "bundle is given, the model table otherwise")
    bench.add_argument("--smoke", action="store_true",
                       help="tiny counts everywhere (CI: checks the bench works; its numbers mean nothing)")
    bench.add_argument("--service-threads", type=int, default=0,
                       help="e2e: torch threads of each service process (0: half the cores each)")
    bench.add_argument("--services-from", metavar="DIR", default=None,
                       help="e2e: run edge and device from this source tree (e.g. an export of an older commit), "
                            "for before/after comparisons with the same harness")
    bench.add_argument("--edges", type=int, default=1,
                       help="e2e: also measure this many edge processes behind one device (its --edge list)")
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
        message = " ".join(str(error).split())  # one line
        print(f"sjscc {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
