"""Progressive transmission: the pipelines' step functions without a server, then device and edge as real
processes on loopback (the InferProgressive stream and REST ``mode=progressive``), on random-weight bundles."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
import torch
from conftest import tiny_spec
from PIL import Image

from sjscc.common import bitstream
from sjscc.common.bundle import save_bundle
from sjscc.common.model import build_split_model
from sjscc.device.pipeline import DevicePipeline, split_steps
from sjscc.edge.pipeline import (
    EdgePipeline,
    EncodedStepRequest,
    ModelMismatchError,
    RequestError,
    decode_step,
    predict_prefixes,
)
from sjscc.proto import sjscc_pb2, sjscc_pb2_grpc
from sjscc.tools.services import Service, device_is_ready, edge_is_serving, free_port, start_service, wait_until

STEP_BITS = 2 * 8 * 8  # c2 * h2 * w2 of the tiny geometry
STARTUP_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def progressive_bundle(tmp_path_factory: pytest.TempPathFactory):
    """A progressive bundle with random weights: exercises the transport, claims no accuracy."""
    torch.manual_seed(5)
    spec = tiny_spec("snn-progressive")
    return save_bundle(build_split_model(spec).eval(), spec, tmp_path_factory.mktemp("pt") / "progressive",
                       [f"class{i}" for i in range(10)], {"kind": "bsc", "p": 0.1}, {"note": "random weights"})


def picture(seed: int = 0) -> bytes:
    generator = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(40, 48, 3, generator=generator) * 255).to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def step_request(edge: EdgePipeline, payload: bytes, step: int, **changes) -> EncodedStepRequest:
    fields = dict(payload=payload, step=step, timesteps=edge.timesteps, latent_shape=edge.latent_shape,
                  codec=edge.codec, model_id=edge.model_id, request_id="r1")
    fields.update(changes)
    return EncodedStepRequest(**fields)


# --- pipelines, no server ----------------------------------------------------------------------------------

def test_steps_decode_to_the_models_prefix_prediction(progressive_bundle) -> None:
    device, edge = DevicePipeline(progressive_bundle), EdgePipeline(progressive_bundle, erasure_seed=0)
    encoded = device.encode_image(picture())
    steps = split_steps(encoded)
    assert len(steps) == 4 and all(len(s) == STEP_BITS // 8 for s in steps)
    bits = bitstream.unpack(encoded.payload, encoded.payload_shape)
    assert torch.equal(torch.stack([bitstream.unpack(s, edge.latent_shape) for s in steps]), bits)
    model = progressive_bundle.build()
    session = None
    for t, payload in enumerate(steps, start=1):
        session, decoded = decode_step(edge, session, step_request(edge, payload, t))
        assert decoded.bits.shape == (t, 2, 8, 8)
        (prediction,) = predict_prefixes(edge, [decoded])
        with torch.no_grad():
            expected = torch.softmax(model.tail(model.codec.decoder(bits[:t].unsqueeze(0))), 1)[0]
        assert prediction.top[0].class_index == int(expected.argmax())
        assert prediction.top[0].prob == pytest.approx(float(expected.max()), abs=1e-5)
    with pytest.raises(RequestError, match="step 5 after the last one: the model has 4 steps"):
        decode_step(edge, session, step_request(edge, steps[0], 5))


def test_mixed_prefix_lengths_batch_like_alone(progressive_bundle) -> None:
    device, edge = DevicePipeline(progressive_bundle), EdgePipeline(progressive_bundle)
    decoded = []
    for seed, length in ((0, 1), (1, 3), (2, 1), (3, 4)):
        session = None
        for t, payload in enumerate(split_steps(device.encode_image(picture(seed)))[:length], start=1):
            session, item = decode_step(edge, session, step_request(edge, payload, t, request_id=f"r{seed}"))
        decoded.append(item)
    together = predict_prefixes(edge, decoded)
    assert [p.request_id for p in together] == ["r0", "r1", "r2", "r3"] and all(p.batch_size == 4 for p in together)
    for item, batched in zip(decoded, together, strict=True):
        (alone,) = predict_prefixes(edge, [item])
        assert [s.class_index for s in alone.top] == [s.class_index for s in batched.top]
        assert alone.top[0].prob == pytest.approx(batched.top[0].prob, abs=1e-5)


def test_bad_steps_are_refused_with_the_reason(progressive_bundle, tiny_bundle) -> None:
    edge = EdgePipeline(progressive_bundle)
    good = bytes(STEP_BITS // 8)
    cases = [
        (dict(model_id="other"), ModelMismatchError, "this edge serves"),
        (dict(codec="snn"), ModelMismatchError, "codec 'snn'"),
        (dict(latent_shape=(2, 8, 4)), RequestError, "latent_shape"),
        (dict(model_id=""), RequestError, "model_id is required"),
        (dict(erasure_mask=b"\x00"), RequestError, "erasure_mask"),
    ]
    with pytest.raises(RequestError, match="step 1 payload"):
        decode_step(edge, None, step_request(edge, good[:-1], 1))
    with pytest.raises(RequestError, match="step 2 out of order: this stream expects step 1"):
        decode_step(edge, None, step_request(edge, good, 2))
    for changes, error, words in cases:
        with pytest.raises(error, match=words):
            decode_step(edge, None, step_request(edge, good, 1, **changes))
    session, _ = decode_step(edge, None, step_request(edge, good, 1))
    with pytest.raises(RequestError, match="request_id changed"):
        decode_step(edge, session, step_request(edge, good, 2, request_id="r2"))
    fixed = EdgePipeline(tiny_bundle)
    with pytest.raises(ModelMismatchError, match="fixed-T codec 'snn'"):
        decode_step(fixed, None, step_request(fixed, good, 1))


# --- real processes ----------------------------------------------------------------------------------------

@dataclass
class Running:
    url: str
    fixed_url: str
    edge_address: str
    fixed_edge_address: str
    services: list[Service]


@pytest.fixture(scope="module")
def running(progressive_bundle, tiny_bundle, tmp_path_factory) -> Iterator[Running]:
    """An edge and a device for the progressive bundle, and an edge and a device for a fixed-T one."""
    logs = tmp_path_factory.mktemp("progressive-logs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SJSCC_")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    started: list[Service] = []
    addresses, urls = [], []
    try:
        for name, bundle in (("progressive", progressive_bundle), ("fixed", tiny_bundle)):
            edge_port, device_port = free_port(), free_port()
            started.append(start_service(f"{name}-edge", [
                "edge", "--bundle", str(bundle.path), "--host", "127.0.0.1", "--port", str(edge_port),
                "--max-wait-ms", "5"], logs, env))
            addresses.append(f"127.0.0.1:{edge_port}")
            wait_until(lambda a=addresses[-1]: edge_is_serving(a), started[-1], STARTUP_TIMEOUT_S)
            started.append(start_service(f"{name}-device", [
                "device", "--bundle", str(bundle.path), "--edge", addresses[-1], "--host", "127.0.0.1",
                "--port", str(device_port), "--channel", "none", "--rpc-timeout", "20"], logs, env))
            urls.append(f"http://127.0.0.1:{device_port}")
            wait_until(lambda u=urls[-1]: device_is_ready(u), started[-1], STARTUP_TIMEOUT_S)
        yield Running(urls[0], urls[1], addresses[0], addresses[1], started)
    finally:
        for service in reversed(started):
            service.stop()


def classify(url: str, image: bytes, **params) -> httpx.Response:
    return httpx.post(f"{url}/v1/classify", params=params, files={"image": ("x.png", image, "image/png")},
                      timeout=60.0)


@pytest.mark.slow
def test_rest_progressive_stops_at_the_threshold(running: Running) -> None:
    image = picture(1)
    # a threshold every answer meets: one step; one no softmax of 10 classes reaches: all four
    first = classify(running.url, image, mode="progressive", confidence="0.000001")
    assert first.status_code == 200, first.text
    body = first.json()
    progressive = body["progressive"]
    assert progressive["steps_sent"] == 1 and progressive["stopped"] == "confident"
    assert body["bits"]["payload_bits"] == STEP_BITS == progressive["payload_bits_sent"]
    assert progressive["payload_bits_saved"] == 3 * STEP_BITS and body["bits"]["timesteps"] == 1
    assert progressive["feedback"] == "error-free"
    everything = classify(running.url, image, mode="progressive", confidence="1").json()["progressive"]
    assert everything["steps_sent"] == 4 and everything["stopped"] == "all_steps"
    assert [s["step"] for s in everything["steps"]] == [1, 2, 3, 4]
    assert everything["payload_bits_sent"] == 4 * STEP_BITS and everything["payload_bits_saved"] == 0
    # the stop rule on the reported confidences: stop at the first step at or above the threshold
    middle = sorted(s["confidence"] for s in everything["steps"])[1]
    chosen = classify(running.url, image, mode="progressive", confidence=str(middle)).json()["progressive"]
    expected = next(s["step"] for s in everything["steps"] if s["confidence"] >= chosen["confidence_threshold"])
    assert chosen["steps_sent"] == expected
    # the answer after T steps is the fixed mode's answer
    fixed = classify(running.url, image).json()
    assert everything["steps"][-1]["label"] == fixed["label"]
    assert everything["steps"][-1]["confidence"] == pytest.approx(fixed["top"][0]["prob"], abs=1e-5)


@pytest.mark.slow
def test_rest_progressive_channel_is_per_step_seeded_and_counted(running: Running) -> None:
    image = picture(2)
    params = dict(mode="progressive", confidence="1", channel="bsc", p="0.3", seed="11")
    one, two = (classify(running.url, image, **params).json() for _ in range(2))
    steps = one["progressive"]["steps"]
    assert one["channel"]["flipped_bits"] == sum(s["flipped_bits"] for s in steps)
    assert 0.3 * 4 * STEP_BITS * 0.5 < one["channel"]["flipped_bits"] < 0.3 * 4 * STEP_BITS * 1.5
    assert [s["flipped_bits"] for s in steps] == [s["flipped_bits"] for s in two["progressive"]["steps"]]
    assert one["top"] == two["top"]


@pytest.mark.slow
def test_rest_progressive_refusals(running: Running) -> None:
    image = picture(3)
    fixed = classify(running.fixed_url, image, mode="progressive", confidence="0.9")
    assert fixed.status_code == 400 and "needs a progressive bundle" in fixed.json()["detail"]
    for params, words in ((dict(mode="progressive", confidence="1.5"), "(0, 1]"),
                          (dict(mode="progressive", confidence="high"), "number"),
                          (dict(mode="streaming"), "unknown mode"),
                          (dict(confidence="0.9"), "mode=progressive only")):
        answer = classify(running.url, image, **params)
        assert answer.status_code == 400 and words in answer.json()["detail"], (params, answer.text)


@pytest.mark.slow
def test_grpc_stream_refuses_bad_steps(running: Running, progressive_bundle, tiny_bundle) -> None:
    """Straight to the edges: a step out of order, and a progressive stream sent to a fixed-T edge."""

    def first_error(address: str, bundle, messages: list[sjscc_pb2.EncodedStep]) -> grpc.RpcError:
        with grpc.insecure_channel(address) as channel:
            stub = sjscc_pb2_grpc.EdgeInferenceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                list(stub.InferProgressive(iter(messages), timeout=20))
        return caught.value

    def step(bundle, number: int) -> sjscc_pb2.EncodedStep:
        return sjscc_pb2.EncodedStep(payload=bytes(STEP_BITS // 8), step=number, timesteps=bundle.timesteps,
                                     latent_shape=bundle.latent_shape, codec=bundle.manifest["codec"],
                                     model_id=bundle.model_id, request_id="g")

    error = first_error(running.edge_address, progressive_bundle, [step(progressive_bundle, 1),
                                                                    step(progressive_bundle, 3)])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "expects step 2" in error.details()
    error = first_error(running.fixed_edge_address, tiny_bundle, [step(tiny_bundle, 1)])
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "fixed-T codec" in error.details()
    # five steps of a four-step model
    error = first_error(running.edge_address, progressive_bundle, [step(progressive_bundle, t) for t in range(1, 6)])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "has 4" in error.details()


@pytest.mark.slow
def test_demo_shows_the_bits_each_image_saved(progressive_bundle) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SJSCC_")}
    result = subprocess.run([sys.executable, "-m", "sjscc.cli", "demo", "--bundle", str(progressive_bundle.path),
                             "--confidence", "0.000001"], capture_output=True, text=True, timeout=240, env=env,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    saved_lines = [line for line in result.stdout.splitlines() if "steps, " in line and " saved " in line]
    assert len(saved_lines) == 5 and all(f"1/4 steps, {STEP_BITS} bits sent" in line for line in saved_lines)
    assert f"{5 * STEP_BITS} of {20 * STEP_BITS} bits sent, {15 * STEP_BITS} saved (75%)" in result.stdout
