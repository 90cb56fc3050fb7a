"""Admission and deadlines on the edge, in-process over loopback: a full queue is RESOURCE_EXHAUSTED at once
(and 503 on the device), the device's remaining budget is the gRPC deadline, and a request whose caller has
given up is never computed."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest
from edge_support import expected_model, request_for, running

from sjscc.device.client import EdgeBusyError, EdgeClient, EdgeTimeoutError
from sjscc.device.link import ChannelSettings
from sjscc.edge.batching import BatcherFullError, MicroBatcher
from sjscc.edge.pipeline import EdgePipeline
from sjscc.proto import sjscc_pb2_grpc


@pytest.fixture(scope="module")
def edge(tiny_bundle) -> EdgePipeline:
    return EdgePipeline(tiny_bundle, device="cpu")


def test_the_batcher_refuses_past_its_queue_bound_at_once() -> None:
    release = threading.Event()

    def slow(items: list[int]) -> list[int]:
        release.wait(10)
        return items

    async def scenario() -> tuple[list[object], float]:
        batcher: MicroBatcher[int, int] = MicroBatcher(slow, max_batch_size=1, max_wait_ms=0, max_queue=2)
        first = asyncio.create_task(batcher.submit(0))  # taken by the worker: no longer queued
        await asyncio.sleep(0.2)
        queued = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        with pytest.raises(BatcherFullError, match="2 requests queued"):
            await batcher.submit(3)
        refused_in = time.perf_counter() - start
        release.set()
        results = await asyncio.gather(first, *queued)
        await batcher.close()
        return results, refused_in

    results, refused_in = asyncio.run(scenario())
    assert [r.value for r in results] == [0, 1, 2]
    assert refused_in < 0.5  # at once, not after any deadline
    with pytest.raises(ValueError, match="max_queue"):
        MicroBatcher(lambda items: items, max_queue=0)


def test_a_full_edge_answers_resource_exhausted_and_the_device_calls_it_busy(edge, monkeypatch) -> None:
    working = edge.predict
    release = threading.Event()

    def slow(batch):
        release.wait(10)
        return working(batch)

    monkeypatch.setattr(edge, "predict", slow)

    async def scenario():
        async with running(edge, max_batch_size=1, max_wait_ms=0.0, max_queue=2) as address:
            async with grpc.aio.insecure_channel(address) as channel:
                stub = sjscc_pb2_grpc.EdgeInferenceStub(channel)
                calls = [asyncio.ensure_future(stub.Infer(request_for(edge), timeout=30)) for _ in range(8)]
                await asyncio.sleep(1.0)
                refused = [c for c in calls if c.done()]
                release.set()
                outcomes = await asyncio.gather(*calls, return_exceptions=True)
            client = EdgeClient(address, expected_model(edge), ChannelSettings(), rpc_timeout_s=30)
            await client.open()
            release.clear()
            try:
                await client.check_model()
                blockers = [asyncio.create_task(client.infer(request_for(edge).payload, f"b{i}")) for i in range(3)]
                await asyncio.sleep(0.5)
                with pytest.raises(EdgeBusyError, match="at capacity"):
                    await client.infer(request_for(edge).payload, "over")
                release.set()
                await asyncio.gather(*blockers)
            finally:
                await client.close()
        return refused, outcomes

    refused, outcomes = asyncio.run(scenario())
    codes = [o.code() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert codes and set(codes) == {grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    assert len(refused) == len(codes)  # every refusal came back before the queue moved
    assert sum(1 for o in outcomes if not isinstance(o, Exception)) == 8 - len(codes) >= 3


def test_the_remaining_budget_is_the_deadline_and_abandoned_requests_are_not_computed(edge, monkeypatch) -> None:
    working = edge.predict
    computed: list[str] = []
    release = threading.Event()

    def slow(batch):
        release.wait(10)
        computed.extend(item.request_id for item in batch)
        return working(batch)

    monkeypatch.setattr(edge, "predict", slow)

    async def scenario() -> float:
        async with running(edge, max_batch_size=1, max_wait_ms=0.0) as address:
            client = EdgeClient(address, expected_model(edge), ChannelSettings(), rpc_timeout_s=30)
            await client.open()
            try:
                await client.check_model()
                blocker = asyncio.create_task(client.infer(request_for(edge).payload, "blocker"))
                await asyncio.sleep(0.3)
                start = time.perf_counter()
                with pytest.raises(EdgeTimeoutError, match="deadline"):
                    await client.infer(request_for(edge).payload, "abandoned", timeout_s=0.5)
                elapsed = time.perf_counter() - start
                release.set()
                await blocker
                await client.infer(request_for(edge).payload, "after")
            finally:
                await client.close()
        return elapsed

    elapsed = asyncio.run(scenario())
    assert 0.4 <= elapsed < 3.0  # the 0.5 s budget, not the client's 30 s default
    # The compact request carries no request id, so count: blocker and "after" were computed, "abandoned" not.
    assert len(computed) == 2
