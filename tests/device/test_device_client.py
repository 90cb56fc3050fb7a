"""The channel interceptor on its own: it corrupts the payload bits and nothing else, counts what it did,
is reproducible with a seed, and takes per-request overrides; every RPC gets a deadline."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import torch

from sjscc.common import bitstream
from sjscc.common.params import parse_seed
from sjscc.device.edge_target import DeadlineInterceptor
from sjscc.device.link import ChannelCall, ChannelInterceptor, ChannelSettings, current_call, settings_for_request
from sjscc.proto import sjscc_pb2

SHAPE = (4, 2, 8, 8)


def request(bits: torch.Tensor | None = None) -> sjscc_pb2.EncodedFeature:
    bits = bits if bits is not None else (torch.rand(SHAPE, generator=torch.Generator().manual_seed(3)) < 0.4).float()
    return sjscc_pb2.EncodedFeature(payload=bitstream.pack(bits), timesteps=SHAPE[0], latent_shape=list(SHAPE[1:]),
                                    codec="snn", model_id="m", request_id="r", top_k=3)


def received_bits(message: sjscc_pb2.EncodedFeature) -> torch.Tensor:
    return bitstream.unpack(message.payload, SHAPE)


def test_only_the_payload_is_touched_and_flips_are_counted_exactly() -> None:
    sent = request()
    interceptor = ChannelInterceptor(ChannelSettings("bsc", 0.3), seed=5)
    received, report = interceptor.transmit(sent, None)
    differing = int((received_bits(received) != received_bits(sent)).sum())
    assert report.flipped_bits == differing > 0 and report.erased_bits == 0 and report.payload_bits == 512
    for name in ("timesteps", "latent_shape", "codec", "model_id", "request_id", "top_k"):
        assert getattr(received, name) == getattr(sent, name), name
    assert report.wire_bytes == received.ByteSize() and report.kind == "bsc" and report.p == 0.3
    assert not received.HasField("erasure_mask")
    assert sent.payload == request().payload  # the caller's message is not modified in place


def test_extremes_of_p() -> None:
    sent = request()
    nothing = ChannelInterceptor(ChannelSettings("bsc", 0.0)).transmit(sent, None)[0]
    everything = ChannelInterceptor(ChannelSettings("bsc", 1.0)).transmit(sent, None)[0]
    clean = ChannelInterceptor(ChannelSettings("none", 0.7)).transmit(sent, None)[1]
    assert nothing.payload == sent.payload
    assert torch.equal(received_bits(everything), 1 - received_bits(sent))
    assert clean.flipped_bits == clean.erased_bits == 0


def test_seeds_make_draws_reproducible_and_the_stream_moves_on() -> None:
    sent = request()
    interceptor = ChannelInterceptor(ChannelSettings("bsc", 0.2), seed=11)
    first = interceptor.transmit(sent, ChannelCall(seed=42))[0].payload
    again = interceptor.transmit(sent, ChannelCall(seed=42))[0].payload
    other = interceptor.transmit(sent, ChannelCall(seed=43))[0].payload
    assert first == again != other
    stream_a = [ChannelInterceptor(ChannelSettings("bsc", 0.2), seed=11).transmit(sent, None)[0].payload]
    deployment = ChannelInterceptor(ChannelSettings("bsc", 0.2), seed=11)
    stream_b = [deployment.transmit(sent, None)[0].payload, deployment.transmit(sent, None)[0].payload]
    assert stream_a[0] == stream_b[0] != stream_b[1]  # same deployment seed, same sequence; requests differ


def test_erasures_are_counted_and_the_mask_policy_sends_the_mask() -> None:
    sent = request(torch.ones(SHAPE))
    received, report = ChannelInterceptor(ChannelSettings("bec", 0.5, "zero"), seed=1).transmit(sent, None)
    zeros = int((received_bits(received) == 0).sum())
    assert report.erased_bits == zeros == report.flipped_bits > 0  # all ones sent: an erased bit reads as 0
    masked, mask_report = ChannelInterceptor(ChannelSettings("bec", 0.5, "mask"), seed=1).transmit(sent, None)
    assert masked.HasField("erasure_mask")
    assert int(bitstream.unpack(masked.erasure_mask, SHAPE).sum()) == mask_report.erased_bits


def test_request_overrides_and_their_errors() -> None:
    defaults = ChannelSettings("bsc", 0.1)
    assert settings_for_request(defaults) == defaults
    assert settings_for_request(defaults, "bec") == ChannelSettings("bec", 0.1)
    assert settings_for_request(defaults, p="0.25") == ChannelSettings("bsc", 0.25)
    with pytest.raises(ValueError, match="unknown channel 'wifi'"):
        settings_for_request(defaults, "wifi")
    for bad in ("1.5", "-0.1", "nan", "abc", ""):
        with pytest.raises(ValueError, match="p must"):
            settings_for_request(defaults, p=bad)
    assert parse_seed(None) is None and parse_seed("") is None and parse_seed("7") == 7
    for bad in ("x", "-1", "1.5", str(2**64)):
        with pytest.raises(ValueError, match="seed"):
            parse_seed(bad)
    with pytest.raises(ValueError):
        ChannelSettings("bec", 0.1, erasure_policy="guess")


def test_interceptor_reports_back_through_the_callers_context() -> None:
    interceptor = ChannelInterceptor(ChannelSettings("bsc", 0.5), seed=0)
    seen = {}

    async def continuation(details, message):
        seen["payload"] = message.payload
        return "reply"

    async def scenario():
        call = ChannelCall(ChannelSettings("bsc", 1.0))
        token = current_call.set(call)
        try:
            # grpc.aio runs interceptors in a task created from the caller's context, as here.
            reply = await asyncio.create_task(interceptor.intercept_unary_unary(continuation, None, request()))
        finally:
            current_call.reset(token)
        return reply, call.report

    reply, report = asyncio.run(scenario())
    assert reply == "reply" and report is not None and report.flipped_bits == 512
    assert torch.equal(bitstream.unpack(seen["payload"], SHAPE), 1 - received_bits(request()))


def test_deadline_interceptor_adds_a_timeout_only_where_missing() -> None:
    interceptor = DeadlineInterceptor(2.5)
    captured = []

    async def continuation(details, message):
        captured.append(details.timeout)

    def details(timeout):
        return grpc.aio.ClientCallDetails("/sjscc.v1.EdgeInference/Infer", timeout, None, None, None)

    async def scenario():
        await interceptor.intercept_unary_unary(continuation, details(None), None)
        await interceptor.intercept_unary_unary(continuation, details(0.5), None)

    asyncio.run(scenario())
    assert captured == [2.5, 0.5]
