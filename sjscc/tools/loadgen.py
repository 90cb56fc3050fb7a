"""The one HTTP/1.1 load generator: ``sjscc bench``'s timed runs and the load/soak test of a running device.

Light enough not to be the bottleneck: each request (headers + multipart body) is encoded once, every connection
is kept alive and sends its next request as soon as the previous answer arrived (closed loop, so ``concurrency``
requests are in flight), and the answer is read by its ``Content-Length`` without parsing JSON (except the
latency breakdown of timed 200s). A request that gets no HTTP answer at all (refused, reset, timed out) is counted
as ``lost:<error>`` and its connection reopened. Two command lines drive :func:`drive`:

- ``python -m sjscc.tools.loadgen --url URL --body FILE --content-type TYPE ...`` (the bench: one pre-encoded body,
  N timed requests after a warm-up; reports its own CPU use next to the latencies, one JSON object on stdout);
- ``scripts/load.py --url BASE --requests N|--duration S --pid PID ...`` (:func:`soak_main`: seeded PNG photos to
  ``/v1/classify``, status counts, requests lost, and the device's resident memory after the warm-up and at the
  end; exit status 1 on any 5xx, any lost request, or memory growth past ``--max-rss-growth``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

BOUNDARY = "sjsccbench7c1f"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def multipart_body(name: str, image: bytes) -> tuple[bytes, str]:
    """The ``POST /v1/classify`` body with field ``image``, and its Content-Type."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode()
    return head + image + f"\r\n--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def build_request(url: str, body: bytes, content_type: str,
                  headers: dict[str, str] | None = None) -> tuple[str, int, bytes]:
    """``(host, port, request bytes)`` for one keep-alive POST of ``body`` to ``url``."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"--url must be http://HOST:PORT/PATH, got {url!r}")
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    extra = "".join(f"{key}: {value}\r\n" for key, value in (headers or {}).items())
    head = (f"POST {target} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: keep-alive\r\n\r\n")
    return parts.hostname, parts.port, head.encode() + body


@dataclass(frozen=True)
class Target:
    """One server and the encoded requests a connection to it sends in turn."""

    host: str
    port: int
    requests: tuple[bytes, ...]


@dataclass
class LoadRun:
    """What :func:`drive` saw: every answer's status (warm-up included), timed latencies, the answers' own
    ``latency_ms`` breakdown, the last timed 200 answer, and the wall and CPU seconds of the timed part."""

    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)
    last_body: bytes = b""
    wall_s: float = 0.0
    cpu_s: float = 0.0


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


async def drive(targets: list[Target], concurrency: int, requests: int | None = None,
                duration_s: float | None = None, warmup: int = 0, timeout_s: float | None = None,
                on_sample: Callable[[float], None] | None = None, sample_every_s: float = 60.0) -> LoadRun:
    """Closed-loop load: ``concurrency`` kept-alive connections (spread over ``targets``), ``warmup`` untimed
    requests, then ``requests`` timed ones or as many as ``duration_s`` allows; ``on_sample(seconds)`` is called
    about every ``sample_every_s``."""
    if (requests is None) == (duration_s is None):
        raise ValueError("give exactly one of requests and duration_s")
    run = LoadRun()
    issued = 0
    timed_start: float | None = None
    begin = time.perf_counter()
    next_sample = begin + sample_every_s

    def take() -> bool | None:
        """Claim the next request: None when the run is over, else whether it is timed (past the warm-up)."""
        nonlocal issued, timed_start
        if requests is not None and issued >= requests + warmup:
            return None
        if duration_s is not None and issued >= warmup and time.perf_counter() - (timed_start or begin) >= duration_s:
            return None
        issued += 1
        timed = issued > warmup
        if timed and timed_start is None:
            timed_start = time.perf_counter()
        return timed

    async def worker(index: int) -> None:
        nonlocal next_sample
        target = targets[index % len(targets)]
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        sent = 0
        try:
            while (timed := take()) is not None:
                request = target.requests[sent % len(target.requests)]
                sent += 1
                began = time.perf_counter()
                status, body = 0, b""
                try:
                    if connection is None:
                        connection = await asyncio.wait_for(asyncio.open_connection(target.host, target.port),
                                                            timeout_s)
                    status, body = await asyncio.wait_for(_one(*connection, request), timeout_s)
                    run.statuses[str(status)] += 1
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                        RuntimeError, ValueError) as error:
                    run.statuses[f"lost:{type(error).__name__}"] += 1
                    if connection is not None:
                        connection[1].close()
                    connection = None
                elapsed = time.perf_counter() - began
                if timed:
                    run.latencies_ms.append(elapsed * 1e3)
                    if status == 200:
                        run.last_body = body
                        for stage, value in json.loads(body).get("latency_ms", {}).items():
                            run.stages.setdefault(stage, []).append(value)
                if on_sample is not None and time.perf_counter() >= next_sample:
                    next_sample += sample_every_s
                    on_sample(time.perf_counter() - begin)
        finally:
            if connection is not None:
                connection[1].close()

    cpu0 = _cpu_seconds()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    run.wall_s = time.perf_counter() - (timed_start or begin)
    run.cpu_s = _cpu_seconds() - cpu0
    return run


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_summary(run: LoadRun, concurrency: int) -> dict:
    """The bench's view: percentiles, throughput, the generator's own CPU use, the answers' stage means."""
    ordered = sorted(run.latencies_ms)
    return {
        "concurrency": concurrency,
        "requests": len(ordered),
        "statuses": dict(sorted(run.statuses.items())),
        "p50_ms": _percentile(ordered, 0.50),
        "p95_ms": _percentile(ordered, 0.95),
        "p99_ms": _percentile(ordered, 0.99),
        "mean_ms": statistics.fmean(ordered),
        "throughput_rps": len(ordered) / run.wall_s,
        "wall_s": run.wall_s,
        "loadgen_cpu_s": run.cpu_s,
        "loadgen_cpu_fraction_of_one_core": run.cpu_s / run.wall_s,
        "answer_latency_ms_mean": {stage: statistics.fmean(values) for stage, values in run.stages.items()},
        "last_answer": json.loads(run.last_body) if run.last_body else None,
    }


