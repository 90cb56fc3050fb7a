"""The device's REST endpoint (FastAPI): the app around :mod:`sjscc.device.routes`, with its guards, error
handlers and lifespan. Translation only; the answers and the error -> status table: :mod:`sjscc.device.answers`.

``POST /v1/classify`` (multipart field ``image``; query ``channel``, ``p``, ``seed``, ...), ``GET /healthz``
(liveness: the process answers), ``GET /readyz`` (readiness: the edge is reachable and serves this model),
``GET /metrics``. Every failure is a JSON ``{"detail": "..."}`` that says what went wrong: 400 bad
parameter or empty upload, 401 no/wrong bearer token (when one is configured), 413 too large, 415 not an
image or not a multipart form, 422 malformed form, 502 the edge refused (other model), 503 + ``Retry-After``
the device or the edge is at capacity or the edge is unreachable (the gRPC channel reconnects by itself),
504 the edge did not answer within the request's time budget. The OpenAPI document declares all of them.

For the web page: ``GET /`` (its files under ``/web/``), ``GET /v1/model``, and ``include=bits`` on classify.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from sjscc.device.client import EdgeClient, EdgeUnavailableError
from sjscc.device.guards import Admission, BearerToken, BodySizeLimit
from sjscc.device.metrics import DeviceMetrics
from sjscc.device.model_card import wire_format_card
from sjscc.device.pipeline import DevicePipeline
from sjscc.device.routes import WEB_DIR, Device, classify_router, health_router, page_router

log = logging.getLogger("sjscc.device")

MULTIPART_OVERHEAD_BYTES = 64 * 1024
DEFAULT_MAX_IN_FLIGHT = 32


def create_app(pipeline: DevicePipeline, client: EdgeClient, card: dict[str, Any] | None = None,
               max_in_flight: int = DEFAULT_MAX_IN_FLIGHT, api_token: str | None = None) -> FastAPI:
    """The device app for one pipeline (model) and one edge connection; ``card`` answers ``GET /v1/model``
    (:func:`sjscc.device.model_card.model_card` of the bundle; the wire format alone when not given).

    ``max_in_flight`` classifications run at once (more get 503 at once); ``api_token`` makes every path but
    ``/healthz`` and ``/readyz`` require ``Authorization: Bearer <token>``.
    """
    metrics = DeviceMetrics()

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
    app.state.device = Device(pipeline, client, metrics, card if card is not None else wire_format_card(pipeline))
    app.state.metrics = metrics
    # Starlette makes the last one added the outermost: the token is checked first, then the body size, then
    # whether there is a free slot.
    app.add_middleware(Admission, max_in_flight=max_in_flight, paths={"/v1/classify"},
                       on_refused=metrics.observe_error)
    app.add_middleware(BodySizeLimit, max_bytes=pipeline.max_image_bytes + MULTIPART_OVERHEAD_BYTES,
                       on_refused=metrics.observe_error)
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

    for router in (classify_router, health_router, page_router):
        app.include_router(router)
    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
    return app
