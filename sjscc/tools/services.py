"""The process harness of the demo, the bench and the end-to-end tests: free ports, ``sjscc`` subcommands started
as child processes with their output in a log file, readiness polls, and a graceful stop (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_TIMEOUT_S = 180.0


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


def start_service(name: str, arguments: list[str], log_dir: Path, env: dict[str, str] | None = None,
                  cwd: str | Path | None = None) -> Service:
    """Run ``python -m sjscc.cli <arguments>`` with this interpreter (in ``cwd``, so that tree's sjscc can win)."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "sjscc.cli", *arguments], stdout=log,
                                   stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
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
