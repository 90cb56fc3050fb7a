"""The device's gRPC client for the edge. The digital channel lives here, as a client interceptor.

:class:`ChannelInterceptor` *is* the link between device and edge: every ``EncodedFeature`` leaving the
device passes through it, and it corrupts the payload bits (BSC flips, BEC erases) and nothing else; the
header fields (shape, model id) travel as a protected control channel. Its settings are the deployment's
(``--channel/--p/--seed`` or ``SJSCC_*``), overridable per request; what it did (bits flipped, erased)
comes back to the caller through :class:`ChannelCall`, which the caller puts in a context variable for
the duration of one RPC. Every RPC has a deadline (:class:`DeadlineInterceptor`); :meth:`EdgeClient.infer`
takes what is left of the request's time budget as its deadline, so the edge stops working on a request the
device has given up on. Keepalive pings notice a dead connection (a frozen or vanished edge) without waiting
for a request to time out. TLS and mutual TLS: :mod:`sjscc.common.tls`.

Several edges are gRPC's business, not ours: :func:`edge_target` turns the edge address into a gRPC target
and channel options so that a list of addresses, or a DNS name with several records (a Compose service
scaled out, a Kubernetes headless Service), is served by gRPC's own client-side ``round_robin`` policy.
"""

from __future__ import annotations

import contextvars
import dataclasses
import ipaddress
import json
import logging
import socket
import time
from dataclasses import dataclass
from typing import NoReturn

import grpc
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sjscc.common.channels import (
    CHANNELS,
    DEFAULT_BURST,
    apply_to_payload,
    build_channel,
    check_burst,
    check_probability,
    gilbert_elliott_transitions,
)
from sjscc.common.tls import TLSSettings
from sjscc.proto import sjscc_pb2, sjscc_pb2_grpc

log = logging.getLogger("sjscc.device")

DEFAULT_RPC_TIMEOUT_S = 5.0
MAX_SEED = 2**63 - 1
# Reconnect quickly after the edge restarts, instead of gRPC's default backoff of up to two minutes.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # No bandwidth-delay-product PINGs: small unary messages never need a bigger window, and the probes cost
    # ~1-6 bytes per request on the uplink (measured by sjscc bench's counting proxy).
    ("grpc.http2.bdp_probe", 0),
)
DEFAULT_KEEPALIVE_S = 10.0


def keepalive_options(interval_s: float) -> list[tuple[str, int]]:
    """Ping every ``interval_s`` even when idle; no answer within ``interval_s`` closes the connection."""
    interval_ms = max(1, int(interval_s * 1000))
    return [("grpc.keepalive_time_ms", interval_ms), ("grpc.keepalive_timeout_ms", interval_ms),
            ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_time_between_pings_ms", interval_ms),
            ("grpc.http2.ping_timeout_ms", interval_ms)]  # newer gRPC times a keepalive ping out by this one


# gRPC's own client-side load balancing: one subchannel per resolved address, requests spread in turn over
# those that are READY; a replica that goes away drops out of the rotation until it is back.
ROUND_ROBIN_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
# How soon the DNS resolver may look again after a replica disappears (gRPC's default is 30 s), so a
# replacement replica with a new address is found quickly.
DNS_MIN_RERESOLUTION_MS = 1000


@dataclass(frozen=True)
class EdgeTarget:
    """What :func:`edge_target` made of an edge address: the gRPC target and the channel options it needs."""

    target: str
    options: tuple[tuple[str, object], ...]
    balanced: bool


