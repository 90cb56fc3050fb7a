#!/usr/bin/env python3
"""Load and soak generator for a running device: N requests (or D seconds) at concurrency C, as JSON.

    .venv/bin/python scripts/load.py --url http://127.0.0.1:8000 --requests 2000 --concurrency 32 --pid DEVICE_PID
    .venv/bin/python scripts/load.py --url http://127.0.0.1:8000 --duration 1800 --concurrency 32 --pid DEVICE_PID

Posts small PNG photos (seeded noise, a few kB: the model's cost, not the upload's) to ``/v1/classify`` and
reports status counts, requests lost (no HTTP answer at all), latency percentiles, and, with ``--pid``, the
device's resident memory after the warm-up and at the end (sampled every ``--sample-every`` seconds in a soak).
Exit status 1 when any answer was a 5xx or lost, or memory grew by more than ``--max-rss-growth``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def photos(count: int = 8, size: int = 64) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


async def run(url: str, total: int | None, duration_s: float | None, concurrency: int, timeout_s: float,
              headers: dict[str, str], on_sample=None, sample_every_s: float = 60.0) -> dict:
    images = photos()
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    issued = 0
    start = time.monotonic()
    next_sample = start + sample_every_s

    def more() -> bool:
        if total is not None:
            return issued < total
        return time.monotonic() - start < duration_s

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued, next_sample
        while more():
            index = issued
            issued += 1
            began = time.monotonic()
            try:
                reply = await client.post("/v1/classify", headers=headers,
                                          files={"image": ("p.png", images[index % len(images)], "image/png")})
                statuses[str(reply.status_code)] += 1
            except httpx.HTTPError as error:
                statuses[f"lost:{type(error).__name__}"] += 1
            latencies.append(time.monotonic() - began)
            if on_sample is not None and time.monotonic() >= next_sample:
                next_sample += sample_every_s
                on_sample(time.monotonic() - start)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    elapsed = time.monotonic() - start
    ordered = sorted(latencies)

    def percentile(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 1) if ordered else 0.0

    return {
        "requests": len(latencies), "seconds": round(elapsed, 1), "rps": round(len(latencies) / elapsed, 1),
        "statuses": dict(statuses),
        "server_errors": sum(n for s, n in statuses.items() if s.isdigit() and int(s) >= 500),
        "lost": sum(n for s, n in statuses.items() if s.startswith("lost")),
        "latency_ms": {"p50": percentile(0.5), "p90": percentile(0.9), "p99": percentile(0.99),
                       "max": percentile(1.0), "mean": round(statistics.fmean(ordered) * 1e3, 1) if ordered else 0},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the device, e.g. http://127.0.0.1:8000")
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--requests", type=int, help="how many requests (a load test)")
    amount.add_argument("--duration", type=float, help="how many seconds (a soak)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at once")
    parser.add_argument("--warmup", type=int, default=200, help="requests before memory is first measured")
    parser.add_argument("--pid", type=int, help="the device's process id, to measure its resident memory")
    parser.add_argument("--timeout", type=float, default=30.0, help="client timeout per request, seconds")
    parser.add_argument("--token", help="bearer token, when the device requires one")
    parser.add_argument("--sample-every", type=float, default=60.0, help="soak: seconds between memory samples")
    parser.add_argument("--max-rss-growth", type=float, default=0.2, help="allowed growth after warm-up (0.2 = 20%%)")
    parser.add_argument("--out", help="also write the JSON report here")
    args = parser.parse_args(argv)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}

    warmup = asyncio.run(run(args.url, args.warmup, None, args.concurrency, args.timeout, headers))
    report: dict = {"warmup": warmup, "concurrency": args.concurrency}
    samples: list[tuple[float, float]] = []
    if args.pid:
        report["rss_mib_after_warmup"] = round(rss_mib(args.pid), 1)

    def sample(at_s: float) -> None:
        if args.pid:
            samples.append((round(at_s, 1), round(rss_mib(args.pid), 1)))

    report["run"] = asyncio.run(run(args.url, args.requests, args.duration, args.concurrency, args.timeout, headers,
                                    on_sample=sample, sample_every_s=args.sample_every))
    failed = report["run"]["server_errors"] > 0 or report["run"]["lost"] > 0
    if args.pid:
        report["rss_mib_after_run"] = round(rss_mib(args.pid), 1)
        report["rss_samples"] = samples
        report["rss_growth"] = round(report["rss_mib_after_run"] / report["rss_mib_after_warmup"] - 1, 3)
        failed = failed or report["rss_growth"] > args.max_rss_growth
    report["ok"] = not failed
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
