"""The edge pipeline without gRPC: bits from the device half in, the model's own prediction out; every
malformed or mismatched request refused with an error that names the problem."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sjscc.common import bitstream
from sjscc.edge.pipeline import EdgePipeline, EncodedRequest, ModelMismatchError, RequestError, select_device


@pytest.fixture(scope="module")
def edge(tiny_bundle) -> EdgePipeline:
    return EdgePipeline(tiny_bundle, device="cpu", erasure_seed=0)


@pytest.fixture(scope="module")
def images_and_bits(tiny_bundle) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images and the spikes the device half makes of them."""
    model = tiny_bundle.build(halves=("device",))
    images = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        bits = model.codec.encoder(model.head(images))
    return images, bits


def request_for(edge: EdgePipeline, bits: torch.Tensor, **changes) -> EncodedRequest:
    request = EncodedRequest(bitstream.pack(bits), edge.timesteps, edge.latent_shape, edge.codec, edge.model_id,
                             request_id="r")
    return dataclasses.replace(request, **changes)


def test_edge_reproduces_the_whole_model_over_a_clean_link(tiny_bundle, edge, images_and_bits) -> None:
    images, bits = images_and_bits
    whole = tiny_bundle.build(halves=("device", "edge"))
    with torch.inference_mode():
        expected, _ = whole(images)
    for i in range(len(images)):
        prediction = edge.infer(request_for(edge, bits[i], top_k=10))
        probs = torch.softmax(expected[i], dim=0)
        assert [s.class_index for s in prediction.top] == probs.argsort(descending=True).tolist()
        assert [s.prob for s in prediction.top] == pytest.approx(probs.sort(descending=True).values.tolist(),
                                                                 abs=1e-6)
        assert prediction.top[0].label == tiny_bundle.classes[int(probs.argmax())]
        assert prediction.batch_size == 1 and prediction.edge_compute_ms > 0


def test_top_k_is_sorted_and_clamped_to_the_classes(edge, images_and_bits) -> None:
    _, bits = images_and_bits
    default = edge.infer(request_for(edge, bits[0]))
    assert len(default.top) == 5
    everything = edge.infer(request_for(edge, bits[0], top_k=1000))
    assert len(everything.top) == len(edge.classes)
    probs = [s.prob for s in everything.top]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(("changes", "error", "words"), [
    ({"payload": b"\x00" * 10}, RequestError, "10 bytes"),
    ({"payload": b""}, RequestError, "0 bytes"),
    ({"timesteps": 3}, RequestError, "timesteps=3"),
    ({"latent_shape": (2, 4, 4)}, RequestError, "latent_shape=[2, 4, 4]"),
    ({"latent_shape": (2, 8)}, RequestError, "latent_shape=[2, 8]"),
    ({"model_id": ""}, RequestError, "model_id is required"),
    ({"model_id": "0123456789abcdef"}, ModelMismatchError, "0123456789abcdef"),
    ({"codec": "cnn-q4"}, ModelMismatchError, "cnn-q4"),
    ({"erasure_mask": b"\xff"}, RequestError, "erasure_mask"),
])
def test_malformed_or_mismatched_requests_are_refused(edge, images_and_bits, changes, error, words) -> None:
    _, bits = images_and_bits
    with pytest.raises(error) as raised:
        edge.decode(request_for(edge, bits[0], **changes))
    assert words in str(raised.value)


def test_payload_with_nonzero_padding_is_refused(tiny_bundle) -> None:
    edge = EdgePipeline(tiny_bundle, device="cpu")
    # 512 payload bits fill whole bytes; an extra byte is a length error, not silently ignored.
    payload = bitstream.pack(torch.zeros(edge.payload_shape)) + b"\x80"
    with pytest.raises(RequestError, match="bytes"):
        edge.decode(request_for(edge, torch.zeros(edge.payload_shape), payload=payload))


def test_erasure_mask_replaces_exactly_the_erased_bits_with_coins(edge, images_and_bits) -> None:
    _, bits = images_and_bits
    zeros = torch.zeros(edge.payload_shape)
    none_erased = edge.decode(request_for(edge, bits[0], erasure_mask=bitstream.pack(zeros)))
    assert torch.equal(none_erased.bits, bits[0])
    all_erased = edge.decode(request_for(edge, zeros, erasure_mask=bitstream.pack(torch.ones(edge.payload_shape))))
    ones = int(all_erased.bits.sum())
    n = all_erased.bits.numel()
    assert abs(ones - n / 2) < 4 * (n * 0.25) ** 0.5, f"{ones} of {n} coins came up 1"
    half = torch.zeros(edge.payload_shape)
    half[:2] = 1  # erase the first two time steps only
    partly = edge.decode(request_for(edge, zeros, erasure_mask=bitstream.pack(half)))
    assert torch.equal(partly.bits[2:], zeros[2:])


def test_select_device() -> None:
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")
