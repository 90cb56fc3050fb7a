"""Serving over a radio link: REST query -> interceptor (Sionna link) -> edge (bits or soft LLR levels) -> answer
with the link's fields; wire_bytes counts the soft levels; impossible settings are 400s that say why."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import threading

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from sjscc.common import bitstream
from sjscc.common.channels import LinkSettings, apply_to_payload, build_channel
from sjscc.common.channels.radio import closed_form_ber
from sjscc.device.app import create_app
from sjscc.device.client import EdgeClient, ExpectedModel
from sjscc.device.link import ChannelCall, ChannelInterceptor, ChannelSettings, settings_for_request
from sjscc.device.pipeline import DevicePipeline
from sjscc.edge.pipeline import EdgePipeline
from sjscc.edge.server import serve
from sjscc.proto import sjscc_pb2

SHAPE = (4, 2, 8, 8)  # the tiny bundle's payload: 512 bits


def feature(seed: int = 0) -> sjscc_pb2.EncodedFeature:
    bits = (torch.rand(SHAPE, generator=torch.Generator().manual_seed(seed)) < 0.4).float()
    return sjscc_pb2.EncodedFeature(payload=bitstream.pack(bits), timesteps=SHAPE[0], latent_shape=list(SHAPE[1:]),
                                    codec="snn", model_id="m", request_id="r", top_k=3)


def test_interceptor_sends_soft_levels_and_reports_the_link() -> None:
    sent = feature()
    settings = ChannelSettings("rayleigh", snr_db=3.0, modulation="qpsk", coherence="step", decisions="soft")
    received, report = ChannelInterceptor(settings).transmit(sent, ChannelCall(seed=11))
    expected = apply_to_payload(settings.build(), sent.payload, SHAPE, 0.0, torch.Generator().manual_seed(11))
    assert received.soft_bits == 4 and received.payload == expected.payload and len(received.payload) == 256
    assert report.flipped_bits == expected.flipped_bits and report.wire_bytes == received.ByteSize() > 256
    assert report.link == {"snr_db": 3.0, "modulation": "qpsk", "coherence": "step", "decisions": "soft",
                           "symbols": 256, "soft_bits": 4}
    assert report.p == pytest.approx(closed_form_ber("rayleigh", LinkSettings(3.0, "qpsk")))
    hard, hard_report = ChannelInterceptor(settings).transmit(
        sent, ChannelCall(settings_for_request(settings, decisions="hard"), seed=11))
    assert hard.soft_bits == 0 and len(hard.payload) == 64 and hard_report.flipped_bits == report.flipped_bits


def test_request_overrides_parse_the_link_and_refuse_impossible_settings() -> None:
    defaults = ChannelSettings()
    settings = settings_for_request(defaults, "awgn", snr_db="-1.5", modulation="16QAM", decisions="soft",
                                    soft_bits="8")
    assert (settings.kind, settings.snr_db, settings.modulation, settings.decisions, settings.soft_bits) == (
        "awgn", -1.5, "16qam", "soft", 8)
    assert settings_for_request(defaults, "rayleigh", coherence="64").coherence == 64
    for kwargs, message in (({"snr_db": "loud"}, "snr_db"), ({"snr_db": "99"}, r"\[-30, 60\]"),
                            ({"modulation": "8psk"}, "unknown modulation"), ({"coherence": "0"}, "coherence"),
                            ({"decisions": "maybe"}, "decisions"), ({"soft_bits": "1"}, "soft_bits")):
        with pytest.raises(ValueError, match=message):
            settings_for_request(defaults, "rayleigh", **kwargs)
    with pytest.raises(ValueError, match="interleaving"):
        settings_for_request(ChannelSettings(interleave=3), "awgn")
    assert settings_for_request(ChannelSettings(interleave=3), "awgn", interleave="none").interleave is None


@pytest.fixture(scope="module")
def served(tiny_bundle):
    """A real edge (grpc.aio in a thread) and the device app in front of it."""
    port: concurrent.futures.Future[int] = concurrent.futures.Future()
    holder: dict = {}
    edge = EdgePipeline(tiny_bundle, device="cpu", erasure_seed=0)  # built here: model building is not thread-safe
    pipeline = DevicePipeline(tiny_bundle)

    async def main() -> None:
        holder["loop"], holder["stop"] = asyncio.get_running_loop(), asyncio.Event()
        holder["loop"].add_signal_handler = lambda *args: None  # signals belong to the main thread; stop ends it
        await serve(edge, "127.0.0.1", 0, on_ready=port.set_result, stop=holder["stop"], grace_s=1.0)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    expected = ExpectedModel(pipeline.model_id, pipeline.codec, pipeline.timesteps, pipeline.latent_shape)
    client = EdgeClient(f"127.0.0.1:{port.result(timeout=60)}", expected, ChannelSettings(), rpc_timeout_s=20.0)
    with TestClient(create_app(pipeline, client)) as app:
        yield app
    holder["loop"].call_soon_threadsafe(holder["stop"].set)
    thread.join(timeout=10)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def _classify(app: TestClient, query: str):
    return app.post(f"/v1/classify?{query}", files={"image": ("x.png", _png(), "image/png")})


def test_rest_classifies_over_qpsk_block_rayleigh_with_soft_decisions(served) -> None:
    query = "channel=rayleigh&snr_db=3&modulation=qpsk&coherence=packet&decisions=soft&seed=7"
    answer = _classify(served, query)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    channel = body["channel"]
    assert {k: channel[k] for k in ("kind", "snr_db", "modulation", "coherence", "decisions", "symbols",
                                    "soft_bits")} == {"kind": "rayleigh", "snr_db": 3.0, "modulation": "qpsk",
                                                      "coherence": "packet", "decisions": "soft", "symbols": 256,
                                                      "soft_bits": 4}
    assert channel["flipped_bits"] >= 0 and channel["p"] == pytest.approx(
        closed_form_ber("rayleigh", LinkSettings(3.0, "qpsk")))
    assert body["bits"]["payload_bits"] == 512 and body["bits"]["wire_bytes"] > 256  # 4-bit levels: 256 bytes
    again = _classify(served, query).json()
    assert again["top"] == body["top"] and again["channel"]["flipped_bits"] == channel["flipped_bits"]
    hard = _classify(served, query.replace("soft", "hard")).json()
    assert hard["bits"]["wire_bytes"] < 100 and hard["channel"]["flipped_bits"] == channel["flipped_bits"]
    assert hard["channel"]["soft_bits"] is None


def test_rest_reports_hard_decision_errors_like_the_link(served, tiny_bundle) -> None:
    body = _classify(served, "channel=awgn&snr_db=0&modulation=bpsk&seed=3&include=bits").json()
    assert body["channel"]["symbols"] == 512 and body["channel"]["decisions"] == "hard"
    sent = bitstream.unpack(__import__("base64").b64decode(body["bits"]["sent"]), SHAPE)
    link = build_channel("awgn", link=LinkSettings(0.0, "bpsk"))
    out = link.transmit(sent.unsqueeze(0), generator=torch.Generator().manual_seed(3))
    assert body["channel"]["flipped_bits"] == int(out.flipped.sum()) > 0


@pytest.mark.parametrize("query,message", [
    ("channel=awgn&snr_db=loud", "snr_db"),
    ("channel=rayleigh&coherence=0", "coherence"),
    ("channel=awgn&modulation=8psk", "unknown modulation"),
    ("channel=awgn&decisions=maybe", "decisions"),
    ("channel=awgn&snr_db=1e9", r"\[-30, 60\]"),
    ("channel=awgn&on_failure=erase", "on_failure applies to bundles with a channel code"),
])
def test_impossible_link_settings_are_400s(served, query: str, message: str) -> None:
    import re

    answer = _classify(served, query)
    assert answer.status_code == 400 and re.search(message, answer.json()["detail"]), answer.text
