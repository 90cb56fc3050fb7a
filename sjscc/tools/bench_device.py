"""The device half alone (head + encoder, normalized images in, bits out) in each runtime: what a phone would run.

For ``torch`` and ``onnx`` (:mod:`sjscc.device.runtime`): the median batch-1 latency and the images per second at
each batch size, on one preprocessed photo repeated (speed only; the bits are checked elsewhere). Both runtimes get the
same number of intra-op threads.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

RUNTIMES = ("torch", "onnx")


def _median_s(fn, iterations: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(max(1, iterations)):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def device_half_speed(bundle_path: str, image: torch.Tensor, batch_sizes: list[int], iterations: int,
                      threads: int = 0, runtimes: tuple[str, ...] = RUNTIMES) -> dict[str, Any]:
    """``{"torch": {"b1_ms", "best_ips", "best_batch", "images_per_s_by_batch"}, "onnx": {...}, "onnx_over_torch_b1"}``
    for one normalized image ``[3, S, S]``; ``threads`` intra-op threads for both runtimes (0: each one's default).
    """
    from sjscc.common.bundle import load_bundle
    from sjscc.device.runtime import build_runtime

    bundle = load_bundle(bundle_path)
    report: dict[str, Any] = {"threads": threads or "default"}
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    for name in runtimes:
        runtime = build_runtime(name, bundle, threads=threads)
        b1 = _median_s(lambda r=runtime: r(image[None]), iterations)
        by_batch = {}
        for batch in batch_sizes:
            images = image.expand(batch, *image.shape).contiguous()
            runs = max(2, iterations * 4 // max(batch, 4))
            by_batch[str(batch)] = batch / _median_s(lambda r=runtime, x=images: r(x), runs, warmup=1)
        best = max(by_batch, key=by_batch.get)
        report[name] = {"b1_ms": b1 * 1e3, "best_ips": by_batch[best], "best_batch": int(best),
                        "images_per_s_by_batch": by_batch}
    torch.set_num_threads(previous)
    if "torch" in report and "onnx" in report:
        report["onnx_over_torch_b1"] = report["onnx"]["b1_ms"] / report["torch"]["b1_ms"]
    return report


def format_device_half(report: dict[str, Any]) -> str:
    lines = ["device half (head + encoder) by runtime:"]
    for name in RUNTIMES:
        if name in report:
            row = report[name]
            lines.append(f"  {name:<6} batch-1 {row['b1_ms']:.2f} ms; best {row['best_ips']:.1f} images/s "
                         f"(batch {row['best_batch']})")
    if "onnx_over_torch_b1" in report:
        lines.append(f"  onnx / torch at batch 1: {report['onnx_over_torch_b1']:.2f} (target <= 0.5)")
    return "\n".join(lines)
