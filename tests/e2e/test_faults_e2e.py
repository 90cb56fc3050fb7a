"""Faults with real processes: an edge killed, frozen (SIGSTOP) or stopped (SIGTERM) under load, a device stopped
with requests in flight, readiness that follows the edge and its model, and bundles that are missing a file,
altered, or disagree with themselves. The tests change the processes, so they run in file order."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from reliability_support import Pair, clean_env, run_sjscc, small_png, start_pair

from sjscc.common.bundle import compute_model_id
from sjscc.device.client import EdgeClient, ExpectedModel
from sjscc.device.link import ChannelSettings
from sjscc.tools.services import edge_is_serving, start_service, wait_until

pytestmark = pytest.mark.slow

RPC_TIMEOUT_S = 3.0
DRAIN_DELAY_S = 2.0
IMAGE = small_png(7)


@pytest.fixture(scope="module")
def pair(tiny_bundle, tmp_path_factory) -> Iterator[Pair]:
    running = start_pair(tiny_bundle.path, tmp_path_factory.mktemp("fault-logs"),
                         edge_flags=["--drain-delay", str(DRAIN_DELAY_S), "--max-wait-ms", "5"],
                         device_flags=["--rpc-timeout", str(RPC_TIMEOUT_S)])  # keepalive 10 s > deadline
    yield running
    running.stop()


def classify(url: str) -> tuple[float, int, float]:
    """(start time, status, seconds) of one request on its own connection."""
    start = time.monotonic()
    try:
        status = httpx.post(f"{url}/v1/classify", files={"image": ("a.png", IMAGE, "image/png")},
                            timeout=30).status_code
    except httpx.HTTPError:
        status = -1  # a reset connection: never acceptable
    return start, status, time.monotonic() - start


class Load:
    """``workers`` threads posting back to back until stopped; every answer recorded."""

    def __init__(self, url: str, workers: int = 3) -> None:
        self.url = url
        self.results: list[tuple[float, int, float]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.results.append(classify(self.url))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        time.sleep(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def edge_health(address: str) -> int | None:
    with grpc.insecure_channel(address) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status
        except grpc.RpcError:
            return None


def test_readiness_follows_the_edge_while_liveness_stays(pair) -> None:
    assert httpx.get(f"{pair.url}/readyz", timeout=10).status_code == 200


def test_an_edge_killed_under_load_gives_503_within_a_second_and_recovery_by_itself(pair) -> None:
    with Load(pair.url) as load:
        pair.edge.process.kill()
        pair.edge.process.wait(10)
        killed = time.monotonic()
        time.sleep(0.5)
    assert {status for _, status, _ in load.results} <= {200, 503}, load.results
    after = [classify(pair.url) for _ in range(5)]
    assert all(status == 503 and seconds < 1.0 for _, status, seconds in after), after
    print(f"\nedge killed: 503 in at most {max(s for _, _, s in after):.3f} s")
    assert any(start > killed and status == 503 for start, status, _ in load.results)
    not_ready = httpx.get(f"{pair.url}/readyz", timeout=10)
    assert not_ready.status_code == 503 and not_ready.headers["retry-after"] == "1"
    assert "not ready" in not_ready.json()["detail"]
    health = httpx.get(f"{pair.url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["edge"]["serving"] is False

    pair.restart_edge("edge-after-kill")
    deadline = time.monotonic() + 20
    while classify(pair.url)[1] != 200:
        assert time.monotonic() < deadline, "the device did not recover by itself"
        time.sleep(0.2)
    print(f"edge back: first 200 {time.monotonic() - (deadline - 20):.2f} s after it served again")
    assert httpx.get(f"{pair.url}/readyz", timeout=10).status_code == 200


def test_a_frozen_edge_gives_504_at_the_deadline(pair) -> None:
    assert classify(pair.url)[1] == 200
    os.kill(pair.edge.process.pid, signal.SIGSTOP)
    try:
        _, status, seconds = classify(pair.url)
        assert status == 504
        assert RPC_TIMEOUT_S - 0.5 <= seconds <= RPC_TIMEOUT_S + 1.0, seconds
        print(f"\nfrozen edge: 504 after {seconds:.2f} s (budget {RPC_TIMEOUT_S} s)")
    finally:
        os.kill(pair.edge.process.pid, signal.SIGCONT)
    deadline = time.monotonic() + 20
    while classify(pair.url)[1] != 200:
        assert time.monotonic() < deadline, "no recovery after SIGCONT"
        time.sleep(0.2)


def test_keepalive_notices_a_frozen_edge_without_any_request(pair, tiny_bundle) -> None:
    """An idle, READY connection to an edge that stops answering leaves READY within a few keepalive periods."""
    import asyncio

    async def scenario() -> float:
        client = EdgeClient(pair.edge_address, ExpectedModel(tiny_bundle.model_id, "snn", 4, (2, 8, 8)),
                            ChannelSettings(), keepalive_s=1.0)
        await client.open()
        try:
            await client.check_model()
            channel = client._channel
            assert channel.get_state() == grpc.ChannelConnectivity.READY
            os.kill(pair.edge.process.pid, signal.SIGSTOP)
            frozen = time.monotonic()
            while channel.get_state() == grpc.ChannelConnectivity.READY:
                assert time.monotonic() - frozen < 15, "keepalive did not notice the frozen edge"
                await asyncio.sleep(0.1)
            return time.monotonic() - frozen
        finally:
            os.kill(pair.edge.process.pid, signal.SIGCONT)
            await client.close()

    noticed_after = asyncio.run(scenario())
    print(f"\nkeepalive 1 s: idle connection to a frozen edge left READY after {noticed_after:.2f} s")
    assert noticed_after < 15
    wait_until(lambda: edge_is_serving(pair.edge_address), pair.edge, 30)


def test_an_edge_stopped_under_load_goes_not_serving_first_and_finishes_what_it_has(pair) -> None:
    with Load(pair.url) as load:
        pair.edge.process.send_signal(signal.SIGTERM)
        terminated = time.monotonic()
        seen = None
        while time.monotonic() - terminated < DRAIN_DELAY_S - 0.3 and seen is None:
            if edge_health(pair.edge_address) == health_pb2.HealthCheckResponse.NOT_SERVING:
                seen = time.monotonic() - terminated
        assert seen is not None, "the edge never reported NOT_SERVING while draining"
        assert pair.edge.process.wait(30) == 0, pair.edge.log_tail()
    before = [status for start, status, _ in load.results if start < terminated]
    assert before and all(status == 200 for status in before), before  # everything sent before SIGTERM answered
    assert {status for _, status, _ in load.results} <= {200, 503}
    print(f"\nedge SIGTERM: NOT_SERVING seen {seen:.2f} s after the signal; {len(before)} requests sent before it "
          f"all 200; statuses overall {sorted({s for _, s, _ in load.results})}")
    pair.restart_edge("edge-after-term")


def test_readiness_is_503_when_the_edge_serves_another_model(pair, tmp_path) -> None:
    other = tmp_path / "other"
    shutil.copytree(pair.bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["classes"][0] = "aeroplane"
    manifest["model_id"] = compute_model_id(manifest)
    (other / "manifest.json").write_text(json.dumps(manifest))
    pair.edge.stop()
    arguments = list(pair.edge_arguments)
    arguments[arguments.index("--bundle") + 1] = str(other)
    impostor = start_service("edge-other-model", arguments, pair.log_dir, clean_env())
    pair.started.append(impostor)
    try:
        wait_until(lambda: edge_is_serving(pair.edge_address), impostor, 120)
        ready = httpx.get(f"{pair.url}/readyz", timeout=10)
        assert ready.status_code == 503 and manifest["model_id"] in ready.json()["detail"]
        assert httpx.get(f"{pair.url}/healthz", timeout=10).status_code == 200
        assert classify(pair.url)[1] == 502
    finally:
        impostor.stop()
    pair.restart_edge("edge-right-model")
    deadline = time.monotonic() + 20
    while httpx.get(f"{pair.url}/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_device_stopped_with_requests_in_flight_finishes_them(pair) -> None:
    from io import BytesIO

    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 255, 3000 * 3000, dtype=np.float32).reshape(3000, 3000).astype(np.uint8)
    buffer = BytesIO()
    Image.fromarray(ramp).convert("RGB").save(buffer, format="PNG")  # decodes slowly, uploads fast
    slow = buffer.getvalue()

    def post() -> int:
        try:
            return httpx.post(f"{pair.url}/v1/classify", files={"image": ("big.png", slow, "image/png")},
                              timeout=60).status_code
        except httpx.HTTPError:
            return -1

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(post) for _ in range(4)]
        time.sleep(0.3)
        pair.device.process.send_signal(signal.SIGTERM)
        statuses = [future.result() for future in futures]
    assert statuses == [200] * 4, statuses
    # uvicorn re-raises the signal once it has shut down cleanly, so the status is -SIGTERM rather than 0.
    assert pair.device.process.wait(30) in (0, -signal.SIGTERM), pair.device.log_tail()
    assert "Application shutdown complete" in pair.device.log_tail()


@pytest.mark.parametrize(("command", "damage", "words"), [
    ("edge", lambda folder: (folder / "edge.safetensors").unlink(), "is missing edge.safetensors"),
    ("device", lambda folder: (folder / "device.safetensors").write_bytes(b"\x00" * 64),
     "device.safetensors was altered"),
    ("edge", lambda folder: (folder / "manifest.json").write_text(
        (folder / "manifest.json").read_text().replace('"airplane"', '"plane"')), "manifest.json was altered"),
])
def test_a_missing_or_altered_bundle_file_stops_the_process_naming_it(tiny_bundle, tmp_path, command, damage,
                                                                       words) -> None:
    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.path, folder)
    damage(folder)
    result = run_sjscc(command, "--bundle", str(folder), "--port", "0")
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and str(folder) in result.stderr


def test_a_bundle_whose_manifest_disagrees_with_its_weights_is_refused_at_load(tiny_bundle, tmp_path) -> None:
    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.path, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["spec"]["codec_config"]["c1"] = 16  # the weights were trained with c1 = 8
    manifest["model_id"] = compute_model_id(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = run_sjscc("edge", "--bundle", str(folder), "--port", "0")
    assert result.returncode == 2, result.stderr
    assert "does not fit the manifest" in result.stderr or "does not match the manifest" in result.stderr


