"""The digital link between device and edge: the only code that corrupts bits in serving.

:class:`ChannelInterceptor` *is* the link: every ``EncodedFeature`` (a whole payload) and every ``EncodedStep`` (one
time step of a progressive stream) leaving the device passes through :meth:`ChannelInterceptor.transmit`, which
corrupts the payload bits (BSC flips, BEC erases, GE bursts, optionally interleaved) and nothing else; the header
fields (shape, model id) travel as a protected control channel. Its settings are the deployment's
(``--channel/--p/--seed`` or ``SJSCC_*``), overridable per request (:func:`settings_for_request`); what it did
comes back to the caller through :class:`ChannelCall`, which the caller puts in :data:`current_call` for the
duration of one RPC (grpc.aio runs interceptors in a task that copies the caller's context).

A stream is one RPC: its steps draw one after another from one random generator (the request's seed, or the
deployment's stream), so a seeded progressive request is reproducible step by step.
"""

from __future__ import annotations

import contextvars
import dataclasses
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
import torch

from sjscc.common import bitstream
from sjscc.common.bitstream import pack_bits
from sjscc.common.channels import (
    DEFAULT_BURST,
    LINK_KINDS,
    LinkSettings,
    NoiselessChannel,
    apply_to_payload,
    build_channel,
    check_burst,
    check_probability,
    gilbert_elliott_transitions,
)
from sjscc.common.channels.radio import closed_form_ber, pack_levels, unpack_levels
from sjscc.common.params import (
    parse_burst,
    parse_channel_kind,
    parse_decisions,
    parse_interleave,
    parse_link_coherence,
    parse_modulation,
    parse_probability,
    parse_snr_db,
    parse_soft_bits,
)
from sjscc.proto import sjscc_pb2

if TYPE_CHECKING:  # coding.py loads Sionna's LDPC blocks: only a device serving a coded bundle needs them
    from sjscc.common.channels.coding import CodedLink

FAILURE_POLICIES = ("erase", "misclassify")  # sjscc.common.channels.coding.FAILURE_POLICIES (a test checks)

GRPC_MESSAGE_PREFIX_BYTES = 5  # compressed flag + 4-byte length, before every gRPC message
HTTP2_FRAME_HEADER_BYTES = 9
HTTP2_DEFAULT_MAX_FRAME_BYTES = 16384


