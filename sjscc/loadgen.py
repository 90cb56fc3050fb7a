"""A light HTTP/1.1 load generator for ``sjscc bench``: ``python -m sjscc.loadgen --url URL --body FILE ...``.

Light enough not to be the bottleneck: the request (headers + multipart body) is encoded once, every
connection is kept alive and sends its next request as soon as the previous answer arrived (closed loop, so
``--concurrency`` requests are in flight), and the answer is read by its ``Content-Length`` without parsing
JSON. It runs in its own process and reports its own CPU use next to the latencies, so a reader can check
that the client was not what limited the throughput. The result is one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def build_request(url: str, body: bytes, content_type: str) -> tuple[str, int, bytes]:
    """``(host, port, request bytes)`` for one keep-alive POST of ``body`` to ``url``."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"--url must be http://HOST:PORT/PATH, got {url!r}")
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = (f"POST {target} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n")
    return parts.hostname, parts.port, head.encode() + body


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next((int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")),
                  None)
    if length is None:
        raise RuntimeError(f"answer without Content-Length: {lines[0]}")
    return status, await reader.readexactly(length)


async def run_load(targets: list[tuple[str, int, bytes]], concurrency: int, requests: int,
                   warmup: int) -> dict:
    """Closed-loop load: ``concurrency`` kept-alive connections (spread over ``targets``), ``requests`` timed."""
    latencies: list[float] = []
    stages: dict[str, list[float]] = {}  # the answers' own latency_ms breakdown: where the time went
    statuses: dict[int, int] = {}
    last_body = b""
    remaining = requests + warmup
    lock = asyncio.Lock()
    start_event = asyncio.Event()
    timing = {"start": 0.0}

    async def worker(index: int) -> None:
        nonlocal remaining, last_body
        host, port, request = targets[index % len(targets)]
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                async with lock:
                    if remaining <= 0:
                        return
                    remaining -= 1
                    timed = remaining < requests
                    if timed and not start_event.is_set():
                        timing["start"] = time.perf_counter()
                        start_event.set()
                began = time.perf_counter()
                status, body = await _one(reader, writer, request)
                elapsed = time.perf_counter() - began
                statuses[status] = statuses.get(status, 0) + 1
                if timed:
                    latencies.append(elapsed * 1e3)
                    last_body = body
                    if status == 200:
                        for stage, value in json.loads(body).get("latency_ms", {}).items():
                            stages.setdefault(stage, []).append(value)
        finally:
            writer.close()

    cpu0 = _cpu_seconds()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    wall = time.perf_counter() - timing["start"]
    cpu = _cpu_seconds() - cpu0
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": statistics.fmean(latencies),
        "throughput_rps": len(latencies) / wall,
        "wall_s": wall,
        "loadgen_cpu_s": cpu,
        "loadgen_cpu_fraction_of_one_core": cpu / wall,
        "answer_latency_ms_mean": {stage: statistics.fmean(values) for stage, values in stages.items()},
        "last_answer": json.loads(last_body) if last_body else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sjscc.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", required=True,
                        help="http://HOST:PORT/PATH?QUERY (repeatable: connections are spread over them)")
    parser.add_argument("--body", required=True, help="file holding the encoded request body")
    parser.add_argument("--content-type", required=True, help="the body's Content-Type (with multipart boundary)")
    parser.add_argument("--concurrency", type=int, default=1, help="connections, each with one request in flight")
    parser.add_argument("--requests", type=int, default=100, help="timed requests")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests first")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.requests < 1 or args.warmup < 0:
        parser.error("--concurrency and --requests must be >= 1, --warmup >= 0")
    body = Path(args.body).read_bytes()
    targets = [build_request(url, body, args.content_type) for url in args.url]
    result = asyncio.run(run_load(targets, args.concurrency, args.requests, args.warmup))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
