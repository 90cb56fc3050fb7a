"""The edge reads a soft-decision payload (k-bit LLR levels) as P(bit = 1), the same numbers the link hands the
decoder in training and eval; malformed soft payloads are refused with a message."""

from __future__ import annotations

import pytest
import torch

from sjscc.common.channels import LinkSettings, apply_to_payload, build_channel
from sjscc.common.channels.radio import pack_levels
from sjscc.edge.pipeline import EdgePipeline, EncodedRequest, RequestError


@pytest.fixture(scope="module")
def edge(tiny_bundle) -> EdgePipeline:
    return EdgePipeline(tiny_bundle, device="cpu", erasure_seed=0)


def _request(edge: EdgePipeline, payload: bytes, soft_bits: int, **extra) -> EncodedRequest:
    return EncodedRequest(payload, edge.timesteps, edge.latent_shape, edge.codec, edge.model_id, "r",
                          soft_bits=soft_bits, **extra)


def test_soft_payload_decodes_to_the_links_probabilities(edge, tiny_bundle) -> None:
    from sjscc.common import bitstream

    bits = (torch.rand(edge.payload_shape, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    link = build_channel("awgn", link=LinkSettings(1.0, "qpsk", decisions="soft", soft_bits=5))
    report = apply_to_payload(link, bitstream.pack(bits.to(torch.uint8)), edge.payload_shape, 0.0,
                              torch.Generator().manual_seed(7))
    assert report.soft_bits == 5 and len(report.payload) == (bits.numel() * 5 + 7) // 8
    decoded = edge.decode(_request(edge, report.payload, 5))
    tensor_form = link.transmit(bits.unsqueeze(0), generator=torch.Generator().manual_seed(7)).received[0]
    assert torch.equal(decoded.bits, tensor_form)
    model = tiny_bundle.build(halves=("edge",))
    with torch.inference_mode():
        expected = torch.softmax(model.tail(model.codec.decoder(tensor_form.unsqueeze(0))), 1)[0]
    prediction = edge.infer(_request(edge, report.payload, 5, top_k=3))
    assert prediction.top[0].class_index == int(expected.argmax())


def test_bad_soft_payloads_are_request_errors(edge) -> None:
    count = edge.payload_bits
    good = pack_levels(torch.zeros(count, dtype=torch.uint8).numpy(), 4)
    with pytest.raises(RequestError, match="soft_bits must be 0"):
        edge.decode(_request(edge, good, 1))
    with pytest.raises(RequestError, match="soft_bits must be 0"):
        edge.decode(_request(edge, good, 9))
    with pytest.raises(RequestError, match=f"is {count * 4 // 8} bytes"):
        edge.decode(_request(edge, good[:-1], 4))
    with pytest.raises(RequestError, match="no erasure mask"):
        edge.decode(_request(edge, good, 4, erasure_mask=b"\x00"))
