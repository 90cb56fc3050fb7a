"""Channels on packed payloads (serving): the same randomness as the tensor form, plus counts of the damage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sjscc.common import bitstream
from sjscc.common.channels.base import NoiselessChannel
from sjscc.common.channels.memoryless import BinaryErasureChannel, BinarySymmetricChannel
from sjscc.common.channels.radio import RadioChannel, pack_levels
from sjscc.common.channels.settings import check_probability


@dataclass(frozen=True)
class PayloadReport:
    """What a channel did to one payload: counts over payload bits only (never the padding)."""

    payload: bytes
    payload_bits: int
    flipped_bits: int
    erased_bits: int
    erasure_mask: bytes | None = None
    erased_positions: bytes | None = None  # packed like the payload; only when asked for (for display)
    symbols: int = 0  # radio links: channel uses spent on this payload
    soft_bits: int = 0  # radio links with soft decisions: ``payload`` holds k-bit LLR levels, not bits


def _packed_draws(channel: NoiselessChannel, shape: tuple[int, ...], p: float,
                  generator: torch.Generator | None) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The BSC/BEC random draws of :meth:`transmit` for a payload of ``shape``, as numpy masks, or None.

    Same calls to the generator in the same order as the tensor form (``_uniform`` on a CPU tensor), so a
    seed gives the same corruption in training and serving; only the bookkeeping around the draws is
    numpy instead of float tensors. Returns ``(flip_or_erase, fill)``; None for any other channel.
    """
    if generator is not None and generator.device.type != "cpu":
        return None
    if type(channel) is BinarySymmetricChannel:
        p = check_probability(p)
        return (torch.rand(shape, generator=generator) < p).numpy(), None
    if type(channel) is BinaryErasureChannel:
        p = check_probability(p)
        erased = (torch.rand(shape, generator=generator) < p).numpy()
        fill = (torch.rand(shape, generator=generator) < 0.5).numpy() if channel.erasure_policy == "random" else None
        return erased, fill
    return None


def apply_to_payload(
    channel: NoiselessChannel,
    payload: bytes,
    shape: list[int] | tuple[int, ...],
    p: float,
    generator: torch.Generator | None = None,
    keep_erased_positions: bool = False,
) -> PayloadReport:
    """Corrupt a packed payload with the same randomness as the tensor form, and count what changed.

    BSC and BEC work on numpy bits (XOR with the flip mask, select with the erasure mask); any other channel
    goes through its tensor :meth:`transmit`. ``keep_erased_positions`` also returns which bits were erased
    whatever the erasure policy: the receiver never sees this under the ``random`` policy, but a person
    inspecting the channel's damage does.
    """
    shape = tuple(int(d) for d in shape)
    bits = bitstream.unpack_bits(payload, shape)
    if isinstance(channel, RadioChannel):
        return _radio_payload(channel, bits, generator)
    draws = _packed_draws(channel, shape, p, generator)
    if draws is None:
        out = channel.transmit(torch.from_numpy(bits).float(), p, generator)
        mask = None
        if isinstance(channel, BinaryErasureChannel) and channel.erasure_policy == "mask":
            mask = bitstream.pack(out.erased.to(torch.uint8))
        return PayloadReport(
            payload=bitstream.pack(out.received.to(torch.uint8)),
            payload_bits=bits.size,
            flipped_bits=int(out.flipped.sum()),
            erased_bits=int(out.erased.sum()),
            erasure_mask=mask,
            erased_positions=bitstream.pack(out.erased.to(torch.uint8)) if keep_erased_positions else None,
        )
    hit, fill = draws
    hit_u8 = hit.view(np.uint8)
    if isinstance(channel, BinaryErasureChannel):
        received = np.where(hit, fill.view(np.uint8), bits) if fill is not None else bits & ~hit_u8 & 1
        flipped = int(np.count_nonzero(received != bits))
        erased = int(np.count_nonzero(hit_u8))
        mask = bitstream.pack_bits(hit_u8) if channel.erasure_policy == "mask" else None
        positions = (mask if mask is not None else bitstream.pack_bits(hit_u8)) if keep_erased_positions else None
        return PayloadReport(bitstream.pack_bits(received), bits.size, flipped, erased, mask, positions)
    received = bits ^ hit_u8
    return PayloadReport(bitstream.pack_bits(received), bits.size, int(np.count_nonzero(hit_u8)), 0)


def _radio_payload(channel: RadioChannel, bits: np.ndarray, generator: torch.Generator | None) -> PayloadReport:
    """A radio link on one payload (the tensor form, batch of one): hard bits packed as today, or for soft
    decisions the k-bit LLR levels packed with :func:`pack_levels` (``soft_bits`` says which)."""
    out = channel.transmit(torch.from_numpy(bits).float().unsqueeze(0), 0.0, generator)
    flipped = int(out.flipped.sum())
    if channel.settings.decisions == "soft":
        soft_bits = channel.settings.soft_bits
        return PayloadReport(pack_levels(out.levels.numpy(), soft_bits), bits.size, flipped, 0,
                             symbols=out.symbols, soft_bits=soft_bits)
    return PayloadReport(bitstream.pack(out.received[0].to(torch.uint8)), bits.size, flipped, 0, symbols=out.symbols)
