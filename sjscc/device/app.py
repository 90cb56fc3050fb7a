"""The device's REST endpoint (FastAPI), translation only: HTTP <-> :mod:`sjscc.device.pipeline` and
:mod:`sjscc.device.client`, exceptions <-> status codes, results <-> the JSON answer of DESIGN.md.

``POST /v1/classify`` (multipart field ``image``; query ``channel``, ``p``, ``seed``), ``GET /healthz``,
``GET /metrics``. Every failure is a JSON ``{"detail": "..."}`` that says what went wrong: 400 bad
parameter or empty upload, 413 too large, 415 not an image, 502 the edge refused (other model), 503 the
edge is unreachable (the gRPC channel reconnects by itself; nothing to restart), 504 the edge timed out.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from sjscc.device.client import (
    ChannelCall,
    EdgeClient,
    EdgeError,
    EdgeModelMismatchError,
    EdgeRejectedError,
    EdgeUnavailableError,
    ProgressiveAnswer,
    parse_seed,
    settings_for_request,
)
from sjscc.device.metrics import DeviceMetrics
from sjscc.device.pipeline import (
    DevicePipeline,
    EmptyImageError,
    EncodedImage,
    ImageTooLargeError,
    NotAnImageError,
    split_steps,
)

log = logging.getLogger("sjscc.device")

# Most specific first: (exception, HTTP status, metrics label).
ERROR_STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (EmptyImageError, 400, "empty_image"),
    (ImageTooLargeError, 413, "image_too_large"),
    (NotAnImageError, 415, "not_an_image"),
    (EdgeModelMismatchError, 502, "model_mismatch"),
    (EdgeRejectedError, 502, "edge_rejected"),
    (EdgeUnavailableError, 503, "edge_unavailable"),
    (EdgeError, 502, "edge_error"),
)
MULTIPART_OVERHEAD_BYTES = 64 * 1024
TOP_K = 5
MODES = ("fixed", "progressive")
DEFAULT_CONFIDENCE = 0.9


def _ms(value: float) -> float:
    return round(value, 3)


def create_app(pipeline: DevicePipeline, client: EdgeClient) -> FastAPI:
    """The device app for one pipeline (model) and one edge connection."""
    metrics = DeviceMetrics()
    max_upload_bytes = pipeline.max_image_bytes + MULTIPART_OVERHEAD_BYTES

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await client.open()
        try:
            await client.check_model()  # EdgeModelMismatchError propagates: the device refuses to start
        except EdgeUnavailableError as error:
            log.warning("%s; the model will be checked when the edge is reachable", error)
        try:
            yield
        finally:
            await client.close()

    app = FastAPI(title="sjscc device", summary="image -> spikes -> bits over a noisy channel -> edge -> label",
                  lifespan=lifespan)

    def fail(status: int, kind: str, detail: str) -> HTTPException:
        metrics.observe_error(status, kind)
        return HTTPException(status_code=status, detail=detail,
                             headers={"Retry-After": "1"} if status == 503 else None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors())
        metrics.observe_error(422, "bad_request")
        return JSONResponse({"detail": f"invalid request: {problems}"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        metrics.observe_error(500, "internal")
        return JSONResponse({"detail": "internal error on the device; see its log"}, status_code=500)

    @app.middleware("http")
    async def refuse_oversized_uploads(request: Request, call_next):
        """Refuse a body announced as too large before it is read and spooled."""
        length = request.headers.get("content-length", "")
        if request.url.path == "/v1/classify" and length.isdigit() and int(length) > max_upload_bytes:
            metrics.observe_error(413, "image_too_large")
            return JSONResponse({"detail": f"the upload is {length} bytes; the limit is "
                                           f"{pipeline.max_image_bytes} bytes of image"}, status_code=413)
        return await call_next(request)

    @app.post("/v1/classify")
    async def classify(
        image: Annotated[UploadFile | None, File(description="the picture, any format Pillow reads")] = None,
        channel: Annotated[str | None, Query(description="none, bsc or bec (default: the deployment's)")] = None,
        p: Annotated[str | None, Query(description="flip/erasure probability in [0, 1]")] = None,
        seed: Annotated[str | None, Query(description="seed for a reproducible channel draw")] = None,
        mode: Annotated[str | None, Query(description="fixed (all T steps, default) or progressive (a "
                                                      "progressive bundle only: stop once the edge is confident)")]
        = None,
        confidence: Annotated[str | None, Query(description="progressive mode: stop once the top-1 probability "
                                                            f"reaches this, in (0, 1]; default {DEFAULT_CONFIDENCE}")]
        = None,
    ) -> dict:
        start = time.perf_counter()
        try:
            call = ChannelCall(settings_for_request(client.defaults, channel, p), parse_seed(seed))
            threshold = progressive_threshold(pipeline, mode, confidence)
        except ValueError as error:
            raise fail(400, "bad_parameter", str(error)) from None
        if image is None:
            raise fail(400, "missing_image", "multipart form field 'image' is required")
        request_id = uuid.uuid4().hex
        if threshold is not None:
            return await classify_progressive(image, call, threshold, request_id, start)
        try:
            encoded = await run_in_threadpool(pipeline.encode_image, await image.read())
            answer = await client.infer(encoded.payload, request_id, call, top_k=TOP_K)
        except tuple(e for e, _, _ in ERROR_STATUS) as error:
            status, kind = next((s, k) for e, s, k in ERROR_STATUS if isinstance(error, e))
            raise fail(status, kind, str(error)) from None
        prediction, report = answer.prediction, answer.channel
        top = [{"label": s.label, "prob": round(s.prob, 6), "class_index": s.class_index} for s in prediction.top]
        latency_ms = {
            "device_compute": _ms(encoded.device_compute_ms),
            "pack": _ms(encoded.pack_ms),
            "channel": _ms(report.channel_ms),
            "rpc": _ms(answer.rpc_ms),
            "edge_compute": _ms(prediction.edge_compute_ms),
            "total": _ms((time.perf_counter() - start) * 1e3),
        }
        metrics.observe_success(report.kind, report.payload_bits, report.wire_bytes, report.flipped_bits,
                                report.erased_bits, latency_ms)
        return {
            "request_id": request_id,
            "label": top[0]["label"],
            "class_index": top[0]["class_index"],
            "top": top,
            "model_id": prediction.model_id,
            "bits": {
                "payload_bits": report.payload_bits,
                "timesteps": pipeline.timesteps,
                "latent_shape": list(pipeline.latent_shape),
                "wire_bytes": report.wire_bytes,
                "firing_rate": round(encoded.firing_rate, 6),
            },
            "channel": {"kind": report.kind, "p": report.p, "seed": report.seed,
                        "flipped_bits": report.flipped_bits, "erased_bits": report.erased_bits},
            "latency_ms": latency_ms,
            "edge": {"batch_size": prediction.batch_size, "queue_ms": _ms(prediction.queue_ms),
                     "compute_device": prediction.compute_device},
        }

    async def classify_progressive(image: UploadFile, call: ChannelCall, threshold: float, request_id: str,
                                   start: float) -> dict:
        """``mode=progressive``: stream the steps, stop when the edge is confident; the answer adds what was sent."""
        try:
            encoded = await run_in_threadpool(pipeline.encode_image, await image.read())
            answer = await client.infer_progressive(split_steps(encoded), request_id, threshold, call, top_k=TOP_K)
        except tuple(e for e, _, _ in ERROR_STATUS) as error:
            status, kind = next((s, k) for e, s, k in ERROR_STATUS if isinstance(error, e))
            raise fail(status, kind, str(error)) from None
        return progressive_answer(pipeline, encoded, answer, request_id, start, metrics)

    @app.get("/healthz")
    async def healthz() -> dict:
        serving = await client.is_serving(timeout_s=0.5)
        return {
            "status": "ok" if serving else "degraded",
            "model_id": pipeline.model_id,
            "edge": {"address": client.address, "serving": serving, "model_verified": client.model_verified},
        }

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    app.state.metrics = metrics
    return app


def progressive_threshold(pipeline: DevicePipeline, mode: str | None, confidence: str | None) -> float | None:
    """The confidence threshold of a ``mode=progressive`` request, None for the fixed mode; ValueError (400)
    for an unknown mode, a bad threshold, a threshold without the progressive mode, or a fixed-T bundle."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use {' or '.join(MODES)}")
    if mode != "progressive":
        if confidence is not None:
            raise ValueError("confidence applies to mode=progressive only")
        return None
    if not pipeline.progressive:
        raise ValueError(f"mode=progressive needs a progressive bundle (codec snn-progressive); this device serves "
                         f"model {pipeline.model_id} with the fixed-T codec {pipeline.codec!r}, which always sends "
                         f"all {pipeline.timesteps} steps")
    if confidence is None:
        return DEFAULT_CONFIDENCE
    try:
        value = float(confidence.strip())
    except ValueError:
        raise ValueError(f"confidence must be a number in (0, 1], got {confidence!r}") from None
    if not 0.0 < value <= 1.0:
        raise ValueError(f"confidence must be in (0, 1], got {confidence!r}")
    return value


