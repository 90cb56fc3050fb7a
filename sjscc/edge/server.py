"""The edge's gRPC server (grpc.aio): protobuf <-> :mod:`sjscc.edge.pipeline`, errors <-> status codes.

Besides ``sjscc.v1.EdgeInference`` it serves the standard ``grpc.health.v1`` health service (SERVING
once the model is loaded, NOT_SERVING while shutting down) and server reflection. SIGTERM or SIGINT
first turns health to NOT_SERVING (and keeps serving for ``drain_delay_s``, so load balancers notice), then
stops accepting new RPCs, lets the ones in flight finish (``grace_s``), then exits.

Hostile input: a request larger than the model's payload allows is refused by gRPC itself
(RESOURCE_EXHAUSTED, before it is buffered); bytes that are not a protobuf are INVALID_ARGUMENT (requests
are parsed here, not by the generated stub, whose parse failure would be INTERNAL); a full queue is
RESOURCE_EXHAUSTED at once; every error message is bounded in size. Optional TLS / mutual TLS
(:mod:`sjscc.common.tls`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from sjscc.common.channels.radio import SOFT_BITS_RANGE, soft_levels_bytes
from sjscc.common.tls import TLSSettings
from sjscc.edge.batching import Batched, BatcherClosedError, BatcherFullError, MicroBatcher
from sjscc.edge.pipeline import (
    DecodedRequest,
    EdgePipeline,
    EdgePrediction,
    EncodedRequest,
    EncodedStepRequest,
    ModelMismatchError,
    ProgressiveSession,
    RequestError,
    decode_step,
    predict_prefixes,
)
from sjscc.proto import sjscc_pb2, sjscc_pb2_grpc

Decoded = TypeVar("Decoded")
log = logging.getLogger("sjscc.edge")

SERVICE_NAME = sjscc_pb2.DESCRIPTOR.services_by_name["EdgeInference"].full_name
MAX_ERROR_CHARS = 512
# Header fields (model id, codec, request id, shape) of a well-formed request fit easily in this.
HEADER_ALLOWANCE_BYTES = 4096
# Answer a client's keepalive pings (the device pings every few seconds to notice a dead connection).
KEEPALIVE_SERVER_OPTIONS = (
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
)


def bounded(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """An error message cut to ``limit`` characters: it may quote a megabyte-long field of the request."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def max_request_bytes(pipeline: EdgePipeline) -> int:
    """The largest request the model can need: its payload with an erasure mask as long, or a soft-decision payload
    of the widest LLR levels (8 bits per payload bit), and the header."""
    bits = max(pipeline.payload_bits, pipeline.code.n if pipeline.code is not None else 0)
    payload_bytes = (bits + 7) // 8
    return max(2 * payload_bytes, soft_levels_bytes(bits, SOFT_BITS_RANGE[1])) + HEADER_ALLOWANCE_BYTES


def _header(message: sjscc_pb2.EncodedFeature | sjscc_pb2.EncodedStep) -> dict:
    """The fields ``EncodedFeature`` and ``EncodedStep`` share, as :class:`EncodedRequest` names them."""
    return dict(
        payload=message.payload,
        timesteps=message.timesteps,
        latent_shape=tuple(message.latent_shape),
        codec=message.codec,
        model_id=message.model_id,
        request_id=message.request_id,
        erasure_mask=message.erasure_mask if message.HasField("erasure_mask") else None,
        top_k=message.top_k,
        soft_bits=getattr(message, "soft_bits", 0),  # EncodedFeature only: steps carry bits
    )


def _coded_fields(message: sjscc_pb2.EncodedFeature) -> dict:
    """Separate coding: the coded block's size, the hard-decision reliability and the failure policy."""
    return dict(coded_bits=message.coded_bits, hard_llr=message.hard_llr, on_failure=message.on_failure)


def request_from_proto(message: sjscc_pb2.EncodedFeature) -> EncodedRequest:
    fields = {**_header(message), **_coded_fields(message)}
    fields["model_id"] = fields["model_id"] or message.model_key.hex()  # a compact request names it in 8 bytes
    return EncodedRequest(**fields)


def step_request_from_proto(message: sjscc_pb2.EncodedStep) -> EncodedStepRequest:
    return EncodedStepRequest(**_header(message), step=message.step)


def edge_instance() -> str:
    """This replica's name for ``Prediction.instance``: ``SJSCC_INSTANCE``, else the host name (a container's
    or pod's), so a device balancing over several edges can tell which one answered."""
    return os.environ.get("SJSCC_INSTANCE", "").strip() or socket.gethostname()


