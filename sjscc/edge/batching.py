"""Micro-batching for the edge: concurrent requests share one forward pass.

A batch closes when it holds ``max_batch_size`` items or when its oldest item has waited ``max_wait_ms``,
whichever comes first, so a lone request pays at most ``max_wait_ms`` of extra latency. With
``dispatch_when_idle`` (the default) a batch also closes at once when no further request arrived during one
turn of the event loop: waiting only pays when others are coming, and under load the requests that queued while
the model computed form the next batch anyway (measured in docs/PERFORMANCE.md). The batch function
runs on a single worker thread: the event loop keeps accepting requests while the model computes, and the
model (whose spiking neurons keep state during a forward pass) is never used by two threads at once.
Callers get exactly what the batch function returns for their item; with a model whose samples do not
interact (eval mode) that equals running the item alone.

The queue is bounded (``max_queue`` items waiting): past it :meth:`MicroBatcher.submit` refuses at once with
:class:`BatcherFullError`, so overload is answered immediately instead of every request waiting out its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class BatcherClosedError(RuntimeError):
    """The batcher is shutting down and takes no more work."""


class BatcherFullError(RuntimeError):
    """The queue holds ``max_queue`` items already: shed this one rather than let it wait past its deadline."""


@dataclass(frozen=True)
class Batched(Generic[Result]):
    """One item's result plus how it was served: time spent waiting for its batch and the batch's size."""

    value: Result
    queue_ms: float
    batch_size: int


@dataclass
class _Entry(Generic[Item, Result]):
    item: Item
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher(Generic[Item, Result]):
    """Collect concurrent :meth:`submit` calls into lists for ``process_batch`` (one result per item, in order)."""

    def __init__(self, process_batch: Callable[[list[Item]], Sequence[Result]], max_batch_size: int = 8,
                 max_wait_ms: float = 2.0, max_queue: int = 64, dispatch_when_idle: bool = True) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self.max_queue = max_queue
        self.process_batch = process_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1e3
        self.dispatch_when_idle = dispatch_when_idle
        self._pending: list[_Entry[Item, Result]] = []
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    async def submit(self, item: Item) -> Batched[Result]:
        """Queue ``item`` and wait for its batch; exceptions of ``process_batch`` are re-raised here."""
        if self._closed:
            raise BatcherClosedError("the batcher is closed")
        waiting = sum(1 for entry in self._pending if not entry.future.done())
        if waiting >= self.max_queue:
            raise BatcherFullError(f"the edge is at capacity: {waiting} requests queued (limit {self.max_queue})")
        if self._worker is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-batch")
            self._worker = asyncio.get_running_loop().create_task(self._run())
        entry: _Entry[Item, Result] = _Entry(item, asyncio.get_running_loop().create_future())
        self._pending.append(entry)
        self._arrived.set()
        return await entry.future

    async def close(self) -> None:
        """Stop the worker; requests still queued fail with :class:`BatcherClosedError` (the server drains RPCs
        first, so normally none are left)."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for entry in self._pending:
            if not entry.future.done():
                entry.future.set_exception(BatcherClosedError("the edge is shutting down"))
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def _next_batch(self) -> list[_Entry[Item, Result]]:
        await self._arrived.wait()
        deadline = self._pending[0].enqueued + self.max_wait_s
        if self.dispatch_when_idle:
            queued = len(self._pending)
            await asyncio.sleep(0)  # requests arriving in this same loop turn join the batch
            if len(self._pending) == queued:
                deadline = time.perf_counter()  # nobody else is coming right now: do not wait
        while len(self._pending) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                break
        batch, self._pending = self._pending[: self.max_batch_size], self._pending[self.max_batch_size:]
        if self._pending:
            self._arrived.set()
        else:
            self._arrived.clear()
        return [entry for entry in batch if not entry.future.done()]  # drop callers that gave up (deadline)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self.process_batch, [e.item for e in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"process_batch returned {len(results)} results for {len(batch)} items")
            except Exception as error:  # noqa: BLE001 - handed to every caller of this batch
                for entry in batch:
                    if not entry.future.done():
                        entry.future.set_exception(error)
                continue
            for entry, result in zip(batch, results, strict=True):
                if not entry.future.done():
                    queue_ms = (started - entry.enqueued) * 1e3
                    entry.future.set_result(Batched(result, queue_ms, len(batch)))
