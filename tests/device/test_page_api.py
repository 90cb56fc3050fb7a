"""What the web page reads from the device, without a browser: ``?include=bits`` (the bits as sent and as
received, the erased positions) and ``GET /v1/model`` (identity, wire format, the bundle's accuracy against p),
the page and its files served by the app, and both declared in the OpenAPI document."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from sjscc.common import bitstream
from sjscc.common.bundle import load_bundle
from sjscc.common.channels import apply_to_payload, build_channel
from sjscc.device.answers import parse_include, transmitted_bits
from sjscc.device.app import create_app
from sjscc.device.client import EdgeClient, ExpectedModel
from sjscc.device.link import ChannelCall, ChannelInterceptor, ChannelReport, ChannelSettings
from sjscc.device.model_card import ModelCard, accuracy_curves, model_card
from sjscc.device.pipeline import DevicePipeline
from sjscc.proto import sjscc_pb2
from sjscc.tools.services import free_port

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (4, 2, 8, 8)


def spikes(seed: int = 3) -> torch.Tensor:
    return (torch.rand(SHAPE, generator=torch.Generator().manual_seed(seed)) < 0.4).float()


def feature(bits: torch.Tensor) -> sjscc_pb2.EncodedFeature:
    return sjscc_pb2.EncodedFeature(payload=bitstream.pack(bits), timesteps=SHAPE[0], latent_shape=list(SHAPE[1:]),
                                    codec="snn", model_id="m", request_id="r", top_k=3)


def unpacked(encoded: str) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(encoded), dtype=np.uint8))


# ---- include=bits ------------------------------------------------------------------------------------------

def test_include_accepts_bits_and_names_anything_else() -> None:
    assert parse_include(None) == frozenset()
    assert parse_include("bits") == parse_include(" BITS, bits ,") == frozenset({"bits"})
    with pytest.raises(ValueError, match=r"unknown include 'bitz', 'x'; use one of bits"):
        parse_include("bitz,bits,x")


def test_transmitted_bits_are_base64_of_the_packed_payloads() -> None:
    report = ChannelReport("bec", 0.5, 1, 8, 2, 3, 10, 0.1, sent_payload=b"\xf0", received_payload=b"\xb1",
                           erased_positions=b"\x43")
    assert transmitted_bits(report) == {"sent": "8A==", "received": "sQ==", "erased": "Qw==",
                                        "bit_order": transmitted_bits(report)["bit_order"]}
    nothing_erased = dataclasses.replace(report, erased_bits=0)
    assert transmitted_bits(nothing_erased)["erased"] is None
    with pytest.raises(RuntimeError, match="did not keep"):
        transmitted_bits(dataclasses.replace(report, sent_payload=None))


def test_keeping_the_erased_positions_does_not_change_the_draw() -> None:
    payload = bitstream.pack(spikes())
    channel = build_channel("bec")
    plain = apply_to_payload(channel, payload, SHAPE, 0.3, torch.Generator().manual_seed(9))
    kept = apply_to_payload(channel, payload, SHAPE, 0.3, torch.Generator().manual_seed(9),
                            keep_erased_positions=True)
    assert kept.payload == plain.payload and plain.erased_positions is None
    erased = np.unpackbits(np.frombuffer(kept.erased_positions, dtype=np.uint8))
    assert int(erased.sum()) == kept.erased_bits > 0
    sent = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))
    received = np.unpackbits(np.frombuffer(kept.payload, dtype=np.uint8))
    assert not (sent != received)[erased == 0].any()  # only erased bits can arrive wrong


def test_the_interceptor_keeps_the_bits_only_when_asked() -> None:
    sent = feature(spikes())
    interceptor = ChannelInterceptor(ChannelSettings("bsc", 1.0))
    _, plain = interceptor.transmit(sent, ChannelCall())
    assert plain.sent_payload is plain.received_payload is plain.erased_positions is None
    received, kept = interceptor.transmit(sent, ChannelCall(keep_bits=True))
    assert kept.sent_payload == sent.payload and kept.received_payload == received.payload
    assert bytes(b ^ 0xFF for b in sent.payload) == received.payload  # p = 1 inverts all 512 bits
    view = transmitted_bits(kept)
    assert int((unpacked(view["sent"]) != unpacked(view["received"])).sum()) == kept.flipped_bits == 512
    assert view["erased"] is None


# ---- GET /v1/model -----------------------------------------------------------------------------------------

def eval_report(model_id: str, channel: str, rows: list[tuple[float, float]]) -> dict:
    return {"bundle": model_id, "dataset": "cifar10", "split": "val", "n_images": 100, "clean_accuracy": rows[0][1],
            "results": [{"channel": channel, "p": p, "accuracy_mean": a, "accuracy_std": 0.01, "repeats": 2}
                        for p, a in rows]}


def test_curves_come_from_this_models_reports_only(tiny_bundle, tmp_path) -> None:
    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.path, folder)
    results = folder / "results"
    results.mkdir()
    model_id = tiny_bundle.model_id
    (results / "bsc.json").write_text(json.dumps(eval_report(model_id, "bsc", [(0.2, 0.5), (0.0, 0.7), (0.1, 0.6)])))
    (results / "other.json").write_text(json.dumps(eval_report("another-model", "bec", [(0.0, 0.9)])))
    (results / "broken.json").write_text("{not json")
    (results / "list.json").write_text("[1, 2]")
    bundle = load_bundle(folder)
    curves = accuracy_curves(bundle)
    assert [(c["channel"], c["source"]) for c in curves] == [("bsc", "results/bsc.json")]
    assert [(point["p"], point["accuracy_mean"]) for point in curves[0]["points"]] == [(0.0, 0.7), (0.1, 0.6),
                                                                                      (0.2, 0.5)]

    manifest = {**bundle.manifest, "metrics": {"clean_accuracy": 0.7, "results": [
        {"channel": "bec", "p": 0.0, "accuracy_mean": 0.7},
        {"channel": "bec", "p": 0.0, "confidence": 0.9, "accuracy_mean": 0.8},  # another experiment: skipped
        {"channel": "bec", "p": "high", "accuracy_mean": 0.1},  # malformed: skipped
    ]}}
    card = model_card(dataclasses.replace(bundle, manifest=manifest))
    assert [(c["channel"], c["source"], len(c["points"])) for c in card["accuracy_curves"]] == [
        ("bec", "manifest.json metrics", 1), ("bsc", "results/bsc.json", 3)]
    assert card["metrics"] == {"clean_accuracy": 0.7}
    ModelCard.model_validate(card)
    assert card["payload_bits"] == 512 and card["timesteps"] == 4 and card["latent_shape"] == [2, 8, 8]


def test_the_shipped_bundle_carries_its_own_accuracy_against_p() -> None:
    bundle = load_bundle(ROOT / "bundles" / "default")
    card = model_card(bundle)
    ModelCard.model_validate(card)  # what the OpenAPI document declares
    curves = {curve["channel"]: curve for curve in card["accuracy_curves"]}
    assert set(curves) == {"bsc", "bec"}
    for curve in curves.values():
        assert curve["points"][0]["p"] == 0.0
        assert curve["points"][0]["accuracy_mean"] == bundle.manifest["metrics"]["clean_accuracy"]
        assert curve["n_images"] == bundle.manifest["metrics"]["n_images"]


# ---- the app -----------------------------------------------------------------------------------------------

@pytest.fixture
def app_client(tiny_bundle):
    pipeline = DevicePipeline(tiny_bundle)
    expected = ExpectedModel(pipeline.model_id, pipeline.codec, pipeline.timesteps, pipeline.latent_shape)
    # Nobody listens on this port: the page and the model card must not need the edge.
    edge = EdgeClient(f"127.0.0.1:{free_port()}", expected, ChannelSettings(), rpc_timeout_s=2.0)
    with TestClient(create_app(pipeline, edge, model_card(tiny_bundle))) as client:
        yield client


def test_the_app_serves_the_page_its_files_and_the_model_card(app_client, tiny_bundle) -> None:
    page = app_client.get("/")
    assert page.status_code == 200 and 'id="classify"' in page.text
    assert app_client.get("/web/app.js").headers["content-type"].startswith(("text/javascript",
                                                                             "application/javascript"))
    assert app_client.get("/web/nothing-here.js").status_code == 404
    assert app_client.get("/web/../app.py").status_code == 404
    card = app_client.get("/v1/model").json()
    assert card["model_id"] == tiny_bundle.model_id and card["classes"] == tiny_bundle.classes
    assert card["accuracy_curves"] == []
    ModelCard.model_validate(card)


def test_without_a_card_the_app_still_says_its_wire_format(tiny_bundle) -> None:
    pipeline = DevicePipeline(tiny_bundle)
    expected = ExpectedModel(pipeline.model_id, pipeline.codec, pipeline.timesteps, pipeline.latent_shape)
    edge = EdgeClient(f"127.0.0.1:{free_port()}", expected, ChannelSettings(), rpc_timeout_s=2.0)
    with TestClient(create_app(pipeline, edge)) as client:
        card = client.get("/v1/model").json()
    assert (card["model_id"], card["timesteps"], card["latent_shape"], card["payload_bits"]) == (
        tiny_bundle.model_id, 4, [2, 8, 8], 512)
    ModelCard.model_validate(card)


def test_a_bad_include_is_refused_by_name_before_the_edge_is_asked(app_client) -> None:
    reply = app_client.post("/v1/classify", params={"include": "everything"},
                            files={"image": ("x.png", b"not read", "image/png")})
    assert reply.status_code == 400
    assert "unknown include 'everything'" in reply.json()["detail"]


def test_the_openapi_document_declares_include_and_the_bits_fields(app_client) -> None:
    spec = app_client.get("/openapi.json").json()
    classify = spec["paths"]["/v1/classify"]["post"]
    assert "include" in [parameter["name"] for parameter in classify["parameters"]]
    bits = spec["components"]["schemas"]["PayloadBits"]["properties"]
    assert {"payload_bits", "wire_bytes", "sent", "received", "erased"} <= set(bits)
    model = spec["paths"]["/v1/model"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert model["$ref"].endswith("/ModelCard")
    assert "accuracy_curves" in spec["components"]["schemas"]["ModelCard"]["properties"]
