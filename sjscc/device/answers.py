"""What the device answers: the one error -> status table, and the JSON answers of DESIGN.md, fixed and progressive.

Errors: :data:`ERROR_STATUS` maps each exception the work can raise to its HTTP status and metrics label, and the
``*_ERRORS`` declarations put every status in the OpenAPI document. Answers are the pydantic models of
:mod:`sjscc.device.schemas`; a progressive answer is a fixed one (bits = those actually sent) plus ``progressive``.

``?include=bits`` adds the payload as sent, as the edge received it, and which bits were erased, each base64 of
the packed payload (the wire format of :mod:`sjscc.common.bitstream`: ``T x c2 x h2 x w2`` bits, row-major, most
significant bit first, zero-padded to a whole byte). A flipped bit is one where sent and received differ. For a
bundle with a channel code they are the n coded bits of its block, as sent and as the receiver decided them (hard)
before the edge's BP decoder.
"""

from __future__ import annotations

import base64
import time

from sjscc.device.client import (
    EdgeBusyError,
    EdgeError,
    EdgeModelMismatchError,
    EdgeRejectedError,
    EdgeTimeoutError,
    EdgeUnavailableError,
)
from sjscc.device.link import ChannelReport
from sjscc.device.pipeline import (
    ACCEPTED_FORMATS,
    DevicePipeline,
    EmptyImageError,
    EncodedImage,
    ImageTooLargeError,
    NotAnImageError,
)
from sjscc.device.replies import ProgressiveAnswer
from sjscc.device.schemas import (
    BIT_ORDER,
    ChannelAnswer,
    ClassifyAnswer,
    ClassScore,
    CodeAnswer,
    EdgeReport,
    ErrorAnswer,
    LatencyMs,
    PayloadBits,
)

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
MAPPED_ERRORS = tuple(error for error, _, _ in ERROR_STATUS)
CLIENT_CLOSED_REQUEST = 499  # nginx's code: nobody reads it, the logs and metrics do


def error_status(error: Exception) -> tuple[int, str]:
    """The HTTP status and metrics label of one of :data:`MAPPED_ERRORS`."""
    return next((status, kind) for kind_of, status, kind in ERROR_STATUS if isinstance(error, kind_of))


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
    400: _error("bad query value (channel, p, seed, snr_db, modulation, coherence, decisions, ...), an impossible "
                "link setting, empty upload, or no 'image' field"),
    **ERRORS_BEFORE_THE_APP,
    415: _error(f"not an image in an accepted format ({', '.join(ACCEPTED_FORMATS)}), a corrupt or truncated one, "
                f"or a body that is not multipart/form-data"),
    422: _error("a malformed multipart form"),
    500: _error("a bug in the device; the detail only says to read its log"),
    502: _error("the edge refused the request (it serves another model, or failed)"),
    503: _error("the device or the edge is at capacity, or the edge is unreachable", retry=True),
    504: _error("the edge did not answer within the request's time budget"),
}
READY_ERRORS = {503: _error("the edge is unreachable, not serving, or serves another model", retry=True)}

INCLUDES = ("bits",)


def parse_include(include: str | None) -> frozenset[str]:
    """``include=bits`` (comma-separated, case-insensitive); anything unknown is refused by name."""
    if include is None:
        return frozenset()
    parts = {part.strip().lower() for part in include.split(",") if part.strip()}
    unknown = sorted(parts - set(INCLUDES))
    if unknown:
        raise ValueError(f"unknown include {', '.join(repr(u) for u in unknown)}; use one of {', '.join(INCLUDES)}")
    return frozenset(parts)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def transmitted_bits(report: ChannelReport) -> dict:
    """The fields ``include=bits`` adds to the answer's ``bits`` object."""
    if report.sent_payload is None or report.received_payload is None:
        raise RuntimeError("the channel did not keep the payload bits of this request")
    return {
        "sent": _b64(report.sent_payload),
        "received": _b64(report.received_payload),
        "erased": _b64(report.erased_positions) if report.erased_bits else None,
        "bit_order": BIT_ORDER,
    }