def _prediction_fields(batched: Batched[EdgePrediction], model_id: str, compute_device: str,
                       instance: str) -> dict:
    """The fields ``Prediction`` and ``StepPrediction`` share."""
    prediction = batched.value
    return dict(
        request_id=prediction.request_id,
        model_id=model_id,
        top=[sjscc_pb2.ClassScore(label=s.label, prob=s.prob, class_index=s.class_index) for s in prediction.top],
        edge_compute_ms=prediction.edge_compute_ms,
        queue_ms=batched.queue_ms,
        batch_size=batched.batch_size,
        compute_device=compute_device,
        instance=instance,
    )


def prediction_to_proto(batched: Batched[EdgePrediction], model_id: str, compute_device: str,
                        instance: str = "") -> sjscc_pb2.Prediction:
    reply = sjscc_pb2.Prediction(**_prediction_fields(batched, model_id, compute_device, instance))
    if batched.value.decoded is not None:  # a coded block: say whether it decoded and what the edge did if not
        reply.block_decoded = batched.value.decoded
        reply.on_failure = batched.value.on_failure
    return reply


def step_prediction_to_proto(batched: Batched[EdgePrediction], step: int, model_id: str,
                             compute_device: str, instance: str = "") -> sjscc_pb2.StepPrediction:
    return sjscc_pb2.StepPrediction(step=step, **_prediction_fields(batched, model_id, compute_device, instance))


class EdgeInferenceService(sjscc_pb2_grpc.EdgeInferenceServicer):
    """Validate each request on arrival (cheap, per request), then let the batcher run the model.

    Steps of progressive streams go to their own batcher (``step_batcher``), whose batch function groups them by
    prefix length (:func:`~sjscc.edge.pipeline.predict_prefixes`).
    """

    def __init__(self, pipeline: EdgePipeline, batcher: MicroBatcher[DecodedRequest, EdgePrediction],
                 step_batcher: MicroBatcher[DecodedRequest, EdgePrediction] | None = None) -> None:
        self.pipeline = pipeline
        self.batcher = batcher
        self.instance = edge_instance()
        self.step_batcher = step_batcher or MicroBatcher(functools.partial(predict_prefixes, pipeline),
                                                         batcher.max_batch_size, batcher.max_wait_s * 1e3,
                                                         max_queue=batcher.max_queue)

    async def Infer(self, request: sjscc_pb2.EncodedFeature, context: grpc.aio.ServicerContext) -> sjscc_pb2.Prediction:
        decoded = await self._decode(context, lambda: self.pipeline.decode(request_from_proto(request)))
        batched = await self._submit(context, self.batcher, decoded, request.request_id)
        return prediction_to_proto(batched, self.pipeline.model_id, str(self.pipeline.device), self.instance)

    @staticmethod
    async def _decode(context: grpc.aio.ServicerContext, decode: Callable[[], Decoded]) -> Decoded:
        """Run ``decode``; a malformed request is INVALID_ARGUMENT, another model's FAILED_PRECONDITION."""
        try:
            return decode()
        except RequestError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, bounded(str(error)))
        except ModelMismatchError as error:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, bounded(str(error)))
        raise AssertionError("context.abort raises")

    @staticmethod
    async def _submit(context: grpc.aio.ServicerContext, batcher: MicroBatcher[DecodedRequest, EdgePrediction],
                      decoded: DecodedRequest, request_id: str) -> Batched[EdgePrediction]:
        """Wait for ``decoded``'s batch; a full queue is RESOURCE_EXHAUSTED, a closing edge UNAVAILABLE."""
        try:
            return await batcher.submit(decoded)
        except BatcherFullError as error:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
        except BatcherClosedError as error:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
        except Exception as error:  # noqa: BLE001 - the model failed (e.g. out of GPU memory): say so, keep serving
            log.exception("forward pass failed for request %s", bounded(request_id, 64))
            await context.abort(grpc.StatusCode.INTERNAL, bounded(f"the edge failed to run the model: {error}"))
        raise AssertionError("context.abort raises")

    async def infer_bytes(self, data: bytes, context: grpc.aio.ServicerContext) -> sjscc_pb2.Prediction:
        """``Infer`` on the raw request bytes: a body that is not an ``EncodedFeature`` is the caller's error."""
        request = sjscc_pb2.EncodedFeature()
        try:
            request.ParseFromString(data)
        except DecodeError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                bounded(f"the request ({len(data)} bytes) is not an sjscc.v1.EncodedFeature: {error}"))
        return await self.Infer(request, context)

    async def InferProgressive(self, request_iterator: AsyncIterator[sjscc_pb2.EncodedStep],
                               context: grpc.aio.ServicerContext) -> AsyncIterator[sjscc_pb2.StepPrediction]:
        session: ProgressiveSession | None = None
        async for message in request_iterator:
            step = step_request_from_proto(message)
            session, decoded = await self._decode(
                context, lambda step=step, previous=session: decode_step(self.pipeline, previous, step))
            batched = await self._submit(context, self.step_batcher, decoded, message.request_id)
            yield step_prediction_to_proto(batched, len(session.steps), self.pipeline.model_id,
                                           str(self.pipeline.device), self.instance)

    async def ModelInfo(self, request: sjscc_pb2.ModelInfoRequest,
                        context: grpc.aio.ServicerContext) -> sjscc_pb2.ModelInfoReply:
        pipeline = self.pipeline
        return sjscc_pb2.ModelInfoReply(
            model_id=pipeline.model_id,
            codec=pipeline.codec,
            timesteps=pipeline.timesteps,
            latent_shape=list(pipeline.latent_shape),
            payload_bits=pipeline.payload_bits,
            classes=pipeline.classes,
            compute_device=str(pipeline.device),
            max_batch_size=self.batcher.max_batch_size,
        )


