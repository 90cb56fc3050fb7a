"""``sjscc demo``: the whole system on one machine, as a user would run it.

Starts ``sjscc edge`` and ``sjscc device`` as two processes on free loopback ports, waits until both are
healthy, sends a handful of real photos through ``POST /v1/classify`` (the ones shipped with scikit-image,
or ``--images DIR``), prints what came back (label, confidence, bits, wire bytes, latency per stage) and a
summary, then stops both. ``--serve`` keeps them running until Ctrl+C.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_TIMEOUT_S = 180.0
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
MAX_DEMO_IMAGES = 50
STAGES = ("device_compute", "pack", "channel", "rpc", "edge_compute", "total")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class Service:
    """A child process running one ``sjscc`` subcommand, its output going to a log file."""

    name: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with status {self.process.returncode}:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (graceful shutdown), then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)


def start_service(name: str, arguments: list[str], log_dir: Path, env: dict[str, str] | None = None) -> Service:
    """Run ``python -m sjscc.cli <arguments>`` with this interpreter."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "sjscc.cli", *arguments], stdout=log,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return Service(name, process, log_path)


def wait_until(ready: Callable[[], bool], service: Service, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    """Poll ``ready`` until it is true; fail early with the log when the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        service.check_alive()
        if ready():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{service.name} was not ready after {timeout_s:.0f} s:\n{service.log_tail()}")


def edge_is_serving(address: str) -> bool:
    from sjscc.edge.healthcheck import is_serving

    return is_serving(address, timeout_s=1.0)


def device_is_ready(base_url: str) -> bool:
    try:
        reply = httpx.get(f"{base_url}/healthz", timeout=2.0)
    except httpx.HTTPError:
        return False
    return reply.status_code == 200 and reply.json().get("edge", {}).get("serving") is True


def _png(array) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def sample_images() -> list[tuple[str, bytes]]:
    """Real photos that ship inside scikit-image (no download), PNG-encoded as a user would upload them."""
    from skimage import data

    return [
        ("chelsea (a cat)", _png(data.chelsea())),
        ("astronaut", _png(data.astronaut())),
        ("coffee", _png(data.coffee())),
        ("rocket", _png(data.rocket())),
        ("motorcycle", _png(data.stereo_motorcycle()[0])),
    ]


def folder_images(folder: str | Path) -> list[tuple[str, bytes]]:
    """Every picture file in ``folder`` (sorted, at most 50); the device decides what is readable."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"--images {root}: no such folder")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"--images {root}: no picture files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [(p.name, p.read_bytes()) for p in files[:MAX_DEMO_IMAGES]]


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
