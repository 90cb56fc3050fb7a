"""Separate coding in the pipelines, without servers: the device's link encodes one CRC + 5G LDPC block per image and
the edge decodes it (BP + CRC) back to the very bits sent; malformed coded requests are refused by name."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from sjscc.common import bitstream
from sjscc.common.bundle import load_bundle
from sjscc.common.channels import coding
from sjscc.device import link as device_link
from sjscc.device.link import ChannelCall, ChannelInterceptor, ChannelSettings, check_coded_settings
from sjscc.edge.pipeline import EdgePipeline, EncodedRequest, ModelMismatchError, RequestError
from sjscc.edge.server import max_request_bytes, request_from_proto
from sjscc.proto import sjscc_pb2

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "sscc-cnn-q4-ldpc"


@pytest.fixture(scope="module")
def coded():
    bundle = load_bundle(BUNDLE)
    edge = EdgePipeline(bundle, erasure_seed=0)
    link = ChannelInterceptor(ChannelSettings(), 0, tuple(bundle.payload_shape), coding.link_for(bundle.manifest))
    bits = (torch.rand(bundle.payload_shape, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    message = sjscc_pb2.EncodedFeature(payload=bitstream.pack(bits), model_key=bytes.fromhex(bundle.model_id))
    return bundle, edge, link, bits, message


def decode(edge: EdgePipeline, request: EncodedRequest):
    """What the edge's batch function classifies: the checked request with its block BP-decoded."""
    return edge.decode_blocks([edge.decode(request)])[0]


def send(link: ChannelInterceptor, message, settings: ChannelSettings, seed: int = 2) -> EncodedRequest:
    received, _ = link.transmit(message, ChannelCall(settings, seed))
    return request_from_proto(received)


@pytest.mark.parametrize("settings", [
    ChannelSettings(),
    ChannelSettings("bsc", 0.01),
    ChannelSettings("awgn", snr_db=5.0, modulation="qpsk", decisions="soft"),
    ChannelSettings("rayleigh", snr_db=30.0, modulation="qpsk", decisions="hard", coherence=32),
])
def test_a_decoded_block_gives_the_edge_exactly_the_bits_sent(coded, settings) -> None:
    _, edge, link, bits, message = coded
    decoded = decode(edge, send(link, message, settings))
    assert decoded.decoded is True and decoded.on_failure == "erase"
    assert torch.equal(decoded.bits, bits)


def test_the_wire_carries_the_coded_block_and_the_report_says_so(coded) -> None:
    _, _, link, _, message = coded
    hard, report = link.transmit(message, ChannelCall(ChannelSettings("awgn", snr_db=2.0, modulation="qpsk"), 4))
    assert (hard.coded_bits, len(hard.payload), hard.soft_bits) == (512, 64, 0)
    # the receiver's reliability: the block's mean error probability from its LLRs, near the closed-form BER's
    assert hard.hard_llr == pytest.approx(coding.hard_llr(report.p), rel=0.1) and 0.05 < report.p < 0.15
    assert report.code == {"kind": "ldpc", "crc": "CRC16", "rate": 0.53125, "info_bits": 256, "coded_bits": 512,
                           "symbols": 256, "on_failure": None}
    assert report.link["symbols"] == 256 and report.payload_bits == 256
    soft, _ = link.transmit(message, ChannelCall(ChannelSettings("awgn", snr_db=2.0, modulation="qpsk",
                                                                 decisions="soft", soft_bits=6), 4))
    assert (soft.coded_bits, len(soft.payload), soft.soft_bits, soft.hard_llr) == (512, 384, 6, 0.0)


def test_a_failed_block_gets_the_policy(coded) -> None:
    _, edge, link, bits, message = coded
    low = ChannelSettings("awgn", snr_db=-10.0, modulation="qpsk")
    erased = decode(edge, send(link, message, low))
    assert erased.decoded is False and erased.on_failure == "erase" and not torch.equal(erased.bits, bits)
    counted = send(link, message, dataclasses.replace(low, on_failure="misclassify"))
    good = send(link, message, ChannelSettings("awgn", snr_db=8.0, modulation="qpsk"))
    passed, failed = edge.predict([edge.decode(good), edge.decode(counted)])  # one BP call for both blocks
    assert (failed.decoded, failed.on_failure, failed.top) == (False, "misclassify", [])
    alone = edge.infer(request_from_proto(message)).top  # the uncoded bits, in a batch of one
    assert passed.decoded is True and [c.class_index for c in passed.top] == [c.class_index for c in alone]
    assert [c.prob for c in passed.top] == pytest.approx([c.prob for c in alone], abs=1e-5)  # batch of 2 vs 1


def test_malformed_coded_requests_are_refused_by_name(coded, tiny_bundle) -> None:
    bundle, edge, link, _, message = coded
    request = send(link, message, ChannelSettings("bsc", 0.01))
    for change, named in (({"coded_bits": 256}, "coded_bits=256"), ({"hard_llr": float("nan")}, "hard_llr"),
                          ({"hard_llr": -1.0}, "hard_llr"), ({"on_failure": "retry"}, "on_failure"),
                          ({"payload": request.payload[:-1]}, "coded payload"),
                          ({"soft_bits": 9}, "soft_bits")):
        with pytest.raises(RequestError, match=named):
            edge.decode(dataclasses.replace(request, **change))
    uncoded = EdgePipeline(tiny_bundle)
    with pytest.raises(ModelMismatchError, match="names no channel code"):
        uncoded.block_llrs(dataclasses.replace(request, model_id=tiny_bundle.model_id))
    assert max_request_bytes(edge) >= 512 + 4096  # 8-bit LLR levels of the 512 coded bits fit


def test_the_device_refuses_what_a_block_cannot_cross(coded) -> None:
    code = coded[2].code
    check_coded_settings(ChannelSettings("awgn", modulation="qpsk"), code)
    for settings, named in ((ChannelSettings("bec", 0.1), "channel=bec"),
                            (ChannelSettings("awgn", modulation="bpsk"), "modulation=bpsk"),
                            (ChannelSettings("rayleigh", modulation="qpsk", coherence="step"), "coherence=step"),
                            (ChannelSettings("bsc", 0.1, interleave=3), "interleaver")):
        with pytest.raises(ValueError, match=named):
            check_coded_settings(settings, code)
    with pytest.raises(ValueError, match="on_failure"):
        ChannelSettings(on_failure="retry")
    assert device_link.FAILURE_POLICIES == coding.FAILURE_POLICIES


def test_hard_llr_is_the_bsc_reliability() -> None:
    assert coding.hard_llr(0.1) == pytest.approx(2.1972245773)  # ln 9
    assert coding.hard_llr(0.0) == coding.HARD_LLR_MAX and coding.hard_llr(0.7) == 0.0