def add_service(service: EdgeInferenceService, server: grpc.aio.Server) -> None:
    """Register ``sjscc.v1.EdgeInference`` with ``Infer`` taking raw bytes (see :meth:`infer_bytes`);
    ``ModelInfo`` and the ``InferProgressive`` stream use the generated deserializers."""
    handlers = {
        "Infer": grpc.unary_unary_rpc_method_handler(
            service.infer_bytes, request_deserializer=None,
            response_serializer=sjscc_pb2.Prediction.SerializeToString),
        "ModelInfo": grpc.unary_unary_rpc_method_handler(
            service.ModelInfo, request_deserializer=sjscc_pb2.ModelInfoRequest.FromString,
            response_serializer=sjscc_pb2.ModelInfoReply.SerializeToString),
        "InferProgressive": grpc.stream_stream_rpc_method_handler(
            service.InferProgressive, request_deserializer=sjscc_pb2.EncodedStep.FromString,
            response_serializer=sjscc_pb2.StepPrediction.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


async def serve(pipeline: EdgePipeline, host: str = "127.0.0.1", port: int = 50051, max_batch_size: int = 8,
                max_wait_ms: float = 2.0, grace_s: float = 5.0,
                on_ready: Callable[[int], None] | None = None, stop: asyncio.Event | None = None,
                max_queue: int = 64, drain_delay_s: float = 0.0, tls: TLSSettings | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set); ``on_ready`` gets the bound port."""
    credentials = (tls or TLSSettings()).server_credentials()  # file errors surface before the model loads
    batcher: MicroBatcher[DecodedRequest, EdgePrediction] = MicroBatcher(pipeline.predict, max_batch_size, max_wait_ms,
                                                                         max_queue=max_queue)
    limit = max_request_bytes(pipeline)
    # so_reuseport off: a second edge on the same port must fail to start, not silently share it.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", limit),
                                      *KEEPALIVE_SERVER_OPTIONS])
    service = EdgeInferenceService(pipeline, batcher)
    add_service(service, server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    address = _bind_address(host, port)
    try:
        bound = (server.add_secure_port(address, credentials) if credentials is not None
                 else server.add_insecure_port(address))
    except RuntimeError as error:
        raise ValueError(f"cannot listen on {address}: {error}") from None
    if bound == 0:
        raise ValueError(f"cannot listen on {address}")

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    pipeline.warmup()
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    await health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    log.info("edge serving model %s (%s, %d payload bits) on %s (%s), compute on %s, batches of <= %d within %.1f ms, "
             "queue <= %d, requests <= %d bytes", pipeline.model_id, pipeline.codec, pipeline.payload_bits,
             _bind_address(host, bound), "plaintext" if credentials is None else "TLS", pipeline.device,
             max_batch_size, max_wait_ms, max_queue, limit)
    if on_ready is not None:
        on_ready(bound)
    try:
        await stop.wait()
    finally:
        await health.enter_graceful_shutdown()  # NOT_SERVING first, so load balancers stop sending
        log.info("edge shutting down: NOT_SERVING; draining RPCs in flight (%.1f s delay, up to %.1f s grace)",
                 drain_delay_s, grace_s)
        if drain_delay_s > 0:
            await asyncio.sleep(drain_delay_s)
        await server.stop(grace_s)
        await batcher.close()
        await service.step_batcher.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        log.info("edge stopped")
