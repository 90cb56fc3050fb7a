"""Where one image's time goes on the road, stage by stage, in one process (no HTTP, no gRPC).

    PYTHONPATH=. python benchmarks/profile_inprocess.py --bundle bundles/default \
        --out benchmarks/results/profile-inprocess.txt

Prints the median milliseconds per image of each stage at batch 1 and batch 32, then cProfile's top functions
for 200 batch-1 images. It explains what the end-to-end numbers of ``sjscc bench`` are made of: whatever the
services add on top of these stages is HTTP, multipart, JSON and gRPC (see docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time

import torch

from sjscc.common import bitstream
from sjscc.common.bundle import load_bundle
from sjscc.common.channels import apply_to_payload, build_channel
from sjscc.device.pipeline import DevicePipeline, decode_image, preprocess
from sjscc.edge.pipeline import EdgePipeline
from sjscc.tools.bench_e2e import CHANNEL, test_image
from sjscc.tools.machine import machine_info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="bundles/default")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--out", default=None, help="also write the report to this text file")
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    device, edge = DevicePipeline(bundle, max_batch_size=1), EdgePipeline(bundle, device="cpu")
    channel, generator = build_channel(CHANNEL[0]), torch.Generator().manual_seed(0)
    shape = list(bundle.payload_shape)
    _, png, _ = test_image()

    def road(batch: int, times: dict[str, list[float]] | None = None) -> None:
        marks = [time.perf_counter()]
        images = [decode_image(png, draft_size=device.image_size) for _ in range(batch)]
        marks.append(time.perf_counter())
        tensor = torch.stack([preprocess(i, device.image_size, device.mean, device.std) for i in images])
        marks.append(time.perf_counter())
        bits = device.encode_tensor(tensor)
        marks.append(time.perf_counter())
        payloads = bitstream.pack_batch(bits)
        marks.append(time.perf_counter())
        received = [apply_to_payload(channel, p, shape, CHANNEL[1], generator).payload for p in payloads]
        marks.append(time.perf_counter())
        unpacked = bitstream.unpack_batch(received, shape)
        marks.append(time.perf_counter())
        edge.logits(unpacked).argmax(1)
        marks.append(time.perf_counter())
        if times is not None:
            names = ("decode", "preprocess", "head+encoder", "pack", "channel", "unpack", "decoder+tail")
            for name, begin, end in zip(names, marks, marks[1:], strict=False):
                times.setdefault(name, []).append((end - begin) * 1e3 / batch)

    lines = [f"profile of the in-process road, bundle {bundle.model_id}, channel {CHANNEL}",
             f"machine: {machine_info()}", ""]
    for batch in (1, 32):
        road(batch)
        times: dict[str, list[float]] = {}
        for _ in range(max(3, args.iterations // (1 if batch == 1 else 8))):
            road(batch, times)
        total = sum(statistics.median(v) for v in times.values())
        lines.append(f"batch {batch}: median ms per image by stage (sum {total:.3f} ms = {1e3 / total:.0f} images/s)")
        lines += [f"  {name:14s} {statistics.median(v):8.3f} ms  {statistics.median(v) / total:5.1%}"
                  for name, v in times.items()]
        lines.append("")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(200):
        road(1)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    lines.append("cProfile, 200 images at batch 1, top 25 by own time:")
    lines.append(text.getvalue())
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(report)


if __name__ == "__main__":
    main()
