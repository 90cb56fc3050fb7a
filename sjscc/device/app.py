"""The device's REST endpoint (FastAPI), translation only: HTTP <-> :mod:`sjscc.device.pipeline` and
:mod:`sjscc.device.client`, exceptions <-> status codes, results <-> the JSON answer of DESIGN.md.

``POST /v1/classify`` (multipart field ``image``; query ``channel``, ``p``, ``seed``), ``GET /healthz``
(liveness: the process answers), ``GET /readyz`` (readiness: the edge is reachable and serves this model),
``GET /metrics``. Every failure is a JSON ``{"detail": "..."}`` that says what went wrong: 400 bad
parameter or empty upload, 401 no/wrong bearer token (when one is configured), 413 too large, 415 not an
image or not a multipart form, 422 malformed form, 502 the edge refused (other model), 503 + ``Retry-After``
the device or the edge is at capacity or the edge is unreachable (the gRPC channel reconnects by itself),
504 the edge did not answer within the request's time budget. The OpenAPI document declares all of them.

For the web page: ``GET /`` (its files under ``/web/``), ``GET /v1/model``, and ``include=bits`` on classify.

Each request has a time budget (``client.rpc_timeout_s``) from its arrival; what is left when the bits
leave is the gRPC deadline, so the edge never computes for a device that has given up. A request whose
client has disconnected is not computed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from sjscc.common.params import parse_seed
from sjscc.device.client import (
    EdgeBusyError,
    EdgeClient,
    EdgeError,
    EdgeModelMismatchError,
    EdgeRejectedError,
    EdgeTimeoutError,
    EdgeUnavailableError,
    ProgressiveAnswer,
)
from sjscc.device.guards import Admission, BearerToken, BodySizeLimit
from sjscc.device.link import ChannelCall, data_frame_bytes, settings_for_request
from sjscc.device.metrics import DeviceMetrics
from sjscc.device.model_card import ModelCard, wire_format_card
from sjscc.device.pipeline import (
    ACCEPTED_FORMATS,
    DevicePipeline,
    EmptyImageError,
    EncodedImage,
    ImageTooLargeError,
    NotAnImageError,
    split_steps,
)
from sjscc.device.schemas import ClassifyAnswer, ErrorAnswer, HealthAnswer, ReadyAnswer
from sjscc.device.transmission import parse_include, transmitted_bits

log = logging.getLogger("sjscc.device")

# Most specific first: (exception, HTTP status, metrics label).
ERROR_STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (EmptyImageError, 400, "empty_image"),
    (ImageTooLargeError, 413, "image_too_large"),
    (NotAnImageError, 415, "not_an_image"),
    (EdgeModelMismatchError, 502, "model_mismatch"),
    (EdgeRejectedError, 502, "edge_rejected"),
    (EdgeTimeoutError, 504, "edge_timeout"),
    (EdgeBusyError, 503, "edge_busy"),
    (EdgeUnavailableError, 503, "edge_unavailable"),
    (EdgeError, 502, "edge_error"),
)
MULTIPART_OVERHEAD_BYTES = 64 * 1024
TOP_K = 5
WEB_DIR = Path(__file__).resolve().parent / "web"
# The page loads nothing from elsewhere; the uploaded picture is previewed from a blob: URL.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'",
                "X-Content-Type-Options": "nosniff"}
DEFAULT_MAX_IN_FLIGHT = 32
# Less than this left of a request's budget when its bits are ready: shed it (503) rather than send it to
# time out at the edge.
MIN_EDGE_BUDGET_S = 0.05
CLIENT_CLOSED_REQUEST = 499  # nginx's code: nobody reads it, the logs and metrics do


def _error(description: str, retry: bool = False) -> dict:
    answer: dict = {"model": ErrorAnswer, "description": description}
    if retry:
        answer["headers"] = {"Retry-After": {"description": "seconds to wait before retrying",
                                             "schema": {"type": "string"}}}
    return answer


ERRORS_BEFORE_THE_APP = {
    401: _error("no or wrong bearer token (only when the device is started with one)"),
    413: _error("the request body is over the upload limit, or the image has too many pixels"),
}
CLASSIFY_ERRORS = {
    400: _error("bad query value (channel, p, seed), empty upload, or no 'image' field"),
    **ERRORS_BEFORE_THE_APP,
    415: _error(f"not an image in an accepted format ({', '.join(ACCEPTED_FORMATS)}), a corrupt or truncated one, "
                f"or a body that is not multipart/form-data"),
    422: _error("a malformed multipart form"),
    500: _error("a bug in the device; the detail only says to read its log"),
    502: _error("the edge refused the request (it serves another model, or failed)"),
    503: _error("the device or the edge is at capacity, or the edge is unreachable", retry=True),
    504: _error("the edge did not answer within the request's time budget"),
}
MODES = ("fixed", "progressive")
DEFAULT_CONFIDENCE = 0.9


def _ms(value: float) -> float:
    return round(value, 3)


def _add_page_routes(app: FastAPI, card: dict[str, Any]) -> None:
    """The web page (a client of this REST API, no model logic) and the model card it reads."""

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    @app.get("/v1/model", summary="what this device serves: model id, T, latent shape, classes, accuracy vs p",
             responses={200: {"model": ModelCard, "description": "the served bundle's identity and accuracy"}})
    async def model() -> dict:
        return card

    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")


def create_app(pipeline: DevicePipeline, client: EdgeClient, card: dict[str, Any] | None = None,
               max_in_flight: int = DEFAULT_MAX_IN_FLIGHT, api_token: str | None = None) -> FastAPI:
    """The device app for one pipeline (model) and one edge connection; ``card`` answers ``GET /v1/model``
    (:func:`sjscc.device.model_card.model_card` of the bundle; the wire format alone when not given).

    ``max_in_flight`` classifications run at once (more get 503 at once); ``api_token`` makes every path but
    ``/healthz`` and ``/readyz`` require ``Authorization: Bearer <token>``.
    """
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

    # Starlette makes the last one added the outermost: the token is checked first, then the body size, then
    # whether there is a free slot.
    app.add_middleware(Admission, max_in_flight=max_in_flight, paths={"/v1/classify"},
                       on_refused=metrics.observe_error)
    app.add_middleware(BodySizeLimit, max_bytes=max_upload_bytes, on_refused=metrics.observe_error)
    if api_token:
        app.add_middleware(BearerToken, token=api_token, on_refused=metrics.observe_error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        if any(tuple(e["loc"])[-1:] == ("image",) for e in error.errors()):
            metrics.observe_error(400, "missing_image")
            return JSONResponse({"detail": "multipart form field 'image' must be a file upload (with a filename), "
                                           "not a plain form value"}, status_code=400)
        problems = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors())
        metrics.observe_error(422, "bad_request")
        return JSONResponse({"detail": f"invalid request: {problems}"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        metrics.observe_error(500, "internal")
        return JSONResponse({"detail": "internal error on the device; see its log"}, status_code=500)

    @app.post("/v1/classify", response_model=ClassifyAnswer, responses=CLASSIFY_ERRORS)
    async def classify(
        request: Request,
        image: Annotated[UploadFile | None, File(
            description=f"the picture: {', '.join(ACCEPTED_FORMATS)}; animated, palette, grey, 16-bit, CMYK and "
                        f"alpha pictures are converted (first frame, over white)")] = None,
        channel: Annotated[str | None, Query(description="none, bsc, bec or ge (default: the deployment's)")] = None,
        p: Annotated[str | None, Query(description="flip/erasure probability in [0, 1] (ge: mean bit error rate)")
                     ] = None,
        burst: Annotated[str | None, Query(description="ge: mean burst length in bits, >= 1")] = None,
        interleave: Annotated[str | None, Query(description="bit interleaver seed, or 'none'")] = None,
        seed: Annotated[str | None, Query(description="seed for a reproducible channel draw")] = None,
        include: Annotated[str | None, Query(description="'bits': add the payload as sent and as received "
                                                         "(base64) and the erased bits to the answer's 'bits'")] = None,
        mode: Annotated[str | None, Query(description="fixed (all T steps, default) or progressive (a "
                                                      "progressive bundle only: stop once the edge is confident)")]
        = None,
        confidence: Annotated[str | None, Query(description="progressive mode: stop once the top-1 probability "
                                                            f"reaches this, in (0, 1]; default {DEFAULT_CONFIDENCE}")]
        = None,
    ) -> dict:
        start = time.perf_counter()
        deadline = start + client.rpc_timeout_s
        try:
            call = ChannelCall(settings_for_request(client.defaults, channel, p, burst, interleave), parse_seed(seed))
            call.keep_bits = "bits" in parse_include(include)
            threshold = progressive_threshold(pipeline, mode, confidence)
        except ValueError as error:
            raise fail(400, "bad_parameter", str(error)) from None
        if image is None:
            content_type = request.headers.get("content-type", "")
            if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
                raise fail(415, "not_multipart", f"the body must be multipart/form-data with a field 'image', "
                                                 f"not {content_type[:80] or 'a body without a content type'}")
            raise fail(400, "missing_image", "multipart form field 'image' is required (a file upload, sent as "
                                             "multipart/form-data)")
        request_id = uuid.uuid4().hex
        if threshold is not None:
            return await classify_progressive(image, call, threshold, request_id, start)
        try:
            if await request.is_disconnected():
                raise fail(CLIENT_CLOSED_REQUEST, "client_gone", "the client went away before the work started")
            encoded = await run_in_threadpool(pipeline.encode_image, await image.read())
            remaining = deadline - time.perf_counter()
            if remaining < MIN_EDGE_BUDGET_S:
                raise fail(503, "overloaded", f"the request's {client.rpc_timeout_s:g} s budget ran out on the "
                                              f"device before its bits could be sent; retry later")
            if await request.is_disconnected():
                raise fail(CLIENT_CLOSED_REQUEST, "client_gone", "the client went away before the bits were sent")
            edge_answer = await client.infer(encoded.payload, request_id, call, top_k=TOP_K, timeout_s=remaining)
        except tuple(e for e, _, _ in ERROR_STATUS) as error:
            status, kind = next((s, k) for e, s, k in ERROR_STATUS if isinstance(error, e))
            if status >= 500:
                log.warning("request %s: %s %s", request_id, status, error)
            raise fail(status, kind, str(error)) from None
        prediction, report = edge_answer.prediction, edge_answer.channel
        answer = classification_answer(pipeline, encoded, prediction, report, edge_answer.rpc_ms,
                                       prediction.edge_compute_ms, pipeline.timesteps, request_id, start, metrics,
                                       data_frame_bytes(report.wire_bytes))
        if call.keep_bits:
            answer["bits"].update(transmitted_bits(report))
        return answer

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

    @app.get("/healthz", response_model=HealthAnswer)
    async def healthz() -> dict:
        """Liveness: 200 whenever the process answers; the body says whether the edge serves."""
        serving = await client.is_serving(timeout_s=0.5)
        return {
            "status": "ok" if serving else "degraded",
            "model_id": pipeline.model_id,
            "edge": {"address": client.address, "serving": serving, "model_verified": client.model_verified},
        }

    @app.get("/readyz", response_model=ReadyAnswer,
             responses={503: _error("the edge is unreachable, not serving, or serves another model", retry=True)})
    async def readyz() -> dict:
        """Readiness: 200 only when the edge answers, says SERVING, and serves this device's model."""
        try:
            await client.check_model(timeout_s=1.0)
        except EdgeError as error:
            raise fail(503, "not_ready", f"not ready: {error}") from None
        if not await client.is_serving(timeout_s=1.0):
            raise fail(503, "not_ready", f"not ready: the edge at {client.address} is not SERVING")
        return {"status": "ready", "model_id": pipeline.model_id,
                "edge": {"address": client.address, "serving": True, "model_verified": client.model_verified}}

    @app.get("/metrics", response_class=PlainTextResponse,
             responses={200: {"description": "Prometheus text exposition format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                        401: ERRORS_BEFORE_THE_APP[401]})
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    _add_page_routes(app, card if card is not None else wire_format_card(pipeline))
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
    answer_json = classification_answer(pipeline, encoded, prediction, report, answer.rpc_ms,
                                        sum(step.prediction.edge_compute_ms for step in answer.steps), steps_sent,
                                        request_id, start, metrics)
    answer_json["progressive"] = {
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
    }
    return answer_json


def classification_answer(pipeline: DevicePipeline, encoded: EncodedImage, prediction: Any, report: Any,
                          rpc_ms: float, edge_compute_ms: float, timesteps_sent: int, request_id: str, start: float,
                          metrics: DeviceMetrics, frame_bytes: int | None = None) -> dict:
    """The JSON answer of DESIGN.md for one classified image (fixed or progressive: ``timesteps_sent`` and
    ``report`` say what was actually sent), recorded in the metrics."""
    top = [{"label": s.label, "prob": round(s.prob, 6), "class_index": s.class_index} for s in prediction.top]
    latency_ms = {
        "device_compute": _ms(encoded.device_compute_ms),
        "pack": _ms(encoded.pack_ms),
        "channel": _ms(report.channel_ms),
        "rpc": _ms(rpc_ms),
        "edge_compute": _ms(edge_compute_ms),
        "total": _ms((time.perf_counter() - start) * 1e3),
    }
    metrics.observe_success(report.kind, report.payload_bits, report.wire_bytes, report.flipped_bits,
                            report.erased_bits, latency_ms)
    bits = {"payload_bits": report.payload_bits, "timesteps": timesteps_sent,
            "latent_shape": list(pipeline.latent_shape), "wire_bytes": report.wire_bytes}
    if frame_bytes is not None:
        bits["data_frame_bytes"] = frame_bytes
    bits["firing_rate"] = round(encoded.firing_rate, 6)
    return {
        "request_id": request_id,
        "label": top[0]["label"],
        "class_index": top[0]["class_index"],
        "top": top,
        "model_id": prediction.model_id,
        "bits": bits,
        "channel": {"kind": report.kind, "p": report.p, "seed": report.seed,
                    "flipped_bits": report.flipped_bits, "erased_bits": report.erased_bits,
                    "burst": report.burst, "interleave": report.interleave},
        "latency_ms": latency_ms,
        "edge": {"batch_size": prediction.batch_size, "queue_ms": _ms(prediction.queue_ms),
                 "compute_device": prediction.compute_device, "instance": prediction.instance},
    }
