"""What a request must pass before the device spends anything on it: the bearer token, the body size, a free slot.

Pure ASGI middleware, outermost first: :class:`BearerToken` (401), :class:`BodySizeLimit` (413),
:class:`Admission` (503 + ``Retry-After``). Each refusal is a JSON ``{"detail": ...}`` sent at once; then the
rest of the body is read and dropped (as nginx's "lingering close" does) before the answer is completed: a
client that reads while it sends (curl, browsers) sees the answer at once, and one that sends its whole body
before reading (``requests``, a plain socket) is not cut off by a reset mid-upload. The drain is bounded by
:data:`DRAIN_LIMIT_BYTES` and :data:`DRAIN_LIMIT_S`. Nothing beyond the limit is ever kept, in memory or on disk.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
OnRefused = Callable[[int, str], None]

# A refused body is read and dropped up to this many bytes and seconds; past either the connection is closed.
DRAIN_LIMIT_BYTES = 1024 * 1024 * 1024
DRAIN_LIMIT_S = 30.0
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


async def drain(receive: Receive, limit: int = DRAIN_LIMIT_BYTES, limit_s: float = DRAIN_LIMIT_S) -> None:
    """Read and drop the rest of the request body, at most ``limit`` bytes and ``limit_s`` seconds."""
    seen = 0
    try:
        async with asyncio.timeout(limit_s):
            while seen <= limit:
                message = await receive()
                if message["type"] != "http.request":
                    return
                seen += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        return


async def refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str,
                 headers: Collection[tuple[bytes, bytes]] = (), body_started: bool = False) -> None:
    """Answer ``status`` at once, drop the rest of the body (bounded), then end the answer.

    The answer's bytes go out before the drain, and the answer is completed only after it: a server that
    completes its answer stops reading, and closing a socket with unread input resets the connection, which
    destroys the answer before a client that is still sending reads it. A client that announced
    ``Expect: 100-continue`` and has sent nothing yet is not waited for (it reads the answer instead of sending);
    its connection is closed, so a body it sends anyway is never read as the next request.
    """
    expecting = not body_started and (_header(scope, b"expect") or "").lower() == "100-continue"
    headers = list(headers)
    if expecting and (b"connection", b"close") not in headers:
        headers.append((b"connection", b"close"))
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body, "more_body": True})
    if not expecting:
        await drain(receive)
    await send({"type": "http.response.body", "body": b""})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class BearerToken:
    """``Authorization: Bearer <token>`` on every path but :data:`OPEN_PATHS`; compared in constant time."""

    def __init__(self, app: ASGIApp, token: str, on_refused: OnRefused | None = None) -> None:
        if not token:
            raise ValueError("the API token must not be empty")
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = (_header(scope, b"authorization") or "").encode("latin-1")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        if self.on_refused is not None:
            self.on_refused(401, "unauthorized")
        await refuse(scope, receive, send, 401, "missing or wrong bearer token: send 'Authorization: Bearer <token>'",
                     [(b"www-authenticate", b'Bearer realm="sjscc"')])


class _TooLarge(Exception):
    """Raised into the app's body parser when the body passes the limit."""


class BodySizeLimit:
    """At most ``max_bytes`` of request body, whether announced (``Content-Length``) or streamed (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int, on_refused: OnRefused | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_refused = on_refused

    def _detail(self, size: str) -> str:
        return f"the request body is {size}; the limit is {self.max_bytes} bytes"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: str, body_started: bool) -> None:
        if self.on_refused is not None:
            self.on_refused(413, "image_too_large")
        await refuse(scope, receive, send, 413, self._detail(size), [(b"connection", b"close")], body_started)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, receive, send, f"{length.strip()[:20]} bytes", body_started=False)
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _TooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a parse failure we caused: ours replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(scope, receive, send, f"more than {self.max_bytes} bytes (sent without a length)",
                               body_started=True)


class Admission:
    """At most ``max_in_flight`` requests on ``paths`` at once; the next one gets 503 + ``Retry-After`` at once.

    Shedding at the door keeps every admitted request inside its deadline: waiting in line past capacity
    would only make every answer late.
    """

    def __init__(self, app: ASGIApp, max_in_flight: int, paths: Collection[str],
                 on_refused: OnRefused | None = None, retry_after_s: int = 1) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.app = app
        self.max_in_flight = max_in_flight
        self.paths = frozenset(paths)
        self.on_refused = on_refused
        self.retry_after = str(retry_after_s).encode()
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            if self.on_refused is not None:
                self.on_refused(503, "overloaded")
            await refuse(scope, receive, send, 503,
                         f"the device is at capacity ({self.max_in_flight} requests in progress); "
                         f"retry after {self.retry_after.decode()} s", [(b"retry-after", self.retry_after)])
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
