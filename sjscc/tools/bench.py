"""``sjscc bench``: how fast the codec, the packer and the channel are, per image, saved as JSON.

What one run measures, for each batch size, on random inputs (a speed benchmark: it says nothing about
accuracy, and without ``--bundle`` the weights are random too):

- the SNN encoder with the first Conv-BN computed once (``SNNEncoder.forward``) against the naive
  T-fold recompute (``forward_naive``), and the speed-up between them;
- the decoder (reconstructor + converter), and the backbone head and tail when there is a backbone;
- pack / unpack of one image's spikes, the BSC and BEC on tensors and on packed payloads;
- the in-process pipeline (head, encoder, pack, channel, unpack, decoder, tail) as images per second.

With a bundle, the default ``--mode all`` adds the end-to-end measurements of :mod:`sjscc.tools.bench_e2e` (the
service against the in-process limit, TCP bytes on the wire, Gbit/s of the bit path) to the same JSON.

Geometries: ``--bundle DIR`` benchmarks a trained bundle; by default a tiny random model (the test suite's,
so the command finishes in seconds anywhere); ``--paper-geometry`` the papers' codec alone,
(2048,4,4) -> 256 -> 32 at T = 8, i.e. 4,096 bits per image.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sjscc.common import bitstream
from sjscc.common.backbones import BackboneConfig
from sjscc.common.channels import BinaryErasureChannel, BinarySymmetricChannel, NoiselessChannel, apply_to_payload
from sjscc.common.codecs import Codec, CodecConfig, build_codec
from sjscc.common.devices import select_device
from sjscc.tools.machine import machine_info

CHANNEL_P = 0.1
WARMUP = 2
NOTE = "speed benchmark only: random inputs (random weights unless a bundle is given); says nothing about accuracy"


@dataclass
class Subject:
    """What is timed: a codec, with the backbone halves around it when there are any."""

    source: str
    description: str
    codec: Codec
    feature_shape: tuple[int, int, int]
    head: nn.Module | None = None
    tail: nn.Module | None = None
    image_shape: tuple[int, int, int] | None = None
    model_id: str | None = None


def tiny_spec():
    """The test suite's tiny model: ResNet-20 (width 8) cut at layer3.0 -> (32,8,8); codec 32 -> 8 -> 2, T = 4."""
    from sjscc.common.model import ModelSpec

    return ModelSpec(
        backbone=BackboneConfig(name="cifar_resnet20", split="layer3.0", num_classes=10, kwargs={"width": 8}),
        codec="snn",
        codec_config=CodecConfig(in_channels=32, c1=8, c2=2, timesteps=4),
    )


def _subject(args: argparse.Namespace, device: torch.device) -> Subject:
    """Build the model to benchmark from the command line's choice of geometry."""
    torch.manual_seed(0)
    if args.paper_geometry:
        codec = build_codec("snn", CodecConfig(in_channels=2048, c1=256, c2=32, timesteps=8))
        return Subject("paper", "papers' SNN codec only, (2048,4,4) -> 256 -> 32, T = 8, random weights",
                       codec.to(device).eval(), (2048, 4, 4))
    if args.bundle:
        from sjscc.common.bundle import load_bundle

        bundle = load_bundle(args.bundle)
        model = bundle.build(device=device)
        size = bundle.spec.image_size
        return Subject("bundle", f"bundle {bundle.path} ({bundle.manifest['backbone']} @ {bundle.manifest['split']}, "
                       f"{bundle.manifest['codec']})", model.codec, tuple(model.feature_shape), model.head, model.tail,
                       (3, size, size), bundle.model_id)
    from sjscc.common.model import build_split_model

    spec = tiny_spec()
    model = build_split_model(spec).to(device).eval()
    return Subject("tiny-random", "tiny random model: ResNet-20 (width 8) @ layer3.0 -> (32,8,8), codec 32->8->2, T=4",
                   model.codec, tuple(model.feature_shape), model.head, model.tail, (3, 32, 32))


