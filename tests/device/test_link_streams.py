"""The progressive stream crosses the same link as a whole payload: every step through
:meth:`ChannelInterceptor.transmit`, drawing one after another from the request's generator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import torch
from conftest import tiny_spec

from sjscc.common import bitstream
from sjscc.common.bundle import save_bundle
from sjscc.common.channels import apply_to_payload, build_channel
from sjscc.common.model import build_split_model
from sjscc.device.client import EdgeClient, ExpectedModel
from sjscc.device.link import ChannelCall, ChannelInterceptor, ChannelSettings, current_call
from sjscc.edge.pipeline import EdgePipeline
from sjscc.edge.server import serve
from sjscc.proto import sjscc_pb2

STEP_SHAPE = (2, 8, 8)


@pytest.fixture(scope="module")
def progressive_edge(tmp_path_factory: pytest.TempPathFactory) -> EdgePipeline:
    torch.manual_seed(5)
    spec = tiny_spec("snn-progressive")
    bundle = save_bundle(build_split_model(spec).eval(), spec, tmp_path_factory.mktemp("ls") / "progressive",
                         [f"class{i}" for i in range(10)], {"kind": "bsc", "p": 0.1}, {"note": "random weights"})
    return EdgePipeline(bundle, device="cpu", erasure_seed=0)


@contextlib.asynccontextmanager
async def running(edge: EdgePipeline) -> AsyncIterator[str]:
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(edge, "127.0.0.1", 0, on_ready=ready.set_result, stop=stop, grace_s=1.0))
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    try:
        yield f"127.0.0.1:{ready.result()}"
    finally:
        stop.set()
        await task


def steps(seed: int = 0) -> list[bytes]:
    bits = (torch.rand(4, *STEP_SHAPE, generator=torch.Generator().manual_seed(seed)) < 0.4).float()
    return [bitstream.pack(step) for step in bits]


def expected_flips(payloads: list[bytes], kind: str, p: float, seed: int) -> list[int]:
    """What the channel function itself draws for these steps, one generator for the stream."""
    generator = torch.Generator().manual_seed(seed)
    return [apply_to_payload(build_channel(kind), payload, STEP_SHAPE, p, generator).flipped_bits
            for payload in payloads]


def test_a_stream_goes_through_transmit_step_by_step() -> None:
    interceptor = ChannelInterceptor(ChannelSettings("bsc", 0.3), seed=7)
    messages = [sjscc_pb2.EncodedStep(payload=payload, step=i, timesteps=4, latent_shape=list(STEP_SHAPE),
                                      codec="snn-progressive", model_id="m", request_id="r")
                for i, payload in enumerate(steps(), start=1)]
    call = ChannelCall(seed=11)

    async def scenario() -> list[sjscc_pb2.EncodedStep]:
        sent = []

        async def continuation(details, iterator):
            sent.extend([message async for message in iterator])
            return "call"

        token = current_call.set(call)
        try:
            assert await interceptor.streams.intercept_stream_stream(continuation, None, iter(messages)) == "call"
        finally:
            current_call.reset(token)
        return sent

    received = asyncio.run(scenario())
    flips = expected_flips(steps(), "bsc", 0.3, 11)
    assert [report.flipped_bits for report in call.steps] == flips and sum(flips) > 0
    assert call.report.flipped_bits == sum(flips) and call.report.payload_bits == 4 * 128
    assert call.report.wire_bytes == sum(m.ByteSize() for m in received) and call.report.seed == 11
    for sent, arrived in zip(messages, received, strict=True):
        assert (arrived.step, arrived.model_id, list(arrived.latent_shape)) == (sent.step, "m", list(STEP_SHAPE))
    differing = [int((bitstream.unpack(a.payload, STEP_SHAPE) != bitstream.unpack(s.payload, STEP_SHAPE)).sum())
                 for s, a in zip(messages, received, strict=True)]
    assert differing == flips


def test_infer_progressive_corrupts_through_the_interceptor(progressive_edge: EdgePipeline) -> None:
    edge = progressive_edge
    expected = ExpectedModel(edge.model_id, edge.codec, edge.timesteps, edge.latent_shape)

    async def scenario():
        async with running(edge) as address:
            client = EdgeClient(address, expected, ChannelSettings("bsc", 0.2), seed=3)
            await client.open()
            try:
                seeded = [await client.infer_progressive(steps(1), f"r{i}", 1.0, ChannelCall(seed=21))
                          for i in range(2)]
                clean = await client.infer_progressive(steps(1), "c", 1.0, ChannelCall(ChannelSettings()))
            finally:
                await client.close()
            return seeded, clean

    (one, two), clean = asyncio.run(scenario())
    flips = expected_flips(steps(1), "bsc", 0.2, 21)
    assert [s.flipped_bits for s in one.steps] == [s.flipped_bits for s in two.steps] == flips
    assert one.channel.flipped_bits == sum(flips) > 0 and one.channel.payload_bits == 4 * 128
    assert [s.step for s in one.steps] == [1, 2, 3, 4] and one.channel.seed == 21
    assert clean.channel.kind == "none" and clean.channel.flipped_bits == 0
