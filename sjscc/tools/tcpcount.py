"""A byte-counting loopback TCP proxy: what a connection really carries, in each direction.

``sjscc bench`` puts it between the device and the edge (the device dials the proxy, the proxy dials the edge)
and reads the counters before and after a run of requests, so "TCP bytes per request" is measured, not derived
from message sizes. The counts are TCP payload bytes (everything gRPC and HTTP/2 write: frames, headers, pings,
window updates); the IP and TCP headers below them are not seen by a user-space proxy and are not included.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class ByteCounts:
    """Bytes seen so far: ``up`` client -> server (device -> edge), ``down`` server -> client, and connections."""

    up: int
    down: int
    connections: int


class CountingProxy:
    """Forward ``listen_host:port`` (0 picks a free port) to ``target_host:target_port``, counting bytes.

    Runs its own event loop in a daemon thread, so it can sit beside blocking code (the bench's subprocesses).
    """

    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.port = 0
        self._up = 0
        self._down = 0
        self._connections = 0
        self._lock = threading.Lock()
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    def counts(self) -> ByteCounts:
        with self._lock:
            return ByteCounts(self._up, self._down, self._connections)

    def _add(self, direction: str, n: int) -> None:
        with self._lock:
            if direction == "up":
                self._up += n
            else:
                self._down += n

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str) -> None:
        try:
            while data := await reader.read(65536):
                self._add(direction, len(data))
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self._writers.update((client_writer, server_writer))
        with self._lock:
            self._connections += 1
        await asyncio.gather(self._pipe(client_reader, server_writer, "up"),
                             self._pipe(server_reader, client_writer, "down"), return_exceptions=True)
        self._writers.difference_update((client_writer, server_writer))

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.listen_host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        """Close the listener, then every connection still open, and wait for them."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()  # the pipes then read EOF and end by themselves
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    def start(self) -> CountingProxy:
        """Start listening; returns once :attr:`port` is bound."""
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="counting-proxy", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), loop).result(10.0)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
