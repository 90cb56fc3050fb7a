"""The device's routes (FastAPI ``APIRouter``s), translation only: query + upload -> pipeline and client ->
:mod:`sjscc.device.answers`. What they share (pipeline, edge client, metrics, model card) comes in as the
:class:`Device` dependency, set on the app by :func:`sjscc.device.app.create_app`.

Each request has a time budget (``client.rpc_timeout_s``) from its arrival; what is left when the bits leave is
the gRPC deadline, so the edge never computes for a device that has given up. A request whose client has
disconnected is not computed.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.exceptions import HTTPException
from fastapi.responses import FileResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from sjscc.common.params import parse_confidence, parse_seed
from sjscc.device.answers import (
    CLASSIFY_ERRORS,
    CLIENT_CLOSED_REQUEST,
    ERRORS_BEFORE_THE_APP,
    MAPPED_ERRORS,
    READY_ERRORS,
    classification_answer,
    error_status,
    parse_include,
    progressive_answer,
    transmitted_bits,
)
from sjscc.device.client import EdgeClient, EdgeError
from sjscc.device.link import ChannelCall, check_coded_settings, data_frame_bytes, settings_for_request
from sjscc.device.metrics import DeviceMetrics
from sjscc.device.model_card import ModelCard
from sjscc.device.pipeline import ACCEPTED_FORMATS, DevicePipeline, split_steps
from sjscc.device.schemas import ClassifyAnswer, HealthAnswer, ReadyAnswer
from sjscc.device.uploads import plain_value_upload

log = logging.getLogger("sjscc.device")

TOP_K = 5
WEB_DIR = Path(__file__).resolve().parent / "web"
# The page loads nothing from elsewhere; the uploaded picture is previewed from a blob: URL.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'",
                "X-Content-Type-Options": "nosniff"}
# Less than this left of a request's budget when its bits are ready: shed it (503) rather than send it to
# time out at the edge.
MIN_EDGE_BUDGET_S = 0.05
MODES = ("fixed", "progressive")
DEFAULT_CONFIDENCE = 0.9


@dataclass(frozen=True)
class Device:
    """What every route of one device app shares."""

    pipeline: DevicePipeline
    client: EdgeClient
    metrics: DeviceMetrics
    card: dict[str, Any]

    def fail(self, status: int, kind: str, detail: str) -> HTTPException:
        """An HTTP error answer, counted in the metrics (503s say when to retry)."""
        self.metrics.observe_error(status, kind)
        return HTTPException(status_code=status, detail=detail,
                             headers={"Retry-After": "1"} if status == 503 else None)


def device(request: Request) -> Device:
    return request.app.state.device


DeviceDep = Annotated[Device, Depends(device)]
classify_router = APIRouter()
health_router = APIRouter()
page_router = APIRouter()


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
    return DEFAULT_CONFIDENCE if confidence is None else parse_confidence(confidence)


@classify_router.post("/v1/classify", response_model=ClassifyAnswer, responses=CLASSIFY_ERRORS)
async def classify(
    request: Request,
    state: DeviceDep,
    image: Annotated[UploadFile | str, File(
        description=f"the picture: {', '.join(ACCEPTED_FORMATS)}; animated, palette, grey, 16-bit, CMYK and "
                    f"alpha pictures are converted (first frame, over white); a file upload, or a plain form "
                    f"value of at most 1 MiB", json_schema_extra={"minLength": 1})],
    channel: Annotated[str | None, Query(description="none, bsc, bec or ge (default: the deployment's)")] = None,
    p: Annotated[str | None, Query(description="flip/erasure probability in [0, 1] (ge: mean bit error rate)")
                 ] = None,
    burst: Annotated[str | None, Query(description="ge: mean burst length in bits, >= 1")] = None,
    interleave: Annotated[str | None, Query(description="bit interleaver seed, or 'none'")] = None,
    snr_db: Annotated[str | None, Query(description="awgn/rayleigh: Eb/N0 in dB per information bit")] = None,
    modulation: Annotated[str | None, Query(description="awgn/rayleigh: bpsk, qpsk or 16qam (Gray)")] = None,
    coherence: Annotated[str | None, Query(description="rayleigh: one fade per packet, per step or per N "
                                                       "symbols (perfect CSI at the receiver)")] = None,
    decisions: Annotated[str | None, Query(description="awgn/rayleigh: hard (bits to the edge) or soft (k-bit "
                                                       "quantised LLRs to the edge)")] = None,
    soft_bits: Annotated[str | None, Query(description="soft decisions: bits per quantised LLR, 2..8")] = None,
    on_failure: Annotated[str | None, Query(description="bundles with a channel code: what the edge does with a "
                                                        "block whose CRC fails, erase (classify fill bits) or "
                                                        "misclassify (no label); default: the bundle's")] = None,
    seed: Annotated[str | None, Query(description="seed for a reproducible channel draw")] = None,
    include: Annotated[str | None, Query(description="'bits': add the payload as sent and as received "
                                                     "(base64) and the erased bits to the answer's 'bits'")] = None,
    mode: Annotated[str | None, Query(description="fixed (all T steps, default) or progressive (a "
                                                  "progressive bundle only: stop once the edge is confident)")]
    = None,
    confidence: Annotated[str | None, Query(description="progressive mode: stop once the top-1 probability "
                                                        f"reaches this, in (0, 1]; default {DEFAULT_CONFIDENCE}")]
    = None,
) -> ClassifyAnswer:
    start = time.perf_counter()
    pipeline, client = state.pipeline, state.client
    deadline = start + client.rpc_timeout_s
    code = client.channel_interceptor.code
    if code is not None and modulation is None:
        modulation = code.modulation  # a coded bundle's block is sent at its own modulation unless a request says
    try:
        settings = settings_for_request(client.defaults, channel, p, burst, interleave, snr_db=snr_db,
                                        modulation=modulation, coherence=coherence, decisions=decisions,
                                        soft_bits=soft_bits, on_failure=on_failure)
        if code is not None:
            check_coded_settings(settings, code)
        elif on_failure is not None:
            raise ValueError(f"on_failure applies to bundles with a channel code; model {pipeline.model_id} sends "
                             f"its codec's bits uncoded")
        call = ChannelCall(settings, parse_seed(seed))
        call.keep_bits = "bits" in parse_include(include)
        threshold = progressive_threshold(pipeline, mode, confidence)
        if threshold is not None and settings.radio and settings.decisions == "soft":
            raise ValueError("decisions=soft is not available with mode=progressive (each step is sent as bits)")
    except ValueError as error:
        raise state.fail(400, "bad_parameter", str(error)) from None
    if isinstance(image, str):  # sent without a filename: the same bytes, the same checks
        image = plain_value_upload(image, request.headers.get("content-type", ""))
    request_id = uuid.uuid4().hex
    try:
        if threshold is not None:
            encoded = await run_in_threadpool(pipeline.encode_image, await image.read())
            progressive = await client.infer_progressive(split_steps(encoded), request_id, threshold, call,
                                                         top_k=TOP_K)
            answer = progressive_answer(pipeline, encoded, progressive, request_id, start)
        else:
            if await request.is_disconnected():
                raise state.fail(CLIENT_CLOSED_REQUEST, "client_gone", "the client went away before the work started")
            encoded = await run_in_threadpool(pipeline.encode_image, await image.read())
            remaining = deadline - time.perf_counter()
            if remaining < MIN_EDGE_BUDGET_S:
                raise state.fail(503, "overloaded", f"the request's {client.rpc_timeout_s:g} s budget ran out on the "
                                                    f"device before its bits could be sent; retry later")
            if await request.is_disconnected():
                raise state.fail(CLIENT_CLOSED_REQUEST, "client_gone", "the client went away before the bits were sent")
            edge_answer = await client.infer(encoded.payload, request_id, call, top_k=TOP_K, timeout_s=remaining)
            prediction, report = edge_answer.prediction, edge_answer.channel
            answer = classification_answer(pipeline, encoded, prediction, report, edge_answer.rpc_ms,
                                           prediction.edge_compute_ms, pipeline.timesteps, request_id, start,
                                           data_frame_bytes(report.wire_bytes))
            if call.keep_bits:
                for name, value in transmitted_bits(report).items():
                    setattr(answer.bits, name, value)
    except MAPPED_ERRORS as error:
        status, kind = error_status(error)
        if status >= 500 and threshold is None:
            log.warning("request %s: %s %s", request_id, status, error)
        raise state.fail(status, kind, str(error)) from None
    state.metrics.observe_success(answer.channel.kind, answer.bits.payload_bits, answer.bits.wire_bytes,
                                  answer.channel.flipped_bits, answer.channel.erased_bits,
                                  answer.latency_ms.model_dump())
    return answer


@health_router.get("/healthz", response_model=HealthAnswer)
async def healthz(state: DeviceDep) -> HealthAnswer:
    """Liveness: 200 whenever the process answers; the body says whether the edge serves."""
    client = state.client
    serving = await client.is_serving(timeout_s=0.5)
    return HealthAnswer(status="ok" if serving else "degraded", model_id=state.pipeline.model_id,
                        edge={"address": client.address, "serving": serving, "model_verified": client.model_verified})


@health_router.get("/readyz", response_model=ReadyAnswer, responses=READY_ERRORS)
async def readyz(state: DeviceDep) -> ReadyAnswer:
    """Readiness: 200 only when the edge answers, says SERVING, and serves this device's model."""
    client = state.client
    try:
        await client.check_model(timeout_s=1.0)
    except EdgeError as error:
        raise state.fail(503, "not_ready", f"not ready: {error}") from None
    if not await client.is_serving(timeout_s=1.0):
        raise state.fail(503, "not_ready", f"not ready: the edge at {client.address} is not SERVING")
    return ReadyAnswer(status="ready", model_id=state.pipeline.model_id,
                       edge={"address": client.address, "serving": True, "model_verified": client.model_verified})


@health_router.get("/metrics", response_class=PlainTextResponse,
                   responses={200: {"description": "Prometheus text exposition format",
                                    "content": {"text/plain": {"schema": {"type": "string"}}}},
                              401: ERRORS_BEFORE_THE_APP[401]})
async def prometheus_metrics(state: DeviceDep) -> Response:
    return Response(state.metrics.render(), media_type=state.metrics.content_type)


@page_router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The web page: a client of this REST API, no model logic."""
    return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


@page_router.get("/v1/model", summary="what this device serves: model id, T, latent shape, classes, accuracy vs p",
                 responses={200: {"model": ModelCard, "description": "the served bundle's identity and accuracy"}})
async def model(state: DeviceDep) -> dict:
    return state.card
