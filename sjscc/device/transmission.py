"""The opt-in ``?include=bits`` part of ``POST /v1/classify``: the bits as sent and as received.

The JSON answer says how many bits the channel flipped or erased; a person looking at the system wants to
see *which*. With ``include=bits`` the answer's ``bits`` object also carries the payload as sent, as the edge
received it, and which bits were erased, each base64 of the packed payload (the wire format of
:mod:`sjscc.common.bitstream`: ``T x c2 x h2 x w2`` bits, row-major, most significant bit first, zero-padded
to a whole byte). A flipped bit is one where sent and received differ.
"""

from __future__ import annotations

import base64

from sjscc.device.link import ChannelReport
from sjscc.device.schemas import BIT_ORDER

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