def _split_host_port(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` into its parts, with an error that names what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port:
        raise ValueError(f"edge address {address!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"edge address {address!r}: write an IPv6 address in brackets, [addr]:port")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"edge address {address!r}: port {port!r} is not a number") from None
    if not 0 < number < 65536:
        raise ValueError(f"edge address {address!r}: port {number} is outside 1..65535")
    return host, number


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """A host name's addresses, IPv4 first (a gRPC ``ipv4:``/``ipv6:`` target takes one family)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ValueError(f"edge host {host!r} does not resolve: {error.strerror}") from None
    found = {ipaddress.ip_address(info[4][0]) for info in infos}
    v4 = sorted(a for a in found if a.version == 4)
    return v4 or sorted(a for a in found if a.version == 6)


def edge_target(address: str) -> EdgeTarget:
    """The gRPC target and channel options for an edge address (``--edge`` / ``SJSCC_EDGE``).

    - ``h1:p1,h2:p2,...``: an ``ipv4:``/``ipv6:`` target listing every address, balanced by ``round_robin``.
      Host names in the list are resolved once, here; for replicas that come and go use one DNS name.
    - ``name:port`` (a DNS name): ``dns:///name:port`` with ``round_robin``, so every address the name
      resolves to gets requests, and gRPC re-resolves when a replica goes away.
    - ``ip:port``, or a target already in gRPC's syntax (``dns:``, ``ipv4:``, ``unix:``...): as given, with
      gRPC's default policy (one connection), as a single edge always was.
    """
    address = address.strip()
    if not address:
        raise ValueError("edge address is empty; give host:port, a comma-separated list of them, or a DNS name")
    options: tuple[tuple[str, object], ...] = CHANNEL_OPTIONS
    if address.startswith(("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")):
        return EdgeTarget(address, options, False)
    if "," in address:
        parts = [part.strip() for part in address.split(",")]
        if not all(parts):
            raise ValueError(f"edge address list {address!r} has an empty entry")
        endpoints: list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]] = []
        for part in parts:
            host, port = _split_host_port(part)
            ip = _ip(host)
            endpoints += [(ip, port)] if ip is not None else [(a, port) for a in _resolve(host, port)]
        families = {ip.version for ip, _ in endpoints}
        if len(families) > 1:
            raise ValueError(f"edge address list {address!r} mixes IPv4 and IPv6; gRPC balances one family")
        if families == {4}:
            target = "ipv4:" + ",".join(f"{ip}:{port}" for ip, port in endpoints)
        else:
            target = "ipv6:" + ",".join(f"[{ip}]:{port}" for ip, port in endpoints)
        return EdgeTarget(target, (*options, ("grpc.service_config", ROUND_ROBIN_CONFIG)), True)
    host, port = _split_host_port(address)
    if _ip(host) is not None:
        return EdgeTarget(address, options, False)
    return EdgeTarget(f"dns:///{host}:{port}",
                      (*options, ("grpc.service_config", ROUND_ROBIN_CONFIG),
                       ("grpc.dns_min_time_between_resolutions_ms", DNS_MIN_RERESOLUTION_MS)), True)


GRPC_MESSAGE_PREFIX_BYTES = 5  # compressed flag + 4-byte length, before every gRPC message
HTTP2_FRAME_HEADER_BYTES = 9
HTTP2_DEFAULT_MAX_FRAME_BYTES = 16384


def data_frame_bytes(message_bytes: int) -> int:
    """TCP bytes of the HTTP/2 DATA frame(s) that carry a gRPC message of ``message_bytes``.

    The part of a request's connection cost the device can know exactly. gRPC's core also writes a HEADERS
    frame (HPACK-compressed, ~18 bytes per request on a warm connection, far more on the first) and flow-control
    WINDOW_UPDATE frames that the application never sees; ``sjscc bench`` measures those with a counting proxy.
    """
    body = message_bytes + GRPC_MESSAGE_PREFIX_BYTES
    frames = max(1, -(-body // HTTP2_DEFAULT_MAX_FRAME_BYTES))
    return body + frames * HTTP2_FRAME_HEADER_BYTES


@dataclass(frozen=True)
class ChannelSettings:
    """Which channel corrupts the payload: ``kind`` (none, bsc, bec, ge), probability ``p``, BEC erasure policy,
    GE mean burst length ``burst`` (bits), and the seed of the bit interleaver around the channel (None: none).
    """

    kind: str = "none"
    p: float = 0.0
    erasure_policy: str = "random"
    burst: float = DEFAULT_BURST
    interleave: int | None = None

    def __post_init__(self) -> None:
        # raises a ValueError naming the unknown kind/policy, a bad burst length or interleaver seed
        build_channel(self.kind, self.erasure_policy, self.burst, self.interleave)
        object.__setattr__(self, "p", check_probability(self.p))
        object.__setattr__(self, "burst", check_burst(self.burst))
        if self.kind == "ge":
            gilbert_elliott_transitions(self.p, self.burst)  # p <= L/(L+1)


def parse_seed(seed: object) -> int | None:
    """A channel seed from a flag, environment variable or query string; empty means none."""
    if seed is None or (isinstance(seed, str) and seed.strip().lower() in ("", "none")):
        return None
    try:
        value = int(str(seed).strip())
    except ValueError:
        raise ValueError(f"seed must be an integer in [0, {MAX_SEED}], got {seed!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return value


def parse_probability(p: str | float) -> float:
    """A channel probability from a query string or flag: a number in [0, 1]."""
    if isinstance(p, str):
        try:
            p = float(p.strip())
        except ValueError:
            raise ValueError(f"p must be a number in [0, 1], got {p!r}") from None
    return check_probability(p)


def parse_burst(burst: str | float) -> float:
    """A GE mean burst length from a query string, flag or environment variable: a number >= 1 (bits)."""
    if isinstance(burst, str):
        try:
            burst = float(burst.strip())
        except ValueError:
            raise ValueError(f"burst (mean burst length) must be a number >= 1, got {burst!r}") from None
    return check_burst(burst)


def parse_interleave(interleave: object) -> int | None:
    """An interleaver seed (an integer in [0, 2^63)) from a query string, flag or environment variable;
    empty, ``none`` or ``off`` means no interleaver."""
    if interleave is None or (isinstance(interleave, str) and interleave.strip().lower() in ("", "none", "off")):
        return None
    try:
        value = int(str(interleave).strip())
    except ValueError:
        raise ValueError(f"interleave must be a seed in [0, {MAX_SEED}] or 'none', got {interleave!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"interleave must be a seed in [0, {MAX_SEED}] or 'none', got {interleave!r}")
    return value


def settings_for_request(defaults: ChannelSettings, channel: str | None = None,
                         p: str | float | None = None, burst: str | float | None = None,
                         interleave: str | int | None = None) -> ChannelSettings:
    """The deployment's settings with this request's ``channel``, ``p``, ``burst`` and/or ``interleave`` put
    in (each optional; ``interleave="none"`` turns the deployment's interleaver off)."""
    if channel is not None and channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
    changes: dict[str, object] = {}
    if channel is not None:
        changes["kind"] = channel
    if p is not None:
        changes["p"] = parse_probability(p)
    if burst is not None:
        changes["burst"] = parse_burst(burst)
    if interleave is not None:
        changes["interleave"] = parse_interleave(interleave)
    return dataclasses.replace(defaults, **changes)


@dataclass
class ChannelReport:
    """What the channel did to one request's payload (counts over payload bits only, never padding)."""

    kind: str
    p: float
    seed: int | None
    payload_bits: int
    flipped_bits: int
    erased_bits: int
    wire_bytes: int
    channel_ms: float
    burst: float | None = None
    """GE's mean burst length (None for the other kinds)."""
    interleave: int | None = None
    # Only when the call asked to keep them (ChannelCall.keep_bits): the payload as sent, as received,
    # and which bits were erased, each packed like the payload. For showing the channel's damage.
    sent_payload: bytes | None = None
    received_payload: bytes | None = None
    erased_positions: bytes | None = None


@dataclass
class ChannelCall:
    """One RPC's channel: its settings and seed going in, the interceptor's report coming out.

    ``seed=None`` draws from the deployment's random stream; a seed makes this request's corruption
    reproducible on its own. ``keep_bits`` asks the interceptor to put the sent and received payloads in
    the report (the web page draws them).
    """

    settings: ChannelSettings | None = None
    seed: int | None = None
    report: ChannelReport | None = None
    keep_bits: bool = False


# grpc.aio runs interceptors in a task created by the call, which copies the caller's context: the
# interceptor sees the caller's ChannelCall and writes its report into that same object.
current_call: contextvars.ContextVar[ChannelCall | None] = contextvars.ContextVar("sjscc_channel_call",
                                                                                 default=None)


class ChannelInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """The channel between device and edge: BSC/BEC/GE on the payload bits of every ``EncodedFeature``.

    With an interleaver, the payload is permuted before the channel and restored after it, both here: the
    interleaver and de-interleaver are the two ends of the simulated link (like a modem's), so the edge
    receives payload-order bits and needs no change; the seed names the permutation both ends share.
    """

    def __init__(self, defaults: ChannelSettings, seed: int | None = None,
                 payload_shape: tuple[int, ...] | None = None) -> None:
        self.defaults = defaults
        self.seed = seed
        self.payload_shape = payload_shape  # for compact requests, whose header leaves the shape to the model id
        self._stream = torch.Generator()
        if seed is None:
            self._stream.seed()
        else:
            self._stream.manual_seed(seed)

    def transmit(self, request: sjscc_pb2.EncodedFeature, call: ChannelCall | None
                 ) -> tuple[sjscc_pb2.EncodedFeature, ChannelReport]:
        """The request as the edge receives it, and what happened to its payload."""
        start = time.perf_counter()
        settings = call.settings if call is not None and call.settings is not None else self.defaults
        seed = call.seed if call is not None else None
        generator = torch.Generator().manual_seed(seed) if seed is not None else self._stream
        shape = [request.timesteps, *request.latent_shape] if request.timesteps else self.payload_shape
        if shape is None:
            raise ValueError("a request without timesteps/latent_shape needs the interceptor's payload_shape")
        channel = build_channel(settings.kind, settings.erasure_policy, settings.burst, settings.interleave)
        keep_bits = call is not None and call.keep_bits
        outcome = apply_to_payload(channel, request.payload, shape, settings.p, generator,
                                   keep_erased_positions=keep_bits)
        received = sjscc_pb2.EncodedFeature()
        received.CopyFrom(request)
        received.payload = outcome.payload
        if outcome.erasure_mask is not None:
            received.erasure_mask = outcome.erasure_mask
        report = ChannelReport(settings.kind, settings.p, seed if seed is not None else self.seed,
                               outcome.payload_bits, outcome.flipped_bits, outcome.erased_bits,
                               received.ByteSize(), (time.perf_counter() - start) * 1e3,
                               burst=settings.burst if settings.kind == "ge" else None,
                               interleave=settings.interleave)
        if keep_bits:
            report.sent_payload, report.received_payload = request.payload, outcome.payload
            report.erased_positions = outcome.erased_positions
        return received, report

    def transmit_step(self, request: sjscc_pb2.EncodedStep, settings: ChannelSettings,
                      generator: torch.Generator) -> tuple[sjscc_pb2.EncodedStep, ChannelReport]:
        """One step of a progressive stream as the edge receives it: the same channel on its ``[c2, h2, w2]``
        bits, drawing from ``generator`` (one per stream, so a seeded stream is reproducible step by step)."""
        start = time.perf_counter()
        channel = build_channel(settings.kind, settings.erasure_policy, settings.burst, settings.interleave)
        outcome = apply_to_payload(channel, request.payload, list(request.latent_shape), settings.p, generator)
        received = sjscc_pb2.EncodedStep()
        received.CopyFrom(request)
        received.payload = outcome.payload
        if outcome.erasure_mask is not None:
            received.erasure_mask = outcome.erasure_mask
        report = ChannelReport(settings.kind, settings.p, None, outcome.payload_bits, outcome.flipped_bits,
                               outcome.erased_bits, received.ByteSize(), (time.perf_counter() - start) * 1e3,
                               burst=settings.burst if settings.kind == "ge" else None,
                               interleave=settings.interleave)
        return received, report

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        if isinstance(request, sjscc_pb2.EncodedFeature):
            call = current_call.get()
            request, report = self.transmit(request, call)
            if call is not None:
                call.report = report
        return await continuation(client_call_details, request)


class DeadlineInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Gives every RPC made without a timeout the default one, so no call can hang on a dead edge."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        if client_call_details.timeout is None:
            client_call_details = client_call_details._replace(timeout=self.timeout_s)
        return await continuation(client_call_details, request)


class EdgeError(RuntimeError):
    """The edge could not answer this request."""


class EdgeUnavailableError(EdgeError):
    """The edge cannot be reached (down, restarting, wrong address) or did not answer in time."""


class EdgeTimeoutError(EdgeUnavailableError):
    """The edge took the whole deadline without answering (frozen, or far too slow)."""


class EdgeBusyError(EdgeUnavailableError):
    """The edge is at capacity and refused the request at once (RESOURCE_EXHAUSTED): try again shortly."""


class EdgeModelMismatchError(EdgeError):
    """The edge serves another model than this device's."""


class EdgeRejectedError(EdgeError):
    """The edge refused the request as malformed (a device/edge protocol disagreement)."""


@dataclass(frozen=True)
class ExpectedModel:
    """What this device sends: the edge must serve exactly this."""

    model_id: str
    codec: str
    timesteps: int
    latent_shape: tuple[int, ...]


@dataclass(frozen=True)
class EdgeAnswer:
    prediction: sjscc_pb2.Prediction
    channel: ChannelReport
    rpc_ms: float


class EdgeClient:
    """A long-lived connection to one edge, checked to serve :class:`ExpectedModel` before it is used.

    The check runs at startup and again after every connection loss or model refusal, so a device keeps
    running while the edge restarts and notices when the edge comes back with another model.

    ``compact`` requests (the default) carry the payload, the model id as 8 raw bytes (``model_key``) and
    ``top_k`` only: codec and shape are implied by the model id (a content hash over them), and the request id
    stays on the device. ``compact=False`` sends the full header of earlier versions (strings and
    lists), for edges that predate the compact form. docs/PERFORMANCE.md has the bytes each costs on TCP.
    """

    def __init__(self, address: str, expected: ExpectedModel, defaults: ChannelSettings, seed: int | None = None,
                 rpc_timeout_s: float = DEFAULT_RPC_TIMEOUT_S, tls: TLSSettings | None = None,
                 keepalive_s: float = DEFAULT_KEEPALIVE_S, compact: bool = True) -> None:
        if rpc_timeout_s <= 0:
            raise ValueError(f"rpc timeout must be positive, got {rpc_timeout_s}")
        if keepalive_s <= 0:
            raise ValueError(f"keepalive interval must be positive, got {keepalive_s}")
        self.tls = tls or TLSSettings()
        self.keepalive_s = keepalive_s
        self.address = address
        self.target = edge_target(address)  # raises a ValueError naming what is wrong with the address
        self.expected = expected
        self.channel_interceptor = ChannelInterceptor(defaults, seed,
                                                      (expected.timesteps, *expected.latent_shape))
        self.rpc_timeout_s = rpc_timeout_s
        self.compact = compact
        try:
            self._model_key: bytes | None = bytes.fromhex(expected.model_id)
        except ValueError:
            self._model_key = None  # not a hex content hash: only the full header can name it
        self.model_verified = False
        self._channel: grpc.aio.Channel | None = None
        self._stub: sjscc_pb2_grpc.EdgeInferenceStub | None = None
        self._health: health_pb2_grpc.HealthStub | None = None

    @property
    def defaults(self) -> ChannelSettings:
        return self.channel_interceptor.defaults

    async def open(self) -> None:
        """Create the channel (lazy: nothing is dialled until the first RPC)."""
        options = [*self.target.options, *keepalive_options(self.keepalive_s), *self.tls.channel_options()]
        interceptors = [DeadlineInterceptor(self.rpc_timeout_s), self.channel_interceptor]
        credentials = self.tls.channel_credentials()
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(self.target.target, options=options,
                                                      interceptors=interceptors)
        else:
            self._channel = grpc.aio.secure_channel(self.target.target, credentials, options=options,
                                                    interceptors=interceptors)
        self._stub = sjscc_pb2_grpc.EdgeInferenceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def _raise_for(self, error: grpc.aio.AioRpcError, what: str) -> NoReturn:
        code = error.code()
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise EdgeBusyError(f"edge at {self.address} is at capacity for {what}: {error.details()}") from None
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            self.model_verified = False
            raise EdgeTimeoutError(f"edge at {self.address} did not answer {what} within its deadline: "
                                   f"{code.name}: {error.details()}") from None
        # CANCELLED without our asking: the edge dropped the call while shutting down; it is unreachable, not wrong.
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            self.model_verified = False
            raise EdgeUnavailableError(f"edge at {self.address} unavailable during {what}: {code.name}: "
                                       f"{error.details()}") from None
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            self.model_verified = False
            raise EdgeModelMismatchError(f"edge at {self.address} refused {what}: {error.details()}") from None
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            raise EdgeRejectedError(f"edge at {self.address} rejected {what}: {error.details()}") from None
        raise EdgeError(f"edge at {self.address} failed {what}: {code.name}: {error.details()}") from None

    async def check_model(self, timeout_s: float | None = None) -> sjscc_pb2.ModelInfoReply:
        """Ask the edge what it serves; raise :class:`EdgeModelMismatchError` unless it is our model."""
        assert self._stub is not None, "call open() first"
        try:
            info = await self._stub.ModelInfo(sjscc_pb2.ModelInfoRequest(), timeout=timeout_s or self.rpc_timeout_s)
        except grpc.aio.AioRpcError as error:
            self._raise_for(error, "the model check")
        served = ExpectedModel(info.model_id, info.codec, info.timesteps, tuple(info.latent_shape))
        if served != self.expected:
            self.model_verified = False
            raise EdgeModelMismatchError(
                f"edge at {self.address} serves model {info.model_id} ({info.codec}, T={info.timesteps}, "
                f"latent {list(info.latent_shape)}) but this device holds model {self.expected.model_id} "
                f"({self.expected.codec}, T={self.expected.timesteps}, latent {list(self.expected.latent_shape)}); "
                f"refusing to send it bits"
            )
        if not self.model_verified:
            log.info("edge at %s serves model %s on %s", self.address, info.model_id, info.compute_device)
        self.model_verified = True
        return info

    async def is_serving(self, timeout_s: float = 1.0) -> bool:
        """The edge's grpc.health.v1 status (False when unreachable)."""
        assert self._health is not None, "call open() first"
        try:
            reply = await self._health.Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.aio.AioRpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def infer(self, payload: bytes, request_id: str, call: ChannelCall | None = None,
                    top_k: int = 5, timeout_s: float | None = None) -> EdgeAnswer:
        """Send one payload through the channel to the edge and wait (at most ``timeout_s``, by default the
        client's deadline) for its answer."""
        assert self._stub is not None, "call open() first"
        timeout_s = self.rpc_timeout_s if timeout_s is None else timeout_s
        if not self.model_verified:
            started = time.perf_counter()
            await self.check_model(timeout_s)
            timeout_s = max(timeout_s - (time.perf_counter() - started), 0.001)
        call = call or ChannelCall()
        if self.compact and self._model_key is not None:
            request = sjscc_pb2.EncodedFeature(payload=payload, model_key=self._model_key, top_k=top_k)
        else:
            request = sjscc_pb2.EncodedFeature(
                payload=payload,
                timesteps=self.expected.timesteps,
                latent_shape=list(self.expected.latent_shape),
                codec=self.expected.codec,
                model_id=self.expected.model_id,
                request_id=request_id,
                top_k=top_k,
            )
        token = current_call.set(call)
        start = time.perf_counter()
        try:
            prediction = await self._stub.Infer(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as error:
            self._raise_for(error, f"request {request_id}")
        finally:
            current_call.reset(token)
        rpc_ms = (time.perf_counter() - start) * 1e3
        if not prediction.request_id:
            prediction.request_id = request_id  # compact requests leave the id on the device
        if call.report is None:
            raise RuntimeError("the channel interceptor did not report on this request")
        return EdgeAnswer(prediction, call.report, rpc_ms - call.report.channel_ms)

    async def infer_progressive(self, steps: list[bytes], request_id: str, threshold: float,
                                call: ChannelCall | None = None, top_k: int = 5) -> ProgressiveAnswer:
        """Send ``steps`` one at a time on the ``InferProgressive`` stream, each through the client's channel, and
        stop after the first answer whose top-1 probability is >= ``threshold`` (or after the last step).

        The answers come back on the reverse direction of the stream, assumed error-free; only the device's bits
        cross the noisy channel. The whole exchange has one deadline, the client's RPC timeout.
        """
        assert self._stub is not None, "call open() first"
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"confidence threshold must be in (0, 1], got {threshold}")
        if not steps:
            raise ValueError("a progressive request needs at least one step")
        if not self.model_verified:
            await self.check_model()
        call = call or ChannelCall()
        settings = call.settings if call.settings is not None else self.defaults
        interceptor = self.channel_interceptor
        generator = torch.Generator().manual_seed(call.seed) if call.seed is not None else interceptor._stream
        expected = self.expected
        answers: list[StepAnswer] = []
        totals = ChannelReport(settings.kind, settings.p, call.seed if call.seed is not None else interceptor.seed,
                               0, 0, 0, 0, 0.0)
        start = time.perf_counter()
        stream = self._stub.InferProgressive(timeout=self.rpc_timeout_s)
        try:
            for index, payload in enumerate(steps, start=1):
                message = sjscc_pb2.EncodedStep(payload=payload, step=index, timesteps=expected.timesteps,
                                                latent_shape=list(expected.latent_shape), codec=expected.codec,
                                                model_id=expected.model_id, request_id=request_id, top_k=top_k)
                received, report = interceptor.transmit_step(message, settings, generator)
                for name in ("payload_bits", "flipped_bits", "erased_bits", "wire_bytes", "channel_ms"):
                    setattr(totals, name, getattr(totals, name) + getattr(report, name))
                await stream.write(received)
                reply = await stream.read()
                if reply is grpc.aio.EOF:
                    raise EdgeError(f"edge at {self.address} closed the stream of {request_id} after step {index}")
                answers.append(StepAnswer(index, reply, report.flipped_bits, report.erased_bits))
                if answers[-1].confidence >= threshold:
                    break
            await stream.done_writing()
            if await stream.read() is not grpc.aio.EOF:
                raise EdgeError(f"edge at {self.address} answered more steps of {request_id} than were sent")
        except grpc.aio.AioRpcError as error:
            self._raise_for(error, f"progressive request {request_id}")
        finally:
            stream.cancel()  # a no-op once the stream has ended; frees it on an error path
        rpc_ms = (time.perf_counter() - start) * 1e3 - totals.channel_ms
        return ProgressiveAnswer(answers, totals, rpc_ms, threshold)


# --- progressive transmission ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepAnswer:
    """The edge's answer after one step, and what the channel did to that step's bits."""

    step: int
    prediction: sjscc_pb2.StepPrediction
    flipped_bits: int
    erased_bits: int

    @property
    def confidence(self) -> float:
        return float(self.prediction.top[0].prob) if self.prediction.top else 0.0


@dataclass(frozen=True)
class ProgressiveAnswer:
    """A whole progressive exchange: one answer per step sent; ``channel`` sums the steps actually sent."""

    steps: list[StepAnswer]
    channel: ChannelReport
    rpc_ms: float
    threshold: float

    @property
    def prediction(self) -> sjscc_pb2.StepPrediction:
        return self.steps[-1].prediction

    @property
    def confident(self) -> bool:
        return self.steps[-1].confidence >= self.threshold