def _ms(value: float) -> float:
    return round(value, 3)


def _code_answer(report: ChannelReport, prediction) -> CodeAnswer | None:
    """The channel code's line of the answer: the link's side from the report, the edge's verdict from its reply."""
    if report.code is None:
        return None
    if not prediction.HasField("block_decoded"):
        raise EdgeRejectedError("the edge did not say whether the coded block decoded (does it serve this bundle's "
                                "channel code?)")
    return CodeAnswer(**{**report.code, "decoded": prediction.block_decoded,
                         "on_failure": prediction.on_failure or report.code["on_failure"]})


def classification_answer(pipeline: DevicePipeline, encoded: EncodedImage, prediction, report: ChannelReport,
                          rpc_ms: float, edge_compute_ms: float, timesteps_sent: int, request_id: str, start: float,
                          frame_bytes: int | None = None) -> ClassifyAnswer:
    """The answer of DESIGN.md for one classified image (fixed or progressive: ``timesteps_sent`` and ``report``
    say what was actually sent); ``prediction`` is the edge's ``Prediction`` or ``StepPrediction``."""
    top = [ClassScore(label=s.label, prob=round(s.prob, 6), class_index=s.class_index) for s in prediction.top]
    return ClassifyAnswer(
        request_id=request_id,
        label=top[0].label if top else None,
        class_index=top[0].class_index if top else None,
        top=top,
        model_id=prediction.model_id,
        bits=PayloadBits(payload_bits=report.payload_bits, timesteps=timesteps_sent,
                         latent_shape=list(pipeline.latent_shape), wire_bytes=report.wire_bytes,
                         data_frame_bytes=frame_bytes, firing_rate=round(encoded.firing_rate, 6)),
        channel=ChannelAnswer(kind=report.kind, p=report.p, seed=report.seed, flipped_bits=report.flipped_bits,
                              erased_bits=report.erased_bits, burst=report.burst, interleave=report.interleave,
                              code=_code_answer(report, prediction), **(report.link or {})),
        latency_ms=LatencyMs(device_compute=_ms(encoded.device_compute_ms), pack=_ms(encoded.pack_ms),
                             channel=_ms(report.channel_ms), rpc=_ms(rpc_ms), edge_compute=_ms(edge_compute_ms),
                             total=_ms((time.perf_counter() - start) * 1e3)),
        edge=EdgeReport(batch_size=prediction.batch_size, queue_ms=_ms(prediction.queue_ms),
                        compute_device=prediction.compute_device, instance=prediction.instance),
    )


def progressive_answer(pipeline: DevicePipeline, encoded: EncodedImage, answer: ProgressiveAnswer, request_id: str,
                       start: float) -> ClassifyAnswer:
    """The answer of a progressive request: the usual fields (bits = those actually sent) plus ``progressive``
    with the steps sent, the bits saved and the edge's confidence after each step."""
    report = answer.channel
    result = classification_answer(pipeline, encoded, answer.prediction, report, answer.rpc_ms,
                                   sum(step.prediction.edge_compute_ms for step in answer.steps), len(answer.steps),
                                   request_id, start)
    result.progressive = {
        "confidence_threshold": answer.threshold,
        "stopped": "confident" if answer.confident else "all_steps",
        "steps_sent": len(answer.steps),
        "max_steps": pipeline.timesteps,
        "payload_bits_sent": report.payload_bits,
        "payload_bits_saved": pipeline.payload_bits - report.payload_bits,
        "feedback": "error-free",
        "steps": [{"step": step.step, "label": step.prediction.top[0].label if step.prediction.top else None,
                   "confidence": round(step.confidence, 6), "flipped_bits": step.flipped_bits,
                   "erased_bits": step.erased_bits, "edge_compute_ms": _ms(step.prediction.edge_compute_ms)}
                  for step in answer.steps],
    }
    return result
