"""``sjscc demo`` and ``sjscc bench``: their parsers; the tools themselves load when a command runs."""

from __future__ import annotations

import argparse

from sjscc.common.channels.settings import CHANNEL_NAMES
from sjscc.common.cli_support import DEFAULT_BUNDLE, env_default


def add_demo(sub: argparse._SubParsersAction) -> None:
    """Register ``sjscc demo`` on the root parser's subcommands."""
    demo = sub.add_parser("demo", help="start an edge and a device on loopback and classify a few images")
    demo.add_argument("--bundle", default=env_default("bundle", DEFAULT_BUNDLE), help="model bundle folder")
    demo.add_argument("--serve", action="store_true", help="keep both services running after the demo")
    demo.add_argument("--images", help="folder of your own pictures (default: photos shipped with scikit-image)")
    demo.add_argument("--channel", choices=list(CHANNEL_NAMES), default="none",
                      help="channel on the payload bits (ge: Gilbert-Elliott bursts, mean length 8)")
    demo.add_argument("--p", type=float, default=0.0,
                      help="bit error (BSC), erasure (BEC) probability or mean bit error rate (GE)")
    demo.add_argument("--confidence", type=float, default=None, metavar="TAU",
                      help="progressive bundles: send steps until the edge's top-1 probability >= TAU and show the "
                           "bits each image saved (REST mode=progressive)")
    demo.add_argument("--seed", default=None, help="channel seed (default: fresh randomness)")
    demo.add_argument("--device-port", type=int, default=0, help="device REST port (default: a free one)")
    demo.add_argument("--edge-port", type=int, default=0, help="edge gRPC port (default: a free one)")
    demo.set_defaults(func=run_demo)


def add_bench(sub: argparse._SubParsersAction) -> None:
    """Register ``sjscc bench`` on the root parser's subcommands."""
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
    bench.add_argument("--radio-link", action="store_true",
                       help="also measure the radio link (Sionna) in Mbit/s: hard and soft BPSK over AWGN, hard "
                            "16-QAM, hard BPSK over block Rayleigh (adds 'radio_link' to the JSON)")
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
    bench.set_defaults(func=run_bench)


def run_demo(args: argparse.Namespace) -> int:
    from sjscc.tools.demo import run_demo as demo

    return demo(args)


def run_bench(args: argparse.Namespace) -> int:
    from sjscc.tools.bench import run_bench as bench

    return bench(args)
