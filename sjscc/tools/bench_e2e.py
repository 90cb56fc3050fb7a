"""``sjscc bench`` end to end: the service against the same model in one process, and the bits on the wire.

One run, on one machine, so that ratios cancel the machine's speed:

- **in-process limit**: the bundle's device and edge halves in this process, from the same image bytes to the
  label (decode, preprocess, head, encoder, pack, channel, unpack, decoder, tail), no HTTP or gRPC: batch-1
  latency and the best throughput over batch sizes;
- **REST** at concurrency 1, 8 and 32: ``sjscc edge`` and ``sjscc device`` started here on loopback, loaded by
  :mod:`sjscc.tools.loadgen` in its own process (pre-encoded body, kept-alive connections; it reports its CPU use);
- **bits**: payload bits, the protobuf message (``wire_bytes``), and the TCP bytes per request in each direction
  in steady state, counted by :class:`sjscc.tools.tcpcount.CountingProxy` between a second device and the edge;
  compression against the float32 feature and the PNG/JPEG of the input image;
- **pack + channel + unpack** in Gbit/s on a payload of 1 Mbit (2^20 bits);
- **scale**: p99 and throughput at more concurrent connections against one edge, and (``--edges 2``) two edge
  processes behind the device's gRPC client;
- the **machine**: CPU model, cores, torch threads, library versions, date.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sjscc.common import bitstream
from sjscc.common.channels import BinarySymmetricChannel, apply_to_payload
from sjscc.tools.loadgen import multipart_body
from sjscc.tools.machine import machine_info

CHANNEL = ("bsc", 0.1)
GBPS_SHAPE = (8, 128, 32, 32)  # 2^20 bits
@dataclass(frozen=True)
class Counts:
    """How much work each part does: the full run's counts, or the smoke mode's tiny ones (CI)."""

    inprocess_iterations: int
    batch_sizes: tuple[int, ...]
    requests: dict[int, int]  # concurrency -> timed requests
    warmup: int
    wire_requests: int
    gbps_iterations: int
    scale_concurrency: tuple[int, ...]
    scale_requests: int

    @classmethod
    def full(cls) -> Counts:
        return cls(100, (1, 8, 16, 32, 64), {1: 300, 8: 1000, 32: 2000}, 30, 300, 20, (64, 128), 1000)

    @classmethod
    def smoke(cls) -> Counts:
        return cls(3, (1, 4), {1: 5, 8: 8, 32: 32}, 2, 5, 2, (8,), 8)


def test_image() -> tuple[str, bytes, np.ndarray]:
    """A real photo (scikit-image's cat, 451x300), PNG-encoded as a user would upload it."""
    from PIL import Image
    from skimage import data

    pixels = data.chelsea()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "chelsea.png", buffer.getvalue(), pixels


def _median_s(fn, iterations: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def inprocess_limit(bundle_path: str, image: bytes, counts: Counts) -> dict[str, Any]:
    """The same road as the services (image bytes -> label, channel included), in one process."""
    from sjscc.common.bundle import load_bundle
    from sjscc.common.channels import build_channel
    from sjscc.device.pipeline import DevicePipeline, decode_image, preprocess
    from sjscc.edge.pipeline import EdgePipeline

    bundle = load_bundle(bundle_path)
    device, edge = DevicePipeline(bundle), EdgePipeline(bundle, device="cpu")
    channel = build_channel(CHANNEL[0])
    generator = torch.Generator().manual_seed(0)
    shape = list(bundle.payload_shape)

    def classify(batch: int) -> list[int]:
        tensors = [preprocess(decode_image(image, draft_size=device.image_size), device.image_size, device.mean,
                              device.std) for _ in range(batch)]
        payloads = bitstream.pack_batch(device.encode_tensor(torch.stack(tensors)))
        received = [apply_to_payload(channel, p, shape, CHANNEL[1], generator).payload for p in payloads]
        logits = edge.logits(bitstream.unpack_batch(received, shape))
        return logits.argmax(1).tolist()

    b1 = _median_s(lambda: classify(1), counts.inprocess_iterations)
    by_batch = {}
    for batch in counts.batch_sizes:
        iterations = max(2, counts.inprocess_iterations * 4 // max(batch, 4))
        by_batch[str(batch)] = batch / _median_s(lambda b=batch: classify(b), iterations, warmup=1)
    best = max(by_batch, key=by_batch.get)
    return {
        "inprocess_b1_ms": b1 * 1e3,
        "inprocess_best_ips": by_batch[best],
        "inprocess_best_batch": int(best),
        "inprocess_images_per_s_by_batch": by_batch,
        "inprocess_label": bundle.classes[classify(1)[0]],
        "feature_shape": list(bundle.manifest.get("feature_shape", [])),
        "image_size": device.image_size,
    }


def pack_channel_unpack_gbps(iterations: int) -> dict[str, Any]:
    """pack (tensor -> bytes) + BSC(0.1) on the packed payload + unpack (bytes -> tensor) on 2^20 bits."""
    generator = torch.Generator().manual_seed(0)
    spikes = (torch.rand(GBPS_SHAPE, generator=generator) < 0.3).to(torch.uint8)
    channel = BinarySymmetricChannel()
    n_bits = spikes.numel()
    timings = {}

    def pack() -> bytes:
        return bitstream.pack(spikes)

    payload = pack()
    received = apply_to_payload(channel, payload, GBPS_SHAPE, CHANNEL[1], generator).payload
    timings["pack"] = _median_s(pack, iterations)
    timings["channel"] = _median_s(lambda: apply_to_payload(channel, payload, GBPS_SHAPE, CHANNEL[1], generator),
                                   iterations)
    timings["unpack"] = _median_s(lambda: bitstream.unpack(received, GBPS_SHAPE, torch.uint8), iterations)
    timings["channel_draws_only"] = _median_s(lambda: torch.rand(GBPS_SHAPE, generator=generator) < CHANNEL[1],
                                              iterations)
    total = _median_s(lambda: bitstream.unpack(apply_to_payload(channel, pack(), GBPS_SHAPE, CHANNEL[1],
                                                                generator).payload, GBPS_SHAPE, torch.uint8),
                      iterations)
    return {
        "pack_channel_unpack_gbps": n_bits / total / 1e9,
        "pack_channel_unpack_bits": n_bits,
        "pack_channel_unpack_stage_gbps": {k: n_bits / v / 1e9 for k, v in timings.items()},
    }


def compression(payload_bits: int, feature_shape: list[int], pixels: np.ndarray, png: bytes,
                image_size: int) -> dict[str, Any]:
    """Payload size against the float32 feature and the PNG/JPEG of the input (as uploaded, and at model size)."""
    from PIL import Image, ImageOps

    def encoded(image: Image.Image, fmt: str, **options: Any) -> int:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        return len(buffer.getvalue())

    photo = Image.fromarray(pixels)
    small = ImageOps.fit(photo, (image_size, image_size), method=Image.Resampling.BILINEAR)
    payload_bytes = (payload_bits + 7) // 8
    sizes = {
        "float32_feature_bytes": int(np.prod(feature_shape)) * 4 if feature_shape else None,
        "png_upload_bytes": len(png),
        "jpeg_q90_upload_bytes": encoded(photo, "JPEG", quality=90),
        f"png_{image_size}px_bytes": encoded(small, "PNG"),
        f"jpeg_q90_{image_size}px_bytes": encoded(small, "JPEG", quality=90),
    }
    return {"payload_bytes": payload_bytes, "sizes": sizes,
            "ratio_to_payload": {k: (v / payload_bytes if v else None) for k, v in sizes.items()}}


class Services:
    """Edge and device processes on free loopback ports (``sjscc edge`` / ``sjscc device``), stopped on exit."""

    def __init__(self, bundle: str, log_dir: Path, threads: int | None, source: str | None = None) -> None:
        self.bundle, self.log_dir, self.threads = str(Path(bundle).resolve()), log_dir, threads
        self.source = str(Path(source).resolve()) if source else None
        self.running: list = []

    def _start(self, name: str, arguments: list[str]):
        """``python -m sjscc.cli ARGS`` from this checkout, or from ``source`` (its cwd, so its sjscc wins)."""
        from sjscc.tools.services import start_service

        return start_service(name, arguments, self.log_dir, self._env(), cwd=self.source)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.threads:
            env["SJSCC_TORCH_THREADS"] = str(self.threads)
        if self.source:  # another checkout's services under this harness: before/after comparisons
            env["PYTHONPATH"] = str(Path(self.source).resolve())
        return env

    def edge(self, name: str = "edge") -> str:
        from sjscc.tools.services import edge_is_serving, free_port, wait_until

        port = free_port()
        service = self._start(name, ["edge", "--bundle", self.bundle, "--host", "127.0.0.1", "--port", str(port)])
        self.running.append(service)
        address = f"127.0.0.1:{port}"
        wait_until(lambda: edge_is_serving(address), service)
        return address

    def device(self, edge: str, name: str = "device") -> str:
        from sjscc.tools.services import device_is_ready, free_port, wait_until

        port = free_port()
        service = self._start(name, ["device", "--bundle", self.bundle, "--edge", edge, "--host", "127.0.0.1",
                                     "--port", str(port), "--channel", CHANNEL[0], "--p", str(CHANNEL[1]),
                                     # The bench measures queueing at every concurrency it loads, not admission
                                     # control (tests/device/test_admission.py): no shedding, no deadline missed.
                                     # (Devices older than admission control have no --max-in-flight.)
                                     "--rpc-timeout", str(BENCH_RPC_TIMEOUT_S),
                                     *(["--max-in-flight", str(BENCH_MAX_IN_FLIGHT)] if self.source is None else [])])
        self.running.append(service)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: device_is_ready(base), service)
        return base

    def stop(self) -> None:
        for service in reversed(self.running):
            service.stop()
        self.running.clear()


BENCH_MAX_IN_FLIGHT = 1024
BENCH_RPC_TIMEOUT_S = 60


def load(urls: list[str], body_file: Path, content_type: str, concurrency: int, requests: int,
         warmup: int) -> dict[str, Any]:
    """Run :mod:`sjscc.tools.loadgen` in its own process against ``urls`` and return its JSON."""
    command = [sys.executable, "-m", "sjscc.tools.loadgen", "--body", str(body_file), "--content-type", content_type,
               "--concurrency", str(concurrency), "--requests", str(requests), "--warmup", str(warmup)]
    for url in urls:
        command += ["--url", f"{url}/v1/classify"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    if set(result["statuses"]) != {"200"}:
        raise RuntimeError(f"the device answered with errors: {result['statuses']}")
    return result


def run_e2e(bundle: str, counts: Counts, edges: int = 1, threads: int = 0,
            services_from: str | None = None) -> dict[str, Any]:
    """Everything :mod:`sjscc.tools.bench_e2e` measures, as the top-level keys of the bench report.

    ``threads``: torch threads of each service process (0: half the cores each, the two processes sharing
    the machine); the in-process limit keeps torch's default (every core), so both sides use the whole machine.
    ``services_from``: run ``sjscc edge``/``sjscc device`` from that source tree (e.g. an export of an older
    commit) instead of this one, so a before/after comparison uses the same harness and the same machine state.
    """
    from sjscc.tools.tcpcount import CountingProxy

    threads = threads or max(1, (os.cpu_count() or 2) // 2)
    name, png, pixels = test_image()
    body, content_type = multipart_body(name, png)
    report: dict[str, Any] = {"machine": {**machine_info(), "torch_threads_per_service": threads},
                              "services_from": services_from or "this checkout",
                              "channel": {"kind": CHANNEL[0], "p": CHANNEL[1]},
                              "test_image": f"scikit-image chelsea, {pixels.shape[1]}x{pixels.shape[0]} PNG, "
                                            f"{len(png)} bytes"}
    inprocess = inprocess_limit(bundle, png, counts)
    report.update({k: v for k, v in inprocess.items() if k not in ("feature_shape", "image_size")})
    report.update(pack_channel_unpack_gbps(counts.gbps_iterations))
    with tempfile.TemporaryDirectory(prefix="sjscc-bench-") as scratch:
        body_file = Path(scratch) / "body"
        body_file.write_bytes(body)
        services = Services(bundle, Path(scratch), threads, services_from)
        try:
            edge = services.edge()
            device = services.device(edge)
            rest = {}
            for concurrency, requests in counts.requests.items():
                rest[str(concurrency)] = load([device], body_file, content_type, concurrency, requests,
                                              counts.warmup)
            answer = rest["1"].pop("last_answer")
            for result in rest.values():
                result.pop("last_answer", None)
            report["rest"] = rest
            report["e2e_p50_ms_c1"] = rest["1"]["p50_ms"]
            report["e2e_p99_ms_c32"] = rest["32"]["p99_ms"]
            report["throughput_rps_c32"] = rest["32"]["throughput_rps"]
            report["answer_example"] = {k: answer.get(k) for k in ("label", "bits", "channel", "latency_ms", "edge")}

            edge_host, edge_port = edge.rsplit(":", 1)
            with CountingProxy(edge_host, int(edge_port)) as proxy:
                counted_device = services.device(f"127.0.0.1:{proxy.port}", "device-counted")
                load([counted_device], body_file, content_type, 1, max(counts.warmup, 5), 0)
                before = proxy.counts()
                load([counted_device], body_file, content_type, 1, counts.wire_requests, 0)
                after = proxy.counts()
            n = counts.wire_requests
            report["payload_bits"] = answer["bits"]["payload_bits"]
            report["wire_bytes"] = answer["bits"]["wire_bytes"]
            report["tcp_up_bytes_per_request"] = (after.up - before.up) / n
            report["tcp_down_bytes_per_request"] = (after.down - before.down) / n
            report["tcp_connections"] = after.connections
            report["tcp_note"] = ("TCP payload bytes between device and edge (gRPC over HTTP/2: frames, HPACK headers, "
                                  "flow control), counted by a loopback proxy over "
                                  f"{n} sequential requests on a warm connection; IP/TCP headers not included")
            report["compression"] = compression(report["payload_bits"], inprocess["feature_shape"], pixels, png,
                                                inprocess["image_size"])

            scale: dict[str, Any] = {"one_edge": {}}
            for concurrency in counts.scale_concurrency:
                result = load([device], body_file, content_type, concurrency, counts.scale_requests, counts.warmup)
                result.pop("last_answer", None)
                scale["one_edge"][str(concurrency)] = result
            if edges > 1:
                addresses = [edge] + [services.edge(f"edge-{i}") for i in range(2, edges + 1)]
                spread = services.device(",".join(addresses), "device-spread")
                result = load([spread], body_file, content_type, 32, counts.scale_requests, counts.warmup)
                result.pop("last_answer", None)
                scale[f"{edges}_edges_c32"] = result
            report["scale"] = scale
        finally:
            services.stop()
    report["ratios"] = {
        "rest_p50_c1_over_inprocess_b1": report["e2e_p50_ms_c1"] / report["inprocess_b1_ms"],
        "throughput_c32_over_inprocess_best": report["throughput_rps_c32"] / report["inprocess_best_ips"],
        "tcp_up_minus_payload_bytes": report["tcp_up_bytes_per_request"] - (report["payload_bits"] + 7) // 8,
    }
    report["targets"] = {
        "rest_p50_c1_le_1.25x_inprocess_b1": report["ratios"]["rest_p50_c1_over_inprocess_b1"] <= 1.25,
        "throughput_c32_ge_0.7x_inprocess_best": report["ratios"]["throughput_c32_over_inprocess_best"] >= 0.7,
        "pack_bsc_unpack_ge_1_gbps": report["pack_channel_unpack_gbps"] >= 1.0,
        "tcp_up_le_payload_plus_64": report["ratios"]["tcp_up_minus_payload_bytes"] <= 64,
    }
    return report


def format_e2e(report: dict[str, Any]) -> str:
    """The end-to-end part of the report as plain text."""
    m, r = report["machine"], report["ratios"]
    lines = [
        f"end to end on {m['cpu_model']} ({m['cpu_count']} CPUs), {m['date']}, channel {report['channel']}",
        f"  in-process: batch-1 {report['inprocess_b1_ms']:.2f} ms; best {report['inprocess_best_ips']:.1f} images/s "
        f"(batch {report['inprocess_best_batch']})",
        "  REST   c   p50 ms   p95 ms   p99 ms   req/s   loadgen CPU",
    ]
    for c, row in report["rest"].items():
        lines.append(f"       {c:>3} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f} {row['p99_ms']:8.2f} "
                     f"{row['throughput_rps']:7.1f}   {row['loadgen_cpu_fraction_of_one_core']:.0%} of a core")
    for c, row in report["scale"]["one_edge"].items():
        lines.append(f"       {c:>3} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f} {row['p99_ms']:8.2f} "
                     f"{row['throughput_rps']:7.1f}   {row['loadgen_cpu_fraction_of_one_core']:.0%} of a core")
    for key, row in report["scale"].items():
        if key != "one_edge":
            lines.append(f"  {key}: p99 {row['p99_ms']:.2f} ms, {row['throughput_rps']:.1f} req/s")
    lines += [
        f"  bits: payload {report['payload_bits']} bits, protobuf {report['wire_bytes']} B, TCP per request "
        f"up {report['tcp_up_bytes_per_request']:.1f} B / down {report['tcp_down_bytes_per_request']:.1f} B",
        "  compression (x payload): " + ", ".join(f"{k} {v:.0f}x" for k, v in
                                                   report["compression"]["ratio_to_payload"].items() if v),
        f"  pack + BSC + unpack on {report['pack_channel_unpack_bits']} bits: "
        f"{report['pack_channel_unpack_gbps']:.3f} Gbit/s",
        f"  ratios: REST p50 c1 / in-process b1 = {r['rest_p50_c1_over_inprocess_b1']:.2f}; "
        f"c32 req/s / in-process best = {r['throughput_c32_over_inprocess_best']:.2f}; "
        f"TCP up - payload = {r['tcp_up_minus_payload_bytes']:.1f} B",
        "  targets met: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in report["targets"].items()),
    ]
    return "\n".join(lines)