def progressive_answer(pipeline: DevicePipeline, encoded: EncodedImage, answer: ProgressiveAnswer, request_id: str,
                       start: float, metrics: DeviceMetrics) -> dict:
    """The JSON answer of a progressive request: the usual fields (bits = those actually sent) plus
    ``progressive`` with the steps sent, the bits saved and the edge's confidence after each step."""
    prediction, report = answer.prediction, answer.channel
    steps_sent = len(answer.steps)
    top = [{"label": s.label, "prob": round(s.prob, 6), "class_index": s.class_index} for s in prediction.top]
    edge_compute = sum(step.prediction.edge_compute_ms for step in answer.steps)
    latency_ms = {
        "device_compute": _ms(encoded.device_compute_ms),
        "pack": _ms(encoded.pack_ms),
        "channel": _ms(report.channel_ms),
        "rpc": _ms(answer.rpc_ms),
        "edge_compute": _ms(edge_compute),
        "total": _ms((time.perf_counter() - start) * 1e3),
    }
    metrics.observe_success(report.kind, report.payload_bits, report.wire_bytes, report.flipped_bits,
                            report.erased_bits, latency_ms)
    return {
        "request_id": request_id,
        "label": top[0]["label"],
        "class_index": top[0]["class_index"],
        "top": top,
        "model_id": prediction.model_id,
        "bits": {
            "payload_bits": report.payload_bits,
            "timesteps": steps_sent,
            "latent_shape": list(pipeline.latent_shape),
            "wire_bytes": report.wire_bytes,
            "firing_rate": round(encoded.firing_rate, 6),
        },
        "channel": {"kind": report.kind, "p": report.p, "seed": report.seed,
                    "flipped_bits": report.flipped_bits, "erased_bits": report.erased_bits},
        "latency_ms": latency_ms,
        "edge": {"batch_size": prediction.batch_size, "queue_ms": _ms(prediction.queue_ms),
                 "compute_device": prediction.compute_device},
        "progressive": {
            "confidence_threshold": answer.threshold,
            "stopped": "confident" if answer.confident else "all_steps",
            "steps_sent": steps_sent,
            "max_steps": pipeline.timesteps,
            "payload_bits_sent": report.payload_bits,
            "payload_bits_saved": pipeline.payload_bits - report.payload_bits,
            "feedback": "error-free",
            "steps": [{"step": step.step, "label": step.prediction.top[0].label if step.prediction.top else None,
                       "confidence": round(step.confidence, 6), "flipped_bits": step.flipped_bits,
                       "erased_bits": step.erased_bits, "edge_compute_ms": _ms(step.prediction.edge_compute_ms)}
                      for step in answer.steps],
        },
    }
