"""The device's gRPC client for the edge: :class:`EdgeClient` and the errors it raises.

Every RPC has a deadline (:class:`DeadlineInterceptor`); :meth:`EdgeClient.infer` takes what is left of the
request's time budget as its deadline, so the edge stops working on a request the device has given up on.
Every payload leaves through the link (:mod:`sjscc.device.link`), whole or step by step; where the edge is and
how the connection is kept alive: :mod:`sjscc.device.edge_target`; TLS and mutual TLS: :mod:`sjscc.common.tls`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sjscc.common.tls import TLSSettings
from sjscc.device.edge_target import DEFAULT_KEEPALIVE_S, DeadlineInterceptor, edge_target, keepalive_options
from sjscc.device.link import ChannelCall, ChannelInterceptor, ChannelSettings, current_call
from sjscc.device.replies import EdgeAnswer, ProgressiveAnswer, StepAnswer
from sjscc.proto import sjscc_pb2, sjscc_pb2_grpc

if TYPE_CHECKING:
    from sjscc.common.channels.coding import CodedLink

log = logging.getLogger("sjscc.device")

DEFAULT_RPC_TIMEOUT_S = 5.0


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


# gRPC status -> (error, message, whether the model must be checked again). CANCELLED without our asking: the
# edge dropped the call while shutting down; it is unreachable, not wrong.
RPC_ERRORS: dict[grpc.StatusCode, tuple[type[EdgeError], str, bool]] = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: (EdgeBusyError, "is at capacity for {what}:", False),
    grpc.StatusCode.DEADLINE_EXCEEDED: (EdgeTimeoutError, "did not answer {what} within its deadline: {code}:", True),
    grpc.StatusCode.UNAVAILABLE: (EdgeUnavailableError, "unavailable during {what}: {code}:", True),
    grpc.StatusCode.CANCELLED: (EdgeUnavailableError, "unavailable during {what}: {code}:", True),
    grpc.StatusCode.FAILED_PRECONDITION: (EdgeModelMismatchError, "refused {what}:", True),
    grpc.StatusCode.INVALID_ARGUMENT: (EdgeRejectedError, "rejected {what}:", False),
}


@dataclass(frozen=True)
class ExpectedModel:
    """What this device sends: the edge must serve exactly this."""

    model_id: str
    codec: str
    timesteps: int
    latent_shape: tuple[int, ...]


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
                 keepalive_s: float = DEFAULT_KEEPALIVE_S, compact: bool = True, code: CodedLink | None = None) -> None:
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
                                                      (expected.timesteps, *expected.latent_shape), code)
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
        interceptors = [DeadlineInterceptor(self.rpc_timeout_s), self.channel_interceptor,
                        self.channel_interceptor.streams]
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
        """The :class:`EdgeError` for a failed RPC; an error that may mean another edge forgets the model check."""
        code = error.code()
        kind, wording, recheck = RPC_ERRORS.get(code, (EdgeError, "failed {what}: {code}:", False))
        if recheck:
            self.model_verified = False
        raise kind(f"edge at {self.address} {wording.format(what=what, code=code.name)} {error.details()}") from None

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
        """Send ``steps`` one at a time on the ``InferProgressive`` stream, each through the link, and stop after
        the first answer whose top-1 probability is >= ``threshold`` (or after the last step).

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
        expected = self.expected
        answers: list[StepAnswer] = []
        token = current_call.set(call)  # the link's stream side reads it when the stream starts
        start = time.perf_counter()
        try:
            stream = self._stub.InferProgressive(timeout=self.rpc_timeout_s)
        finally:
            current_call.reset(token)
        try:
            for index, payload in enumerate(steps, start=1):
                await stream.write(sjscc_pb2.EncodedStep(
                    payload=payload, step=index, timesteps=expected.timesteps, latent_shape=list(expected.latent_shape),
                    codec=expected.codec, model_id=expected.model_id, request_id=request_id, top_k=top_k))
                reply = await stream.read()
                if reply is grpc.aio.EOF:
                    raise EdgeError(f"edge at {self.address} closed the stream of {request_id} after step {index}")
                report = call.steps[index - 1]  # the edge answered step index, so the link has sent it
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
        if call.report is None:
            raise RuntimeError("the channel interceptor did not report on this stream")
        rpc_ms = (time.perf_counter() - start) * 1e3 - call.report.channel_ms
        return ProgressiveAnswer(answers, call.report, rpc_ms, threshold)
