"""Issue 11's guarantees that are not speed: the optimized road gives the same bits and labels as before, the
compact request is still refused for another model, the byte-counting proxy counts exactly, and the end-to-end
bench works in its smoke mode (CI keeps it working; its numbers come from full runs, see docs/PERFORMANCE.md)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import socket
from pathlib import Path

import pytest
from PIL import Image

from sjscc.common import bitstream
from sjscc.common.bundle import load_bundle
from sjscc.device.link import ChannelCall, ChannelInterceptor, ChannelSettings
from sjscc.device.pipeline import DevicePipeline
from sjscc.edge.pipeline import EdgePipeline, EncodedRequest, ModelMismatchError
from sjscc.edge.server import request_from_proto
from sjscc.proto import sjscc_pb2
from sjscc.tools.tcpcount import CountingProxy

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BUNDLE = REPO / "bundles" / "default"

# Computed with the code at main's HEAD before issue 11 (commit 0bd48df): sha256 prefixes of the payload the
# device sent and of the payload the edge received, the channel's counts, and the label. Images: scikit-image's
# photos, PNG-encoded. Channel seeds per request; BEC with the papers' random fill.
REFERENCE = [
    ("chelsea", "none", 0.0, 1, "a6195c537abf4e5d", "a6195c537abf4e5d", 0, 0, "cat"),
    ("chelsea", "bsc", 0.1, 7, "a6195c537abf4e5d", "79f9b48e6c829320", 53, 0, "cat"),
    ("chelsea", "bec", 0.2, 11, "a6195c537abf4e5d", "7001effbb4477e16", 44, 97, "cat"),
    ("coffee", "none", 0.0, 1, "b3edd2cbb5e2619c", "b3edd2cbb5e2619c", 0, 0, "automobile"),
    ("coffee", "bsc", 0.1, 7, "b3edd2cbb5e2619c", "12548486ba06f16c", 53, 0, "automobile"),
    ("coffee", "bec", 0.2, 11, "b3edd2cbb5e2619c", "dec5ff81af04a4f4", 50, 97, "automobile"),
    ("astronaut", "none", 0.0, 1, "00e757caddd146bb", "00e757caddd146bb", 0, 0, "dog"),
    ("astronaut", "bsc", 0.1, 7, "00e757caddd146bb", "3e2baa6b870de29c", 53, 0, "dog"),
    ("astronaut", "bec", 0.2, 11, "00e757caddd146bb", "88b2e96b0b293e94", 46, 97, "dog"),
]


def _png(name: str) -> bytes:
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(getattr(data, name)()).save(buffer, format="PNG")
    return buffer.getvalue()


def _sha(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()[:16]


@pytest.fixture(scope="module")
def default_halves() -> tuple[DevicePipeline, EdgePipeline]:
    bundle = load_bundle(DEFAULT_BUNDLE)
    return DevicePipeline(bundle), EdgePipeline(bundle, device="cpu", erasure_seed=3)


def test_same_image_channel_and_seed_give_the_bits_and_label_of_before(default_halves) -> None:
    """Through the compact request (payload + model_key + top_k) the device now sends."""
    device, edge = default_halves
    encoded = {}
    for image, kind, p, seed, sent, received, flipped, erased, label in REFERENCE:
        if image not in encoded:
            encoded[image] = device.encode_image(_png(image))
        payload = encoded[image].payload
        assert _sha(payload) == sent, image
        interceptor = ChannelInterceptor(ChannelSettings(kind, p), seed=0, payload_shape=device.payload_shape)
        request = sjscc_pb2.EncodedFeature(payload=payload, model_key=bytes.fromhex(device.model_id), top_k=5)
        arrived, report = interceptor.transmit(request, ChannelCall(ChannelSettings(kind, p), seed))
        assert (_sha(arrived.payload), report.flipped_bits, report.erased_bits) == (received, flipped, erased)
        assert report.wire_bytes == arrived.ByteSize() == len(payload) + 2 + 10 + 2  # payload, key, top_k fields
        prediction = edge.infer(request_from_proto(arrived))
        assert prediction.top[0].label == label, (image, kind)


def test_compact_request_for_another_model_is_refused(default_halves) -> None:
    _, edge = default_halves
    payload = bitstream.pack(bitstream.unpack(bytes(edge.payload_bits // 8), edge.payload_shape))
    wrong = sjscc_pb2.EncodedFeature(payload=payload, model_key=bytes.fromhex("00" * 8))
    with pytest.raises(ModelMismatchError, match="0000000000000000"):
        edge.decode(request_from_proto(wrong))
    right = request_from_proto(sjscc_pb2.EncodedFeature(payload=payload, model_key=bytes.fromhex(edge.model_id)))
    assert edge.decode(right).bits.shape == tuple(edge.payload_shape)
    # A header that does state codec or shape is still checked against the model.
    with pytest.raises(ModelMismatchError, match="codec"):
        edge.decode(EncodedRequest(payload, 0, (), "cnn-q8", edge.model_id))


def test_counting_proxy_counts_every_byte_each_way() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data + data)  # the answer is twice the question
            await writer.drain()
        writer.close()

    async def serve_once() -> tuple[int, int]:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with CountingProxy("127.0.0.1", port) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            for size in (1, 100, 5000):
                writer.write(b"x" * size)
                await writer.drain()
                await reader.readexactly(2 * size)
            writer.close()
            counts = proxy.counts()
        server.close()
        return counts.up, counts.down, counts.connections

    assert asyncio.run(serve_once()) == (5101, 10202, 1)


def test_counting_proxy_refuses_nothing_when_the_target_is_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    with CountingProxy("127.0.0.1", dead_port) as proxy, socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.settimeout(5.0)
        assert s.recv(1) == b""  # closed at once, nothing counted
        assert proxy.counts().up == 0


@pytest.mark.slow
def test_bench_e2e_smoke_writes_every_key(tiny_bundle, tmp_path: Path) -> None:
    from sjscc.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "--bundle", str(tiny_bundle.path), "--mode", "e2e", "--smoke", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    for key in ("inprocess_b1_ms", "inprocess_best_ips", "e2e_p50_ms_c1", "e2e_p99_ms_c32", "throughput_rps_c32",
                "pack_channel_unpack_gbps"):
        assert isinstance(report[key], float) and report[key] > 0, key
    assert report["payload_bits"] == 4 * 2 * 8 * 8
    payload_bytes = report["payload_bits"] // 8
    assert report["wire_bytes"] == payload_bytes + 2 + 10 + 2  # payload, model_key and top_k fields
    # The connection carries at least the message plus its gRPC prefix and HTTP/2 DATA frame header each way.
    assert report["tcp_up_bytes_per_request"] >= report["wire_bytes"] + 5 + 9
    assert report["tcp_down_bytes_per_request"] > 5 + 9
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["libraries"]["torch"]
    for row in report["rest"].values():
        assert set(row["statuses"]) == {"200"}
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert report["e2e_counts"].startswith("smoke")
    assert set(report["targets"]) == {"rest_p50_c1_le_1.25x_inprocess_b1", "throughput_c32_ge_0.7x_inprocess_best",
                                      "pack_bsc_unpack_ge_1_gbps", "tcp_up_le_payload_plus_64"}


def test_device_batcher_shares_forward_passes_and_gives_each_request_its_own_spikes(default_halves) -> None:
    """Requests queued while the model computes ride together; each gets the spikes it gets alone."""
    import threading
    import time as clock

    import torch

    from sjscc.device.pipeline import EncoderBatcher

    device, _ = default_halves
    images = [torch.randn(3, device.image_size, device.image_size, generator=torch.Generator().manual_seed(i))
              for i in range(6)]
    alone = [device.encode_tensor(image[None])[0] for image in images]
    gate = threading.Event()

    def slow_first(batch: torch.Tensor) -> torch.Tensor:
        gate.wait(10.0)  # the first batch holds the model until every other request is queued
        return device.encode_tensor(batch)

    batcher = EncoderBatcher(slow_first, max_batch_size=8)
    results: dict[int, torch.Tensor] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, batcher.encode(images[i])))
               for i in range(6)]
    threads[0].start()
    while not batcher.batch_sizes:
        clock.sleep(0.01)
    for thread in threads[1:]:
        thread.start()
    while sum(1 for _ in batcher._pending) < 5:
        clock.sleep(0.01)
    gate.set()
    for thread in threads:
        thread.join(30.0)
    assert batcher.batch_sizes == [1, 5]
    for i in range(6):
        assert torch.equal(results[i], alone[i]), i


def test_device_batcher_hands_a_model_error_to_its_callers() -> None:
    import torch

    from sjscc.device.pipeline import EncoderBatcher

    def broken(batch: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("out of memory (simulated)")

    batcher = EncoderBatcher(broken)
    with pytest.raises(RuntimeError, match="simulated"):
        batcher.encode(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="max_batch_size"):
        EncoderBatcher(broken, max_batch_size=0)


def test_data_frame_bytes_counts_the_grpc_prefix_and_http2_frame_headers() -> None:
    from sjscc.device.link import data_frame_bytes

    assert data_frame_bytes(78) == 78 + 5 + 9  # the default bundle's compact request: one DATA frame
    assert data_frame_bytes(16379) == 16384 + 9  # exactly one full frame
    assert data_frame_bytes(16380) == 16385 + 2 * 9  # one byte more opens a second frame
