"""Helpers shared by the reliability tests: real edge/device processes on loopback, resident memory, photos."""

from __future__ import annotations

import contextlib
import io
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from sjscc.tools.services import Service, edge_is_serving, free_port, start_service, wait_until

STARTUP_TIMEOUT_S = 120.0


def small_png(seed: int = 0, size: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SJSCC_")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **extra)
    return env


@dataclass
class Pair:
    """An edge and a device process; ``restart_edge`` brings the edge back on the same port."""

    bundle: Path
    log_dir: Path
    edge_arguments: list[str]
    edge_address: str
    url: str
    edge: Service
    device: Service
    started: list[Service] = field(default_factory=list)

    def restart_edge(self, name: str = "edge-again") -> Service:
        self.edge = start_service(name, self.edge_arguments, self.log_dir, clean_env())
        self.started.append(self.edge)
        wait_until(lambda: edge_is_serving(self.edge_address), self.edge, STARTUP_TIMEOUT_S)
        return self.edge

    def stop(self) -> None:
        for service in reversed(self.started):
            if service.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(service.process.pid, signal.SIGCONT)  # in case a test left it stopped
            service.stop()


def device_answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_pair(bundle: Path, log_dir: Path, edge_flags: list[str] = (), device_flags: list[str] = (),
               device_env: dict[str, str] | None = None) -> Pair:
    edge_address = f"127.0.0.1:{free_port()}"
    edge_arguments = ["edge", "--bundle", str(bundle), "--host", "127.0.0.1", "--port",
                      edge_address.rsplit(":", 1)[1], *edge_flags]
    edge = start_service("edge", edge_arguments, log_dir, clean_env())
    port = free_port()
    device = start_service("device", ["device", "--bundle", str(bundle), "--edge", edge_address, "--host",
                                      "127.0.0.1", "--port", str(port), *device_flags], log_dir,
                           clean_env(**(device_env or {})))
    pair = Pair(bundle, log_dir, edge_arguments, edge_address, f"http://127.0.0.1:{port}", edge, device,
                [edge, device])
    try:
        wait_until(lambda: edge_is_serving(edge_address), edge, STARTUP_TIMEOUT_S)
        wait_until(lambda: device_answers(pair.url), device, STARTUP_TIMEOUT_S)
    except BaseException:
        pair.stop()
        raise
    return pair


def run_sjscc(*argv: str, env: dict[str, str] | None = None, timeout_s: float = 180.0):
    """``python -m sjscc.cli ARGV`` to completion (for commands expected to refuse and exit)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "sjscc.cli", *argv], capture_output=True, text=True,
                          env=clean_env(**(env or {})), timeout=timeout_s)
