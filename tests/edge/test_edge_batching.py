"""The micro-batcher: concurrent requests share forward passes, and every caller gets what it would have got
alone; batches respect their size and wait limits; a failing batch fails only its own callers."""

from __future__ import annotations

import asyncio
import time

import pytest
import torch

from sjscc.common import bitstream
from sjscc.edge.batching import MicroBatcher
from sjscc.edge.pipeline import EdgePipeline, EncodedRequest


@pytest.fixture(scope="module")
def edge(tiny_bundle) -> EdgePipeline:
    return EdgePipeline(tiny_bundle, device="cpu")


def random_requests(edge: EdgePipeline, n: int, seed: int = 0) -> list[EncodedRequest]:
    generator = torch.Generator().manual_seed(seed)
    return [
        EncodedRequest(bitstream.pack((torch.rand(edge.payload_shape, generator=generator) < 0.3).float()),
                       edge.timesteps, edge.latent_shape, edge.codec, edge.model_id, request_id=str(i), top_k=10)
        for i in range(n)
    ]


def test_batched_results_equal_one_at_a_time(edge) -> None:
    requests = random_requests(edge, 13)
    alone = [edge.infer(r) for r in requests]

    async def concurrently():
        batcher = MicroBatcher(edge.predict, max_batch_size=4, max_wait_ms=50.0)
        try:
            return await asyncio.gather(*(batcher.submit(edge.decode(r)) for r in requests))
        finally:
            await batcher.close()

    batched = asyncio.run(concurrently())
    sizes = [b.batch_size for b in batched]
    assert max(sizes) == 4 and all(1 <= s <= 4 for s in sizes), sizes  # batching happened, within the limit
    for single, together in zip(alone, batched, strict=True):
        assert together.value.request_id == single.request_id
        # Same classes in the same order; probabilities equal up to float32 rounding (a batch of 4 may take
        # another convolution kernel than a batch of 1, so the last bit can differ).
        assert [s.class_index for s in together.value.top] == [s.class_index for s in single.top]
        assert [s.prob for s in together.value.top] == pytest.approx([s.prob for s in single.top], abs=1e-6)


def test_lone_request_waits_at_most_max_wait() -> None:
    async def one():
        batcher = MicroBatcher(lambda items: [x * 2 for x in items], max_batch_size=8, max_wait_ms=20.0,
                               dispatch_when_idle=False)
        try:
            start = time.perf_counter()
            result = await batcher.submit(21)
            return result, time.perf_counter() - start
        finally:
            await batcher.close()

    result, elapsed = asyncio.run(one())
    assert result.value == 42 and result.batch_size == 1
    assert 0.015 <= result.queue_ms / 1e3 <= elapsed < 1.0


def test_full_batch_does_not_wait_for_the_timer() -> None:
    async def full():
        batcher = MicroBatcher(lambda items: list(items), max_batch_size=3, max_wait_ms=5000.0)
        try:
            start = time.perf_counter()
            results = await asyncio.gather(*(batcher.submit(i) for i in range(3)))
            return results, time.perf_counter() - start
        finally:
            await batcher.close()

    results, elapsed = asyncio.run(full())
    assert [r.value for r in results] == [0, 1, 2] and {r.batch_size for r in results} == {3}
    assert elapsed < 2.0


def test_a_failing_batch_fails_its_callers_and_the_next_batch_still_runs() -> None:
    def process(items: list[int]) -> list[int]:
        if -1 in items:
            raise RuntimeError("model exploded")
        return items

    async def scenario():
        batcher = MicroBatcher(process, max_batch_size=2, max_wait_ms=20.0)
        try:
            failed = await asyncio.gather(batcher.submit(-1), batcher.submit(5), return_exceptions=True)
            after = await batcher.submit(7)
            return failed, after
        finally:
            await batcher.close()

    failed, after = asyncio.run(scenario())
    assert all(isinstance(e, RuntimeError) and "exploded" in str(e) for e in failed)
    assert after.value == 7


def test_closed_batcher_refuses_work_and_limits_are_checked() -> None:
    async def closed():
        batcher = MicroBatcher(lambda items: items)
        await batcher.close()
        await batcher.submit(1)

    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(closed())
    with pytest.raises(ValueError, match="max_batch_size"):
        MicroBatcher(lambda items: items, max_batch_size=0)


def test_lone_request_does_not_wait_when_dispatching_when_idle() -> None:
    """With nothing else queued, a request goes at once: far below a 5 s max wait (no timing threshold near 0)."""
    async def one():
        batcher = MicroBatcher(lambda items: [x + 1 for x in items], max_batch_size=8, max_wait_ms=5000.0)
        try:
            start = time.perf_counter()
            result = await batcher.submit(1)
            return result, time.perf_counter() - start
        finally:
            await batcher.close()

    result, elapsed = asyncio.run(one())
    assert result.value == 2 and result.batch_size == 1
    assert elapsed < 2.5 and result.queue_ms < 2500.0


def test_requests_queued_while_the_model_computes_form_one_batch() -> None:
    """Dispatching when idle still batches: submissions made while a batch runs ride together in the next one."""
    sizes: list[int] = []

    def slow(items: list[int]) -> list[int]:
        sizes.append(len(items))
        time.sleep(0.2)
        return items

    async def burst():
        batcher = MicroBatcher(slow, max_batch_size=8, max_wait_ms=5000.0)
        try:
            first = asyncio.ensure_future(batcher.submit(0))
            await asyncio.sleep(0.05)  # the first batch (of one) is computing now
            rest = await asyncio.gather(*(batcher.submit(i) for i in range(1, 6)))
            return [await first, *rest]
        finally:
            await batcher.close()

    results = asyncio.run(burst())
    assert [r.value for r in results] == list(range(6))
    assert sizes == [1, 5]
