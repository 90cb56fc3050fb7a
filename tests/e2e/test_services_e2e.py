"""Device and edge as real processes on loopback (``python -m sjscc.cli edge|device``), with the tiny
random-weight bundle: the HTTP contract, the bits, the channel's statistics, refusals, and an edge outage.

The processes start once for the module. The outage test stops and restarts the edge, so it runs last.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
import torch
from PIL import Image

from sjscc.common import bitstream
from sjscc.common.bundle import compute_model_id
from sjscc.proto import sjscc_pb2, sjscc_pb2_grpc
from sjscc.tools.services import Service, device_is_ready, edge_is_serving, free_port, start_service, wait_until

pytestmark = pytest.mark.slow

N_REQUESTS = 50
PAYLOAD_BITS = 4 * 2 * 8 * 8  # T * c2 * h2 * w2 of the tiny bundle
STARTUP_TIMEOUT_S = 120.0
RESPONSE_KEYS = {"label", "class_index", "top", "model_id", "bits", "channel", "latency_ms"}
LATENCY_KEYS = {"device_compute", "pack", "rpc", "edge_compute", "total"}


def tolerance(p: float, n_bits: int, sigmas: float = 4.0) -> float:
    """``sigmas`` standard deviations of the fraction of successes in ``n_bits`` Bernoulli(p) trials."""
    return sigmas * math.sqrt(p * (1 - p) / n_bits)


@dataclass
class Services:
    edge: Service
    device: Service
    mismatched_device: Service
    edge_arguments: list[str]
    edge_address: str
    url: str
    log_dir: Path
    env: dict[str, str]
    started: list[Service]  # every process to stop at the end, including an edge restarted by a test


def photo(name: str = "chelsea") -> bytes:
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(getattr(data, name)()).save(buffer, format="PNG")
    return buffer.getvalue()


def other_model(bundle_path: Path, folder: Path) -> Path:
    """The same weights under another class list: a valid bundle with a different model id."""
    shutil.copytree(bundle_path, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["classes"][0] = "aeroplane"
    manifest["model_id"] = compute_model_id(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def services(tiny_bundle, tmp_path_factory) -> Iterator[Services]:
    log_dir = tmp_path_factory.mktemp("service-logs")
    other_bundle = other_model(tiny_bundle.path, tmp_path_factory.mktemp("other") / "bundle")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SJSCC_")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    edge_address = f"127.0.0.1:{free_port()}"
    device_port = free_port()
    edge_arguments = ["edge", "--bundle", str(tiny_bundle.path), "--host", "127.0.0.1",
                      "--port", edge_address.rsplit(":", 1)[1], "--max-wait-ms", "5"]
    edge = start_service("edge", edge_arguments, log_dir, env)
    device = start_service("device", [
        "device", "--bundle", str(tiny_bundle.path), "--edge", edge_address, "--host", "127.0.0.1",
        "--port", str(device_port), "--channel", "bsc", "--p", "0.05", "--seed", "7",
        "--max-image-bytes", "2000000", "--rpc-timeout", "10",
    ], log_dir, env)
    started = [edge, device]
    try:
        wait_until(lambda: edge_is_serving(edge_address), edge, STARTUP_TIMEOUT_S)
        # Started once the edge serves, so its startup check always reaches the edge.
        mismatched = start_service("mismatched-device", [
            "device", "--bundle", str(other_bundle), "--edge", edge_address, "--port", str(free_port()),
        ], log_dir, env)
        started.append(mismatched)
        running = Services(edge, device, mismatched, edge_arguments, edge_address,
                           f"http://127.0.0.1:{device_port}", log_dir, env, started)
        wait_until(lambda: device_is_ready(running.url), device, STARTUP_TIMEOUT_S)
        yield running
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture(scope="module")
def http(services) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=services.url, timeout=30.0) as client:
        yield client


def classify(http: httpx.Client, image: bytes, **params) -> httpx.Response:
    return http.post("/v1/classify", params=params, files={"image": ("upload.png", image, "image/png")})


def test_a_real_photo_gets_a_label_with_bits_and_latency(http, tiny_bundle) -> None:
    reply = classify(http, photo("chelsea"))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) >= RESPONSE_KEYS
    assert body["label"] in tiny_bundle.classes
    assert body["class_index"] == tiny_bundle.classes.index(body["label"])
    assert body["top"][0]["label"] == body["label"]
    assert [t["prob"] for t in body["top"]] == sorted((t["prob"] for t in body["top"]), reverse=True)
    assert all({"label", "prob"} <= set(t) for t in body["top"])
    assert body["model_id"] == tiny_bundle.model_id
    bits = body["bits"]
    assert bits["payload_bits"] == PAYLOAD_BITS == math.prod([bits["timesteps"], *bits["latent_shape"]])
    assert bits["timesteps"] == 4 and bits["latent_shape"] == [2, 8, 8]
    assert bits["wire_bytes"] >= bitstream.payload_bytes([4, 2, 8, 8])
    channel = body["channel"]
    assert {"kind", "p", "flipped_bits", "erased_bits"} <= set(channel)
    assert channel["kind"] == "bsc" and channel["p"] == 0.05 and channel["erased_bits"] == 0  # deployment default
    latency = body["latency_ms"]
    assert set(latency) >= LATENCY_KEYS and all(latency[k] >= 0 for k in LATENCY_KEYS)
    assert latency["total"] >= max(latency["device_compute"], latency["rpc"])
    assert latency["rpc"] >= latency["edge_compute"] > 0


def _many(http: httpx.Client, params: dict, n: int = N_REQUESTS) -> list[dict]:
    image = photo("astronaut")
    with ThreadPoolExecutor(max_workers=4) as pool:  # concurrent, so the edge can batch
        replies = list(pool.map(lambda _: classify(http, image, **params), range(n)))
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies if r.status_code != 200][:1]
    return [r.json() for r in replies]


def test_bsc_flips_the_stated_fraction_of_payload_bits(http) -> None:
    p = 0.2
    bodies = _many(http, {"channel": "bsc", "p": p})
    payload = sum(b["bits"]["payload_bits"] for b in bodies)
    flipped = sum(b["channel"]["flipped_bits"] for b in bodies)
    assert payload == N_REQUESTS * PAYLOAD_BITS
    assert all(b["channel"]["kind"] == "bsc" and b["channel"]["erased_bits"] == 0 for b in bodies)
    # 25,600 bits: 4 sigma = 4 * sqrt(0.2 * 0.8 / 25600) = 0.010
    assert abs(flipped / payload - p) <= tolerance(p, payload), f"{flipped}/{payload} flipped"


def test_bec_erases_the_stated_fraction_and_a_coin_decides_each_erased_bit(http) -> None:
    p = 0.3
    bodies = _many(http, {"channel": "bec", "p": p})
    payload = sum(b["bits"]["payload_bits"] for b in bodies)
    erased = sum(b["channel"]["erased_bits"] for b in bodies)
    flipped = sum(b["channel"]["flipped_bits"] for b in bodies)
    assert abs(erased / payload - p) <= tolerance(p, payload), f"{erased}/{payload} erased"
    assert all(b["channel"]["flipped_bits"] <= b["channel"]["erased_bits"] for b in bodies)
    assert abs(flipped / erased - 0.5) <= tolerance(0.5, erased), f"{flipped} of {erased} erased bits read wrong"


def test_a_request_seed_reproduces_its_channel_draw(http) -> None:
    image = photo("coffee")
    first, again, other, clean = (classify(http, image, **params).json() for params in (
        {"channel": "bsc", "p": 0.3, "seed": 123}, {"channel": "bsc", "p": 0.3, "seed": 123},
        {"channel": "bsc", "p": 0.3, "seed": 124}, {"channel": "none"}))
    assert first["channel"]["flipped_bits"] == again["channel"]["flipped_bits"]
    assert first["top"] == again["top"]
    assert (other["channel"]["flipped_bits"], other["top"]) != (first["channel"]["flipped_bits"], first["top"])
    assert clean["channel"]["kind"] == "none" and clean["channel"]["flipped_bits"] == 0


def test_ge_bursts_over_rest_with_and_without_the_interleaver(http) -> None:
    """GE at p = 0.2, L = 16 over 50 requests of 512 bits: the error rate (5 sigma of a correlated mean:
    ``sqrt(p(1-p)/n (1+lambda)/(1-lambda))``, lambda = 1 - 1/L - p/(L(1-p)) ~ 0.92) and a seeded draw that the
    interleaver moves but does not change in size."""
    p, burst = 0.2, 16
    bodies = _many(http, {"channel": "ge", "p": p, "burst": burst})
    payload = sum(b["bits"]["payload_bits"] for b in bodies)
    flipped = sum(b["channel"]["flipped_bits"] for b in bodies)
    lam = 1 - 1 / burst - p / (burst * (1 - p))
    assert abs(flipped / payload - p) <= 5 * math.sqrt(p * (1 - p) / payload * (1 + lam) / (1 - lam))
    assert all(b["channel"]["kind"] == "ge" and b["channel"]["burst"] == burst for b in bodies)
    image = photo("coffee")
    plain, spread = (classify(http, image, channel="ge", p=0.3, burst=8, seed=5, **extra).json()
                     for extra in ({"interleave": "none"}, {"interleave": 77}))
    assert spread["channel"]["interleave"] == 77 and plain["channel"]["interleave"] is None
    assert spread["channel"]["flipped_bits"] == plain["channel"]["flipped_bits"] > 0  # same draw, permuted
    bad = classify(http, image, channel="ge", p=0.9, burst=2)
    assert bad.status_code == 400 and "at most L/(L+1)" in bad.json()["detail"]


@pytest.mark.parametrize(("upload", "params", "status", "words"), [
    (b"GIF89a but then garbage \x00\x01\x02", {}, 415, "not"),
    (b"", {}, 400, "empty"),
    (b"\x89PNG" + b"\x00" * 2_100_000, {}, 413, "limit"),
    (None, {}, 400, "'image' is required"),
    ("photo", {"p": "2"}, 400, "p must be in [0, 1]"),
    ("photo", {"p": "lots"}, 400, "p must be a number"),
    ("photo", {"channel": "wifi"}, 400, "unknown channel 'wifi'"),
    ("photo", {"seed": "x"}, 400, "seed must be an integer"),
])
def test_bad_input_gets_a_4xx_that_names_the_problem(http, upload, params, status, words) -> None:
    if upload is None:
        reply = http.post("/v1/classify", data={"note": "no image here"})
    else:
        reply = classify(http, photo() if upload == "photo" else upload, **params)
    assert reply.status_code == status, reply.text
    detail = reply.json()["detail"]
    assert isinstance(detail, str) and words in detail


def test_metrics_count_bits_bytes_latency_and_errors(http) -> None:
    classify(http, photo())
    text = http.get("/metrics").text
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    assert values["sjscc_device_payload_bits_total"] >= PAYLOAD_BITS
    answered = values['sjscc_device_requests_total{status="200"}']
    assert values["sjscc_device_payload_bits_total"] == PAYLOAD_BITS * answered
    assert values["sjscc_device_wire_bytes_total"] > values["sjscc_device_payload_bits_total"] / 8
    assert values['sjscc_device_flipped_bits_total{channel="bsc"}'] > 0
    for stage in ("device_compute", "pack", "rpc", "edge_compute", "total"):
        assert values[f'sjscc_device_latency_seconds_count{{stage="{stage}"}}'] >= 1
    assert any(name.startswith("sjscc_device_errors_total") for name in values)


def test_edge_refuses_malformed_and_mismatched_payloads_directly(services, tiny_bundle) -> None:
    good = dict(payload=bitstream.pack(torch.zeros(4, 2, 8, 8)), timesteps=4, latent_shape=[2, 8, 8],
                codec="snn", model_id=tiny_bundle.model_id, request_id="direct")
    with grpc.insecure_channel(services.edge_address) as channel:
        stub = sjscc_pb2_grpc.EdgeInferenceStub(channel)
        assert stub.Infer(sjscc_pb2.EncodedFeature(**good), timeout=10).model_id == tiny_bundle.model_id
        with pytest.raises(grpc.RpcError) as truncated:
            stub.Infer(sjscc_pb2.EncodedFeature(**{**good, "payload": good["payload"][:-1]}), timeout=10)
        with pytest.raises(grpc.RpcError) as mismatched:
            stub.Infer(sjscc_pb2.EncodedFeature(**{**good, "model_id": "not-this-model"}), timeout=10)
    assert truncated.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "63 bytes" in truncated.value.details()
    assert mismatched.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not-this-model" in mismatched.value.details()


def test_a_device_refuses_to_start_against_an_edge_serving_another_model(services, tiny_bundle) -> None:
    process = services.mismatched_device.process
    status = process.wait(STARTUP_TIMEOUT_S)
    log = services.mismatched_device.log_tail(60)
    assert status != 0, log
    assert "refusing" in log and tiny_bundle.model_id in log


def test_edge_outage_gives_503_and_the_device_recovers_by_itself(services, http) -> None:
    device_pid = services.device.process.pid
    services.edge.process.send_signal(signal.SIGTERM)
    assert services.edge.process.wait(30) == 0, services.edge.log_tail()  # graceful shutdown exits cleanly
    assert "edge stopped" in services.edge.log_tail()

    down = classify(http, photo())
    assert down.status_code == 503, down.text
    assert "unavailable" in down.json()["detail"]
    assert http.get("/healthz").json()["edge"]["serving"] is False

    services.edge = start_service("edge-restarted", services.edge_arguments, services.log_dir, services.env)
    services.started.append(services.edge)
    wait_until(lambda: edge_is_serving(services.edge_address), services.edge, STARTUP_TIMEOUT_S)
    deadline = time.monotonic() + 20.0
    while True:  # the gRPC channel redials on its own (backoff <= 1 s); bounded wait
        reply = classify(http, photo())
        if reply.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert reply.status_code == 200, reply.text
    assert services.device.process.poll() is None and services.device.process.pid == device_pid
