"""An edge served in-process on loopback and the requests to send it: shared by the edge, device and TLS tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import torch

from sjscc.common import bitstream
from sjscc.device.client import ExpectedModel
from sjscc.edge.pipeline import EdgePipeline
from sjscc.edge.server import serve
from sjscc.proto import sjscc_pb2


@contextlib.asynccontextmanager
async def running(edge: EdgePipeline, **options) -> AsyncIterator[str]:
    """Serve ``edge`` on a free loopback port for the duration of the block; yields its address."""
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(edge, "127.0.0.1", 0, on_ready=ready.set_result, stop=stop, grace_s=1.0,
                                     **options))
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises the startup error
    try:
        yield f"127.0.0.1:{ready.result()}"
    finally:
        stop.set()
        await task


def expected_model(edge: EdgePipeline, model_id: str | None = None) -> ExpectedModel:
    return ExpectedModel(model_id or edge.model_id, edge.codec, edge.timesteps, edge.latent_shape)


def request_for(edge: EdgePipeline, **changes) -> sjscc_pb2.EncodedFeature:
    fields = dict(payload=bitstream.pack(torch.zeros(edge.payload_shape)), timesteps=edge.timesteps,
                  latent_shape=list(edge.latent_shape), codec=edge.codec, model_id=edge.model_id, request_id="x")
    fields.update(changes)
    return sjscc_pb2.EncodedFeature(**fields)