def soak_summary(run: LoadRun) -> dict:
    """The load/soak test's view: status counts, 5xx and lost requests, rounded latency percentiles."""
    ordered = sorted(run.latencies_ms)

    def percentile(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else 0.0

    return {
        "requests": len(ordered), "seconds": round(run.wall_s, 1), "rps": round(len(ordered) / run.wall_s, 1),
        "statuses": dict(run.statuses),
        "server_errors": sum(n for s, n in run.statuses.items() if s.isdigit() and int(s) >= 500),
        "lost": sum(n for s, n in run.statuses.items() if s.startswith("lost")),
        "latency_ms": {"p50": percentile(0.5), "p90": percentile(0.9), "p99": percentile(0.99),
                       "max": percentile(1.0), "mean": round(statistics.fmean(ordered), 1) if ordered else 0},
    }


def main(argv: list[str] | None = None) -> int:
    """The bench's command line: one JSON object (:func:`bench_summary`) on stdout."""
    parser = argparse.ArgumentParser(prog="python -m sjscc.tools.loadgen", description=__doc__.splitlines()[0])
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
    targets = []
    for url in args.url:
        host, port, request = build_request(url, body, args.content_type)
        targets.append(Target(host, port, (request,)))
    run = asyncio.run(drive(targets, args.concurrency, args.requests, warmup=args.warmup))
    json.dump(bench_summary(run, args.concurrency), sys.stdout)
    return 0


# --- the load and soak test of a running device (scripts/load.py) ------------------------------------------------

def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def photos(count: int = 8, size: int = 64) -> list[bytes]:
    """Small seeded-noise PNGs (a few kB: the load is the model's cost, not the upload's)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def soak_targets(base_url: str, headers: dict[str, str]) -> list[Target]:
    """One target: ``POST BASE/v1/classify`` with each of :func:`photos` in turn."""
    requests = []
    for image in photos():
        body, content_type = multipart_body("p.png", image)
        host, port, request = build_request(base_url.rstrip("/") + "/v1/classify", body, content_type, headers)
        requests.append(request)
    return [Target(host, port, tuple(requests))]


def soak_main(argv: list[str] | None = None) -> int:
    """``scripts/load.py``: a load test (``--requests``) or a soak (``--duration``) of a running device, as JSON."""
    parser = argparse.ArgumentParser(description="Load and soak generator for a running device: N requests (or D "
                                                 "seconds) at concurrency C, as JSON.")
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
    targets = soak_targets(args.url, headers)

    warmup = asyncio.run(drive(targets, args.concurrency, args.warmup, timeout_s=args.timeout))
    report: dict = {"warmup": soak_summary(warmup), "concurrency": args.concurrency}
    samples: list[tuple[float, float]] = []
    if args.pid:
        report["rss_mib_after_warmup"] = round(rss_mib(args.pid), 1)

    def sample(at_s: float) -> None:
        if args.pid:
            samples.append((round(at_s, 1), round(rss_mib(args.pid), 1)))

    run = asyncio.run(drive(targets, args.concurrency, args.requests, args.duration, timeout_s=args.timeout,
                            on_sample=sample, sample_every_s=args.sample_every))
    report["run"] = soak_summary(run)
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
    raise SystemExit(main())
