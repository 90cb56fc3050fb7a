"""The opt-in ``?include=bits`` part of ``POST /v1/classify``: the bits as sent and as received.

The JSON answer says how many bits the channel flipped or erased; a person looking at the system wants to
see *which*. With ``include=bits`` the answer's ``bits`` object also carries the payload as sent, as the edge
received it, and which bits were erased, each base64 of the packed payload (the wire format of
:mod:`sjscc.common.bitstream`: ``T x c2 x h2 x w2`` bits, row-major, most significant bit first, zero-padded
to a whole byte). A flipped bit is one where sent and received differ.
"""

from __future__ import annotations

import base64

from pydantic import BaseModel, Field

from sjscc.device.client import ChannelReport

INCLUDES = ("bits",)
BIT_ORDER = "packed [T, c2, h2, w2] row-major, most significant bit first, zero-padded to a byte"


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


class PayloadBits(BaseModel):
    """The answer's ``bits`` object (OpenAPI documentation; the route builds it as a plain dict)."""

    payload_bits: int = Field(description="bits sent per image: T x c2 x h2 x w2")
    timesteps: int = Field(description="T, spike time steps")
    latent_shape: list[int] = Field(description="[c2, h2, w2]")
    wire_bytes: int = Field(description="size of the protobuf message the edge received")
    firing_rate: float = Field(description="fraction of payload bits that are 1")
    sent: str | None = Field(None, description=f"only with include=bits: base64 of the payload as sent ({BIT_ORDER})")
    received: str | None = Field(None, description="only with include=bits: base64 of the payload as the edge "
                                                   "received it; a bit differing from 'sent' was flipped")
    erased: str | None = Field(None, description="only with include=bits: base64 of the erased-bit mask (BEC), "
                                                 "null when no bit was erased")
    bit_order: str | None = Field(None, description="only with include=bits: how the base64 fields are laid out")


class ClassifyBitsView(BaseModel):
    """The part of the classify answer that ``include=bits`` extends (the other fields are in DESIGN.md)."""

    model_config = {"extra": "allow"}
    bits: PayloadBits
