"""The device's gRPC client for the edge. The digital channel lives here, as a client interceptor.

:class:`ChannelInterceptor` *is* the link between device and edge: every ``EncodedFeature`` leaving the
device passes through it, and it corrupts the payload bits (BSC flips, BEC erases) and nothing else; the
header fields (shape, model id) travel as a protected control channel. Its settings are the deployment's
(``--channel/--p/--seed`` or ``SJSCC_*``), overridable per request; what it did (bits flipped, erased)
comes back to the caller through :class:`ChannelCall`, which the caller puts in a context variable for
the duration of one RPC. Every RPC has a deadline (:class:`DeadlineInterceptor`).
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import NoReturn

import grpc
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sjscc.common.channels import CHANNELS, apply_to_payload, build_channel, check_probability
from sjscc.proto import sjscc_pb2, sjscc_pb2_grpc

log = logging.getLogger("sjscc.device")

DEFAULT_RPC_TIMEOUT_S = 5.0
MAX_SEED = 2**63 - 1
# Reconnect quickly after the edge restarts, instead of gRPC's default backoff of up to two minutes.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


@dataclass(frozen=True)
class ChannelSettings:
    """Which channel corrupts the payload: ``kind`` (none, bsc, bec), probability ``p``, BEC erasure policy."""

    kind: str = "none"
    p: float = 0.0
    erasure_policy: str = "random"

    def __post_init__(self) -> None:
        build_channel(self.kind, self.erasure_policy)  # raises a ValueError naming the unknown kind/policy
        object.__setattr__(self, "p", check_probability(self.p))


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


def settings_for_request(defaults: ChannelSettings, channel: str | None = None,
                         p: str | float | None = None) -> ChannelSettings:
    """The deployment's settings with this request's ``channel`` and/or ``p`` put in (each optional)."""
    if channel is not None and channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
    changes: dict[str, object] = {}
    if channel is not None:
        changes["kind"] = channel
    if p is not None:
        changes["p"] = parse_probability(p)
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


@dataclass
class ChannelCall:
    """One RPC's channel: its settings and seed going in, the interceptor's report coming out.

    ``seed=None`` draws from the deployment's random stream; a seed makes this request's corruption
    reproducible on its own.
    """

    settings: ChannelSettings | None = None
    seed: int | None = None
    report: ChannelReport | None = None


# grpc.aio runs interceptors in a task created by the call, which copies the caller's context: the
# interceptor sees the caller's ChannelCall and writes its report into that same object.
current_call: contextvars.ContextVar[ChannelCall | None] = contextvars.ContextVar("sjscc_channel_call",
                                                                                 default=None)


class ChannelInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """The channel between device and edge: BSC/BEC on the payload bits of every ``EncodedFeature``."""

    def __init__(self, defaults: ChannelSettings, seed: int | None = None) -> None:
        self.defaults = defaults
        self.seed = seed
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
        shape = [request.timesteps, *request.latent_shape]
        channel = build_channel(settings.kind, settings.erasure_policy)
        outcome = apply_to_payload(channel, request.payload, shape, settings.p, generator)
        received = sjscc_pb2.EncodedFeature()
        received.CopyFrom(request)
        received.payload = outcome.payload
        if outcome.erasure_mask is not None:
            received.erasure_mask = outcome.erasure_mask
        report = ChannelReport(settings.kind, settings.p, seed if seed is not None else self.seed,
                               outcome.payload_bits, outcome.flipped_bits, outcome.erased_bits,
                               received.ByteSize(), (time.perf_counter() - start) * 1e3)
        return received, report

    def transmit_step(self, request: sjscc_pb2.EncodedStep, settings: ChannelSettings,
                      generator: torch.Generator) -> tuple[sjscc_pb2.EncodedStep, ChannelReport]:
        """One step of a progressive stream as the edge receives it: the same channel on its ``[c2, h2, w2]``
        bits, drawing from ``generator`` (one per stream, so a seeded stream is reproducible step by step)."""
        start = time.perf_counter()
        channel = build_channel(settings.kind, settings.erasure_policy)
        outcome = apply_to_payload(channel, request.payload, list(request.latent_shape), settings.p, generator)
        received = sjscc_pb2.EncodedStep()
        received.CopyFrom(request)
        received.payload = outcome.payload
        if outcome.erasure_mask is not None:
            received.erasure_mask = outcome.erasure_mask
        report = ChannelReport(settings.kind, settings.p, None, outcome.payload_bits, outcome.flipped_bits,
                               outcome.erased_bits, received.ByteSize(), (time.perf_counter() - start) * 1e3)
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
    """

    def __init__(self, address: str, expected: ExpectedModel, defaults: ChannelSettings, seed: int | None = None,
                 rpc_timeout_s: float = DEFAULT_RPC_TIMEOUT_S) -> None:
        if rpc_timeout_s <= 0:
            raise ValueError(f"rpc timeout must be positive, got {rpc_timeout_s}")
        self.address = address
        self.expected = expected
        self.channel_interceptor = ChannelInterceptor(defaults, seed)
        self.rpc_timeout_s = rpc_timeout_s
        self.model_verified = False
        self._channel: grpc.aio.Channel | None = None
        self._stub: sjscc_pb2_grpc.EdgeInferenceStub | None = None
        self._health: health_pb2_grpc.HealthStub | None = None

    @property
    def defaults(self) -> ChannelSettings:
        return self.channel_interceptor.defaults

    async def open(self) -> None:
        """Create the channel (lazy: nothing is dialled until the first RPC)."""
        self._channel = grpc.aio.insecure_channel(
            self.address, options=list(CHANNEL_OPTIONS),
            interceptors=[DeadlineInterceptor(self.rpc_timeout_s), self.channel_interceptor],
        )
        self._stub = sjscc_pb2_grpc.EdgeInferenceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def _raise_for(self, error: grpc.aio.AioRpcError, what: str) -> NoReturn:
        code = error.code()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            self.model_verified = False
            raise EdgeUnavailableError(f"edge at {self.address} unavailable during {what}: {code.name}: "
                                       f"{error.details()}") from None
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            self.model_verified = False
            raise EdgeModelMismatchError(f"edge at {self.address} refused {what}: {error.details()}") from None
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            raise EdgeRejectedError(f"edge at {self.address} rejected {what}: {error.details()}") from None
        raise EdgeError(f"edge at {self.address} failed {what}: {code.name}: {error.details()}") from None

    async def check_model(self) -> sjscc_pb2.ModelInfoReply:
        """Ask the edge what it serves; raise :class:`EdgeModelMismatchError` unless it is our model."""
        assert self._stub is not None, "call open() first"
        try:
            info = await self._stub.ModelInfo(sjscc_pb2.ModelInfoRequest(), timeout=self.rpc_timeout_s)
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
                    top_k: int = 5) -> EdgeAnswer:
        """Send one payload through the channel to the edge and wait (at most the deadline) for its answer."""
        assert self._stub is not None, "call open() first"
        if not self.model_verified:
            await self.check_model()
        call = call or ChannelCall()
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
            prediction = await self._stub.Infer(request, timeout=self.rpc_timeout_s)
        except grpc.aio.AioRpcError as error:
            self._raise_for(error, f"request {request_id}")
        finally:
            current_call.reset(token)
        rpc_ms = (time.perf_counter() - start) * 1e3
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
