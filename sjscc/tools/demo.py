"""``sjscc demo``: the whole system on one machine, as a user would run it.

Starts ``sjscc edge`` and ``sjscc device`` as two processes on free loopback ports, waits until both are
healthy, sends a handful of real photos through ``POST /v1/classify`` (the ones shipped with scikit-image,
or ``--images DIR``), prints what came back (label, confidence, bits, wire bytes, latency per stage) and a
summary, then stops both. ``--serve`` keeps them running until Ctrl+C.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from sjscc.tools.samples import folder_images, sample_images
from sjscc.tools.services import Service, device_is_ready, edge_is_serving, free_port, start_service, wait_until

__all__ = ["classify", "folder_images", "format_progressive", "format_summary", "format_table", "run_demo",
           "sample_images"]

STAGES = ("device_compute", "pack", "channel", "rpc", "edge_compute", "total")


def classify(base_url: str, name: str, image: bytes, params: dict[str, str]) -> dict:
    """One ``POST /v1/classify``; an error answer is returned as ``{"error": ...}`` for the table."""
    reply = httpx.post(f"{base_url}/v1/classify", params=params, files={"image": (name, image)}, timeout=60.0)
    if reply.status_code != 200:
        return {"error": f"HTTP {reply.status_code}: {reply.json().get('detail', reply.text)}"}
    return reply.json()


def format_table(results: list[tuple[str, dict]]) -> str:
    header = ("image", "label", "conf", "bits", "wire B", "flipped", "erased") + tuple(f"{s} ms" for s in STAGES)
    rows = []
    for name, result in results:
        if "error" in result:
            rows.append((name, result["error"]))
            continue
        latency = result["latency_ms"]
        rows.append((
            name, result["label"], f"{result['top'][0]['prob']:.3f}", str(result["bits"]["payload_bits"]),
            str(result["bits"]["wire_bytes"]), str(result["channel"]["flipped_bits"]),
            str(result["channel"]["erased_bits"]), *(f"{latency[s]:.1f}" for s in STAGES),
        ))
    full_rows = [r for r in rows if len(r) == len(header)]
    widths = [max(len(str(r[i])) for r in [header, *full_rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        if len(row) == len(header):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        else:
            lines.append(f"{row[0].ljust(widths[0])}  {row[1]}")
    return "\n".join(lines)


def format_summary(results: list[tuple[str, dict]]) -> str:
    answered = [r for _, r in results if "error" not in r]
    if not answered:
        return f"0 of {len(results)} images classified"
    first = answered[0]
    bits = first["bits"]
    lines = [
        f"{len(answered)} of {len(results)} images classified by model {first['model_id']} over "
        f"{first['channel']['kind']} (p={first['channel']['p']}); edge computes on {first['edge']['compute_device']}",
        f"payload: {bits['payload_bits']} bits per image = T {bits['timesteps']} x latent {bits['latent_shape']}; "
        f"{statistics.mean(r['bits']['wire_bytes'] for r in answered):.0f} wire bytes per request (protobuf); "
        f"mean firing rate {statistics.mean(r['bits']['firing_rate'] for r in answered):.3f}",
        f"channel: {sum(r['channel']['flipped_bits'] for r in answered)} bits flipped, "
        f"{sum(r['channel']['erased_bits'] for r in answered)} erased, "
        f"of {sum(r['bits']['payload_bits'] for r in answered)} sent",
        "latency ms (mean / median / max): " + ", ".join(
            f"{s} {statistics.mean(v):.1f}/{statistics.median(v):.1f}/{max(v):.1f}"
            for s in STAGES for v in [[r["latency_ms"][s] for r in answered]]
        ),
    ]
    return "\n".join(lines)


def format_progressive(results: list[tuple[str, dict]]) -> str:
    """Per image of a ``mode=progressive`` demo: steps sent, bits sent and saved, the edge's confidence per step."""
    lines = []
    sent = saved = 0
    for name, result in results:
        progress = result.get("progressive")
        if not progress:
            continue
        sent += progress["payload_bits_sent"]
        saved += progress["payload_bits_saved"]
        confidences = " ".join(f"{s['confidence']:.2f}" for s in progress["steps"])
        lines.append(f"{name}: {progress['steps_sent']}/{progress['max_steps']} steps, "
                     f"{progress['payload_bits_sent']} bits sent, {progress['payload_bits_saved']} saved "
                     f"({progress['stopped']}); confidence after each step: {confidences}")
    if lines:
        total = sent + saved
        lines.append(f"progressive (stop at confidence >= {results[0][1]['progressive']['confidence_threshold']}, "
                     f"error-free feedback): {sent} of {total} bits sent, {saved} saved "
                     f"({100 * saved / max(1, total):.0f}%)")
    return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle)
    if not (bundle / "manifest.json").is_file():
        raise FileNotFoundError(f"no model bundle at {bundle} (expected {bundle / 'manifest.json'}); "
                                f"pass --bundle DIR or export one with the training commands")
    images = folder_images(args.images) if getattr(args, "images", None) else sample_images()
    edge_port = args.edge_port or free_port()
    device_port = args.device_port or free_port()
    edge_address = f"127.0.0.1:{edge_port}"
    base_url = f"http://127.0.0.1:{device_port}"
    channel_flags = ["--channel", args.channel, "--p", str(args.p)]
    if args.seed is not None:
        channel_flags += ["--seed", str(args.seed)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    # SIGTERM (and SIGINT, even where a shell started us with it ignored) stops the children before we exit.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    with tempfile.TemporaryDirectory(prefix="sjscc-demo-") as log_dir:
        services: list[Service] = []
        try:
            print(f"starting edge on {edge_address} and device on {base_url} with bundle {bundle} ...", flush=True)
            edge = start_service("edge", ["edge", "--bundle", str(bundle), "--host", "127.0.0.1",
                                          "--port", str(edge_port)], Path(log_dir), env)
            services.append(edge)
            device = start_service("device", ["device", "--bundle", str(bundle), "--edge", edge_address,
                                              "--host", "127.0.0.1", "--port", str(device_port), *channel_flags],
                                   Path(log_dir), env)
            services.append(device)
            started = time.perf_counter()
            wait_until(lambda: edge_is_serving(edge_address), edge)
            wait_until(lambda: device_is_ready(base_url), device)
            print(f"both healthy after {time.perf_counter() - started:.1f} s; classifying {len(images)} images\n")

            params = {}
            if getattr(args, "confidence", None) is not None:
                params = {"mode": "progressive", "confidence": str(args.confidence)}
            results = [(name, classify(base_url, name, image, params)) for name, image in images]
            print(format_table(results))
            print()
            print(format_summary(results))
            if params:
                print()
                print(format_progressive(results))
            if args.serve:
                print(f"\nweb page: {base_url}/ (open it in a browser)")
                print(f"serving: POST {base_url}/v1/classify (multipart field 'image'; ?channel=&p=&seed=), "
                      f"GET {base_url}/healthz, GET {base_url}/metrics; edge gRPC on {edge_address}. Ctrl+C stops.")
                while all(s.process.poll() is None for s in services):
                    time.sleep(0.5)
                for service in services:
                    service.check_alive()
            return 0 if all("error" not in r for _, r in results) else 1
        except KeyboardInterrupt:
            return 0
        finally:
            for service in reversed(services):
                service.stop()