def data_frame_bytes(message_bytes: int) -> int:
    """TCP bytes of the HTTP/2 DATA frame(s) that carry a gRPC message of ``message_bytes``.

    The part of a request's connection cost the device can know exactly. gRPC's core also writes a HEADERS
    frame (HPACK-compressed, ~18 bytes per request on a warm connection, far more on the first) and flow-control
    WINDOW_UPDATE frames that the application never sees; ``sjscc bench`` measures those with a counting proxy.
    """
    body = message_bytes + GRPC_MESSAGE_PREFIX_BYTES
    frames = max(1, -(-body // HTTP2_DEFAULT_MAX_FRAME_BYTES))
    return body + frames * HTTP2_FRAME_HEADER_BYTES


@dataclass(frozen=True)
class ChannelSettings:
    """Which channel corrupts the payload: ``kind`` (none, bsc, bec, ge), probability ``p``, BEC erasure policy,
    GE mean burst length ``burst`` (bits), and the seed of the bit interleaver around the channel (None: none).

    A new link parameter is one more field here, checked in ``__post_init__`` and used by :meth:`build`; the
    interceptor only calls :meth:`build` and reads ``kind``/``p``, so it does not change.
    """

    kind: str = "none"
    p: float = 0.0
    erasure_policy: str = "random"
    burst: float = DEFAULT_BURST
    interleave: int | None = None
    snr_db: float = 6.0
    """Radio links (``awgn``, ``rayleigh``): Eb/N0 in dB; with ``modulation``, ``coherence``, ``decisions`` and
    ``soft_bits`` these are :class:`sjscc.common.channels.LinkSettings` (ignored by the binary channels)."""
    modulation: str = "bpsk"
    coherence: str | int = "packet"
    decisions: str = "hard"
    soft_bits: int = 4
    on_failure: str | None = None
    """Separate-coding bundles: what the edge does with a block whose CRC fails (``erase`` | ``misclassify``);
    None: the bundle's policy. Ignored for bundles without a channel code."""

    def __post_init__(self) -> None:
        if self.on_failure is not None and self.on_failure not in FAILURE_POLICIES:
            raise ValueError(f"on_failure must be one of {', '.join(FAILURE_POLICIES)}, got {self.on_failure!r}")
        if self.kind in LINK_KINDS:
            link = self.link()  # raises a ValueError naming a bad SNR, modulation, coherence or decision
            for name in ("snr_db", "modulation", "coherence", "decisions", "soft_bits"):
                object.__setattr__(self, name, getattr(link, name))
        self.build()  # raises a ValueError naming the unknown kind/policy, a bad burst length or interleaver seed
        object.__setattr__(self, "p", check_probability(self.p))
        object.__setattr__(self, "burst", check_burst(self.burst))
        if self.kind == "ge":
            gilbert_elliott_transitions(self.p, self.burst)  # p <= L/(L+1)

    @property
    def radio(self) -> bool:
        return self.kind in LINK_KINDS

    def link(self) -> LinkSettings:
        """The radio link's settings (meaningful for ``awgn`` and ``rayleigh`` only)."""
        return LinkSettings(snr_db=self.snr_db, modulation=self.modulation, coherence=self.coherence,
                            decisions=self.decisions, soft_bits=self.soft_bits)

    def build(self) -> NoiselessChannel:
        """The channel these settings describe, from the registry of :mod:`sjscc.common.channels`."""
        if self.radio:
            return build_channel(self.kind, interleave=self.interleave, link=self.link())
        return build_channel(self.kind, self.erasure_policy, self.burst, self.interleave)


# Query parameter -> (settings field, parser). One row per overridable setting.
REQUEST_OVERRIDES = {
    "channel": ("kind", parse_channel_kind),
    "p": ("p", parse_probability),
    "burst": ("burst", parse_burst),
    "interleave": ("interleave", parse_interleave),
    "snr_db": ("snr_db", parse_snr_db),
    "modulation": ("modulation", parse_modulation),
    "coherence": ("coherence", parse_link_coherence),
    "decisions": ("decisions", parse_decisions),
    "soft_bits": ("soft_bits", parse_soft_bits),
    "on_failure": ("on_failure", lambda text: str(text).strip().lower()),
}

CODED_CHANNELS = ("none", "bsc", "awgn", "rayleigh")
"""The channels a coded block can cross: a noiseless link, hard bits through a BSC, or the radio links."""


def check_coded_settings(settings: ChannelSettings, code: CodedLink) -> None:
    """Refuse, naming the setting, what a bundle's LDPC block cannot be sent over (a ValueError: a 400)."""
    if settings.kind not in CODED_CHANNELS:
        raise ValueError(f"this bundle sends its bits through a CRC + 5G LDPC block; channel={settings.kind} is not "
                         f"available for it (use one of {', '.join(CODED_CHANNELS)})")
    if settings.interleave is not None:
        raise ValueError("an interleaver is not available with this bundle's LDPC block (use interleave=none)")
    if settings.radio and settings.coherence == "step":
        raise ValueError("coherence=step has no meaning for one LDPC block per image: use packet or a number of "
                         "symbols")
    if settings.radio and settings.modulation != code.modulation:
        raise ValueError(f"this bundle's LDPC block is sent with {code.modulation} (fixed by its manifest's "
                         f"channel_code), not modulation={settings.modulation}")


def settings_for_request(defaults: ChannelSettings, channel: str | None = None,
                         p: str | float | None = None, burst: str | float | None = None,
                         interleave: str | int | None = None, **link: str | float | None) -> ChannelSettings:
    """The deployment's settings with this request's ``channel``, ``p``, ``burst`` and/or ``interleave`` put
    in (each optional; ``interleave="none"`` turns the deployment's interleaver off), and for a radio link any of
    ``snr_db``, ``modulation``, ``coherence``, ``decisions``, ``soft_bits``. A radio link refuses the deployment's
    interleaver with a clear error; a request can turn it off with ``interleave=none``."""
    unknown = set(link) - set(REQUEST_OVERRIDES)
    if unknown:
        raise TypeError(f"unknown link settings {sorted(unknown)}")
    given = {"channel": channel, "p": p, "burst": burst, "interleave": interleave, **link}
    changes: dict[str, object] = {}
    for name, (field_name, parse) in REQUEST_OVERRIDES.items():
        if given.get(name) is not None:
            changes[field_name] = parse(given[name])
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
    burst: float | None = None
    """GE's mean burst length (None for the other kinds)."""
    interleave: int | None = None
    code: dict[str, object] | None = None
    """Separate coding: ``kind``, ``crc``, ``rate``, ``info_bits``, ``coded_bits``, ``on_failure`` (the edge adds
    ``decoded``); ``flipped_bits`` then counts coded bits wrong after a hard decision."""
    link: dict[str, object] | None = None
    """Radio links: ``snr_db``, ``modulation``, ``coherence``, ``decisions`` (+ ``soft_bits`` for soft) and
    ``symbols`` (channel uses spent); ``p`` is then the link's closed-form hard-decision BER."""
    # Only when the call asked to keep them (ChannelCall.keep_bits): the payload as sent, as received,
    # and which bits were erased, each packed like the payload. For showing the channel's damage.
    sent_payload: bytes | None = None
    received_payload: bytes | None = None
    erased_positions: bytes | None = None

    def add(self, other: ChannelReport) -> None:
        """Count ``other`` (one more step of the same stream) into this report."""
        for name in ("payload_bits", "flipped_bits", "erased_bits", "wire_bytes", "channel_ms"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if self.link is not None and other.link is not None:
            self.link = {**self.link, "symbols": int(self.link["symbols"]) + int(other.link["symbols"])}


@dataclass
class ChannelCall:
    """One RPC's channel: its settings and seed going in, the interceptor's report coming out.

    ``seed=None`` draws from the deployment's random stream; a seed makes this request's corruption
    reproducible on its own. ``keep_bits`` asks the interceptor to put the sent and received payloads in
    the report (the web page draws them). On a stream, ``steps`` gets one report per step and ``report``
    their sum.
    """

    settings: ChannelSettings | None = None
    seed: int | None = None
    report: ChannelReport | None = None
    keep_bits: bool = False
    steps: list[ChannelReport] = field(default_factory=list)


current_call: contextvars.ContextVar[ChannelCall | None] = contextvars.ContextVar("sjscc_channel_call",
                                                                                 default=None)
Message = sjscc_pb2.EncodedFeature | sjscc_pb2.EncodedStep


class ChannelInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """The channel between device and edge, on the payload bits of every ``EncodedFeature`` and ``EncodedStep``.

    With an interleaver, the payload is permuted before the channel and restored after it, both here: the
    interleaver and de-interleaver are the two ends of the simulated link (like a modem's), so the edge
    receives payload-order bits and needs no change; the seed names the permutation both ends share.

    grpc.aio files an interceptor under one kind of RPC only, so the stream side is the small adapter
    :attr:`streams` (register both); both sides go through :meth:`transmit`.
    """

    def __init__(self, defaults: ChannelSettings, seed: int | None = None,
                 payload_shape: tuple[int, ...] | None = None, code: CodedLink | None = None) -> None:
        self.defaults = defaults
        self.code = code  # the bundle's channel code: whole payloads go through it (separate coding)
        self.seed = seed
        self.payload_shape = payload_shape  # for compact requests, whose header leaves the shape to the model id
        self._stream = torch.Generator()
        if seed is None:
            self._stream.seed()
        else:
            self._stream.manual_seed(seed)
        self.streams = StreamChannelInterceptor(self)

    def generator_for(self, call: ChannelCall | None) -> torch.Generator:
        """The random draws of one RPC: a fresh generator for a seeded call, else the deployment's stream."""
        if call is not None and call.seed is not None:
            return torch.Generator().manual_seed(call.seed)
        return self._stream

    def _shape(self, message: Message) -> list[int]:
        if isinstance(message, sjscc_pb2.EncodedStep):
            if message.latent_shape:
                return list(message.latent_shape)
            if self.payload_shape is not None:
                return list(self.payload_shape[1:])
        elif message.timesteps:
            return [message.timesteps, *message.latent_shape]
        elif self.payload_shape is not None:
            return list(self.payload_shape)
        raise ValueError("a request without its shape in the header needs the interceptor's payload_shape")

    def transmit(self, message: Message, call: ChannelCall | None,
                 generator: torch.Generator | None = None) -> tuple[Message, ChannelReport]:
        """The message as the edge receives it, and what happened to its payload.

        ``generator`` is the RPC's random draws (:meth:`generator_for`); a stream passes the same one for each
        step. Without it, the call's own (seeded or the deployment's stream) is used.
        """
        start = time.perf_counter()
        settings = call.settings if call is not None and call.settings is not None else self.defaults
        seed = call.seed if call is not None else None
        generator = generator if generator is not None else self.generator_for(call)
        keep_bits = call is not None and call.keep_bits
        shape = self._shape(message)
        if self.code is not None and isinstance(message, sjscc_pb2.EncodedFeature):
            return self._transmit_block(message, settings, seed, generator, shape, keep_bits, start)
        if settings.radio and settings.decisions == "soft" and isinstance(message, sjscc_pb2.EncodedStep):
            raise ValueError("soft decisions are not available on progressive streams (a step carries bits): "
                             "use decisions=hard or mode=fixed")
        outcome = apply_to_payload(settings.build(), message.payload, shape, settings.p, generator,
                                   keep_erased_positions=keep_bits)
        received = type(message)()
        received.CopyFrom(message)
        received.payload = outcome.payload
        if outcome.erasure_mask is not None:
            received.erasure_mask = outcome.erasure_mask
        if outcome.soft_bits:
            received.soft_bits = outcome.soft_bits  # the k-bit LLR levels cross the wire: wire_bytes counts them
        p, link = settings.p, None
        if settings.radio:
            p = closed_form_ber(settings.kind, settings.link())
            link = {**settings.link().describe(), "symbols": outcome.symbols}
            if outcome.soft_bits:
                link["soft_bits"] = outcome.soft_bits
        report = ChannelReport(settings.kind, p, seed if seed is not None else self.seed,
                               outcome.payload_bits, outcome.flipped_bits, outcome.erased_bits,
                               received.ByteSize(), (time.perf_counter() - start) * 1e3,
                               burst=settings.burst if settings.kind == "ge" else None,
                               interleave=settings.interleave, link=link)
        if keep_bits:
            report.sent_payload, report.received_payload = message.payload, outcome.payload
            if outcome.soft_bits:  # show the hard decisions the levels carry, packed like the payload
                levels = unpack_levels(outcome.payload, outcome.payload_bits, outcome.soft_bits)
                report.received_payload = pack_bits((levels >= 2 ** (outcome.soft_bits - 1)).astype("uint8"))
            report.erased_positions = outcome.erased_positions
        return received, report

    def _transmit_block(self, message: sjscc_pb2.EncodedFeature, settings: ChannelSettings, seed: int | None,
                        generator: torch.Generator, shape: list[int], keep_bits: bool,
                        start: float) -> tuple[sjscc_pb2.EncodedFeature, ChannelReport]:
        """Separate coding: the payload's k source bits get a CRC and are 5G-LDPC encoded into one block of n coded
        bits (the bundle's code), which cross the channel like any payload (the radio link at the code's modulation,
        Eb/N0 per information bit). The edge receives the decided bits (with the receiver's reliability
        ``hard_llr``) or their k-bit LLR levels, and runs BP + CRC."""
        from sjscc.common.channels.coding import block_hard_llr, hard_llr

        code = self.code
        check_coded_settings(settings, code)
        source = bitstream.unpack(message.payload, shape).reshape(1, -1)
        coded = code.encode(source)
        link, soft_bits, symbols = None, 0, 0
        if settings.radio:  # the receiver's LLRs: per-block reliability for hard decisions, levels for soft ones
            link = dataclasses.replace(settings.link(), modulation=code.modulation, coderate=code.rate)
            p = closed_form_ber(settings.kind, link)
            out = build_channel(settings.kind, link=link).demap(coded, generator)
            flipped, symbols = int(out.flipped.sum()), out.symbols
            if link.decisions == "soft":
                soft_bits = link.soft_bits
                payload, reliability = pack_levels(out.levels.numpy(), soft_bits), 0.0
            else:
                payload, reliability = bitstream.pack((out.llr[0] > 0).to(torch.uint8)), block_hard_llr(out.llr)
        else:  # none, or hard bits through a BSC of known p
            p = settings.p
            outcome = apply_to_payload(settings.build(), bitstream.pack(coded[0].to(torch.uint8)), [code.n], p,
                                       generator)
            payload, flipped, reliability = outcome.payload, outcome.flipped_bits, hard_llr(p)
        received = sjscc_pb2.EncodedFeature()
        received.CopyFrom(message)
        received.payload = payload
        received.coded_bits = code.n
        received.soft_bits = soft_bits
        received.hard_llr = reliability
        received.on_failure = settings.on_failure or ""
        described = None
        if link is not None:
            described = {**link.describe(), "symbols": symbols}
            if soft_bits:
                described["soft_bits"] = soft_bits
        report = ChannelReport(settings.kind, p, seed if seed is not None else self.seed, source.shape[1],
                               flipped, 0, received.ByteSize(), (time.perf_counter() - start) * 1e3,
                               link=described,
                               code={"kind": "ldpc", "crc": code.crc, "rate": round(code.rate, 6),
                                     "info_bits": code.k, "coded_bits": code.n, "symbols": code.symbols,
                                     "on_failure": settings.on_failure})
        if keep_bits:  # the coded block as sent and as decided (hard) by the receiver
            report.sent_payload = bitstream.pack(coded[0].to(torch.uint8))
            decided = payload
            if soft_bits:
                levels = unpack_levels(payload, code.n, soft_bits)
                decided = pack_bits((levels >= 2 ** (soft_bits - 1)).astype("uint8"))
            report.received_payload = decided
        return received, report

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        if isinstance(request, sjscc_pb2.EncodedFeature):
            call = current_call.get()
            request, report = self.transmit(request, call)
            if call is not None:
                call.report = report
        return await continuation(client_call_details, request)

    async def corrupt_stream(self, messages: AsyncIterable | Iterable, call: ChannelCall | None) -> AsyncIterator:
        """Each ``EncodedStep`` of one stream through :meth:`transmit`, all drawing from one generator; the
        call's ``steps`` gets each step's report and its ``report`` the running sum."""
        generator = self.generator_for(call)
        if not isinstance(messages, AsyncIterable):
            messages = _as_async(messages)
        async for message in messages:
            if isinstance(message, sjscc_pb2.EncodedStep):
                message, report = self.transmit(message, call, generator)
                if call is not None:
                    call.steps.append(report)
                    if call.report is None:
                        call.report = dataclasses.replace(report, sent_payload=None, received_payload=None,
                                                          erased_positions=None)
                    else:
                        call.report.add(report)
            yield message


class StreamChannelInterceptor(grpc.aio.StreamStreamClientInterceptor):
    """The stream side of a :class:`ChannelInterceptor` (grpc.aio registers each object for one RPC kind)."""

    def __init__(self, link: ChannelInterceptor) -> None:
        self.link = link

    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        # grpc.aio turns the caller's write() calls into this iterator, so write()-style streams pass here too.
        return await continuation(client_call_details,
                                  self.link.corrupt_stream(request_iterator, current_call.get()))


async def _as_async(messages: Iterable) -> AsyncIterator:
    for message in messages:
        yield message