def _timer(device: torch.device, iterations: int) -> Callable[[Callable[[], object]], float]:
    """Median wall time of one call, in seconds, after a warm-up (synchronising the GPU around each call)."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def measure(fn: Callable[[], object]) -> float:
        for _ in range(WARMUP):
            fn()
        samples = []
        for _ in range(iterations):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    return measure


def _bench_batch(subject: Subject, batch: int, measure: Callable, device: torch.device) -> dict[str, Any]:
    """All timings for one batch size, per image."""
    codec, encoder = subject.codec, subject.codec.encoder
    generator = torch.Generator().manual_seed(batch)
    if subject.head is not None:
        images = torch.randn(batch, *subject.image_shape, generator=generator).to(device)
        feature = subject.head(images)
    else:
        images = None
        feature = torch.randn(batch, *subject.feature_shape, generator=generator).relu().to(device)
    bits = encoder(feature)
    shape = list(bits.shape[1:])
    bits_cpu = bits.cpu()
    payloads = bitstream.pack_batch(bits_cpu)
    channels: dict[str, NoiselessChannel] = {"bsc": BinarySymmetricChannel(), "bec": BinaryErasureChannel("random")}

    def pipeline() -> torch.Tensor:
        x = subject.head(images) if subject.head is not None else feature
        sent = bitstream.pack_batch(encoder(x).cpu())
        noisy = [apply_to_payload(channels["bsc"], p, shape, CHANNEL_P, generator).payload for p in sent]
        out = codec.decoder(bitstream.unpack_batch(noisy, shape).to(device))
        return subject.tail(out) if subject.tail is not None else out

    ms, us = 1e3 / batch, 1e6 / batch
    row: dict[str, Any] = {"batch_size": batch}
    row["head_ms_per_image"] = measure(lambda: subject.head(images)) * ms if subject.head is not None else None
    row["encoder_ms_per_image"] = measure(lambda: encoder(feature)) * ms
    naive = getattr(encoder, "forward_naive", None)
    row["encoder_naive_ms_per_image"] = measure(lambda: naive(feature)) * ms if naive is not None else None
    row["encoder_speedup"] = (row["encoder_naive_ms_per_image"] / row["encoder_ms_per_image"]
                              if naive is not None else None)
    row["decoder_ms_per_image"] = measure(lambda: codec.decoder(bits)) * ms
    decoded = codec.decoder(bits)
    row["tail_ms_per_image"] = measure(lambda: subject.tail(decoded)) * ms if subject.tail is not None else None
    row["pack_us_per_image"] = measure(lambda: bitstream.pack_batch(bits_cpu)) * us
    row["unpack_us_per_image"] = measure(lambda: bitstream.unpack_batch(payloads, shape)) * us
    row["channel_tensor_us_per_image"] = {
        kind: measure(lambda ch=ch: ch(bits, CHANNEL_P, generator)) * us for kind, ch in channels.items()
    }
    row["channel_packed_us_per_image"] = {
        kind: measure(lambda ch=ch: [apply_to_payload(ch, p, shape, CHANNEL_P, generator) for p in payloads]) * us
        for kind, ch in channels.items()
    }
    row["pipeline_ms_per_image"] = measure(pipeline) * ms
    row["throughput_images_per_s"] = 1e3 / row["pipeline_ms_per_image"]
    row["firing_rate"] = float(bits.float().mean())
    return row


def _peak_rss_mib() -> float:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _environment(device: torch.device) -> dict[str, Any]:
    """The model table's view of :func:`sjscc.tools.machine.machine_info`, plus the torch device it ran on."""
    name = str(device)
    if device.type == "cuda":
        name = f"{device} ({torch.cuda.get_device_name(device)})"
    machine = machine_info()
    return {
        "torch": torch.__version__,
        "device": name,
        "cpu_count": machine["cpu_count"],
        "torch_threads": machine["torch_threads_bench_process"],
        "python": machine["python"],
        "platform": machine["platform"],
        "timestamp": machine["date"],
    }


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark described by ``args`` and return the report (what ``--out`` saves)."""
    device = select_device(args.device)
    subject = _subject(args, device)
    config = subject.codec.config
    latent = subject.codec.latent_shape(subject.feature_shape[1:])
    shape = [subject.codec.timesteps, *latent]
    measure = _timer(device, args.iterations)
    with torch.inference_mode():
        results = [_bench_batch(subject, batch, measure, device) for batch in args.batch_sizes]
    report: dict[str, Any] = {
        "benchmark": "sjscc bench",
        "note": NOTE,
        "geometry": {
            "source": subject.source,
            "description": subject.description,
            "model_id": subject.model_id,
            "codec": subject.codec.name,
            "feature_shape": list(subject.feature_shape),
            "c1": config.c1,
            "c2": config.c2,
            "timesteps": subject.codec.timesteps,
            "latent_shape": latent,
        },
        "payload": {"bits_per_image": bitstream.payload_bits(shape), "bytes_per_image": bitstream.payload_bytes(shape)},
        "channel_p": CHANNEL_P,
        "pipeline": ("head, encoder, " if subject.head is not None else "encoder, ")
        + "pack, BSC on the payload, unpack, decoder" + (", tail" if subject.tail is not None else ""),
        "iterations": args.iterations,
        "warmup": WARMUP,
        "environment": _environment(device),
        "results": results,
        "peak_rss_mib": _peak_rss_mib(),
    }
    if device.type == "cuda":
        report["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    if getattr(args, "radio_link", False):
        report["radio_link"] = radio_link_throughput()
    return report


def radio_link_throughput(repeats: int = 5) -> dict[str, Any]:
    """Radio-link throughput in Mbit/s (payload bits through map, channel and decisions per second, best of
    ``repeats``, on 256 payloads of 4096 bits; CPU): the target is >= 50 for hard BPSK over AWGN."""
    from sjscc.common.channels import LinkSettings
    from sjscc.common.channels.radio import measure_throughput

    cases = {"awgn_bpsk_hard": ("awgn", LinkSettings(4.0, "bpsk")),
             "awgn_bpsk_soft": ("awgn", LinkSettings(4.0, "bpsk", decisions="soft")),
             "awgn_16qam_hard": ("awgn", LinkSettings(4.0, "16qam")),
             "rayleigh_bpsk_hard": ("rayleigh", LinkSettings(4.0, "bpsk", coherence="packet"))}
    return {name: round(measure_throughput(settings, kind, repeats=repeats)["link_mbit_s"], 2)
            for name, (kind, settings) in cases.items()} | {"threads": torch.get_num_threads()}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table, one row per batch size."""
    g, env = report["geometry"], report["environment"]
    lines = [
        f"sjscc bench: {g['description']}",
        f"  {report['note']}",
        f"  payload {report['payload']['bits_per_image']} bits = {report['payload']['bytes_per_image']} bytes "
        f"per image; channel p = {report['channel_p']}; median of {report['iterations']} runs",
        f"  torch {env['torch']} on {env['device']}, {env['cpu_count']} CPUs ({env['torch_threads']} torch threads), "
        f"peak RSS {report['peak_rss_mib']:.0f} MiB, {env['timestamp']}",
        "",
    ]
    header = ["batch", "enc ms", "naive ms", "speed-up", "dec ms", "pack us", "unpack us", "bsc us", "bsc pkd us",
              "bec us", "bec pkd us", "images/s"]
    rows = [header]
    for r in report["results"]:
        rows.append([
            str(r["batch_size"]), _fmt(r["encoder_ms_per_image"], 3), _fmt(r["encoder_naive_ms_per_image"], 3),
            _fmt(r["encoder_speedup"]) + ("x" if r["encoder_speedup"] is not None else ""),
            _fmt(r["decoder_ms_per_image"], 3), _fmt(r["pack_us_per_image"], 1), _fmt(r["unpack_us_per_image"], 1),
            _fmt(r["channel_tensor_us_per_image"]["bsc"], 1), _fmt(r["channel_packed_us_per_image"]["bsc"], 1),
            _fmt(r["channel_tensor_us_per_image"]["bec"], 1), _fmt(r["channel_packed_us_per_image"]["bec"], 1),
            _fmt(r["throughput_images_per_s"], 1),
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.append("(per image; enc = first Conv-BN once, naive = recomputed at every step; images/s = "
                 f"{report['pipeline']})")
    return "\n".join(lines)


def parse_batch_sizes(text: str | list[int]) -> list[int]:
    """``"1,32"`` -> ``[1, 32]``; refuses anything but positive integers."""
    if isinstance(text, list):
        sizes = text
    else:
        try:
            sizes = [int(part) for part in str(text).split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"--batch-sizes must be positive integers like 1,32; got {text!r}") from None
    if not sizes or any(size < 1 for size in sizes):
        raise ValueError(f"--batch-sizes must be positive integers like 1,32; got {text!r}")
    return sizes


def bundle_energy(bundle_path: str) -> dict[str, Any]:
    """Energy per image of a bundle's halves (:mod:`sjscc.common.energy`), its firing rates measured on the
    photos shipped with scikit-image, preprocessed as the device does (real pictures, not random inputs)."""
    from sjscc.common.bundle import load_bundle
    from sjscc.common.energy import estimate_energy
    from sjscc.device.pipeline import decode_image, preprocess
    from sjscc.tools.samples import sample_images

    bundle = load_bundle(bundle_path)
    model = bundle.build(device=torch.device("cpu"))
    spec = bundle.spec
    images = torch.stack([preprocess(decode_image(data), spec.image_size, spec.mean, spec.std)
                          for _, data in sample_images()])
    return {**estimate_energy(model, [images]), "inputs": "scikit-image sample photos"}


def run_bench(args: argparse.Namespace) -> int:
    """``sjscc bench``: benchmark, print the table, save the JSON report when ``--out`` is given."""
    args.batch_sizes = parse_batch_sizes(args.batch_sizes)
    if args.iterations < 1:
        raise ValueError(f"--iterations must be at least 1, got {args.iterations}")
    mode = getattr(args, "mode", "model")
    if mode == "e2e" and not args.bundle:
        raise ValueError("sjscc bench --mode e2e needs --bundle DIR: the services serve a bundle")
    if getattr(args, "edges", 1) < 1:
        raise ValueError(f"--edges must be at least 1, got {args.edges}")
    report = benchmark(args) if mode in ("all", "model") else {"benchmark": "sjscc bench"}
    if mode in ("all", "model"):
        print(format_table(report))
    if mode in ("all", "e2e") and args.bundle:
        from sjscc.tools.bench_e2e import Counts, format_e2e, run_e2e

        counts = Counts.smoke() if args.smoke else Counts.full()
        report.update(run_e2e(str(args.bundle), counts, edges=args.edges,
                              threads=getattr(args, "service_threads", 0),
                              services_from=getattr(args, "services_from", None)))
        report["e2e_counts"] = "smoke (tiny counts: the numbers mean nothing)" if args.smoke else "full"
        print(format_e2e(report))
    if args.bundle:
        from sjscc.common.energy import format_energy

        report["energy"] = bundle_energy(args.bundle)
        print(format_energy(report["energy"]))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"saved {out}")
    return 0
