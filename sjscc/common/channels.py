"""Digital channels between the encoder's spikes and the reconstructor (Sionna-style callables).

A channel is called as ``channel(bits, p, generator)`` on a {0,1} tensor and returns received bits of
the same shape and dtype. It is *always* active (training and eval mode alike) and is a
straight-through identity in the backward pass (SNN-SC Sec. IV-C: "the noise interference of digital
channel is treated as an identity map"). The randomness of each channel lives in one method, used both
on tensors (training, evaluation) and on packed payloads (serving, via :func:`apply_to_payload`), so
the two cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sjscc.common import bitstream

ERASURE_POLICIES = ("random", "zero", "mask")


def check_probability(p: float) -> float:
    """Return ``p`` as float or raise a ValueError that says what was wrong.

    Strings and booleans are refused rather than converted: ``"0.1"`` or ``True`` reaching a channel means a
    caller skipped its own parsing, and ``float(True) == 1.0`` would silently invert every bit.
    """
    if isinstance(p, (str, bytes, bool)):
        raise ValueError(f"channel probability p must be a number in [0, 1], got {type(p).__name__} {p!r}")
    try:
        value = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"channel probability p must be a number in [0, 1], got {p!r}") from None
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"channel probability p must be in [0, 1], got {p!r}")
    return value


def _uniform(bits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else bits.device
    return torch.rand(bits.shape, generator=generator, device=device).to(bits.device)


def _straight_through(bits: torch.Tensor, received: torch.Tensor) -> torch.Tensor:
    """Forward: ``received``; backward: identity to ``bits``."""
    return bits + (received - bits).detach()


@dataclass(frozen=True)
class ChannelOutput:
    """Received bits plus what happened on the way: the flip and erasure masks (bool)."""

    received: torch.Tensor
    flipped: torch.Tensor
    erased: torch.Tensor


class NoiselessChannel:
    """The identity channel: every bit arrives as sent. ``p`` is ignored."""

    name = "none"

    def transmit(self, bits: torch.Tensor, p: float, generator: torch.Generator | None = None) -> ChannelOutput:
        check_probability(p)
        none = torch.zeros_like(bits, dtype=torch.bool)
        return ChannelOutput(bits, none, none)

    def __call__(self, bits: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.transmit(bits, p, generator).received


class BinarySymmetricChannel(NoiselessChannel):
    """BSC(p): each bit is flipped independently with probability ``p``.

    ``p = 0`` is the identity, ``p = 1`` inverts every bit, ``p = 0.5`` destroys all information.
    """

    name = "bsc"

    def transmit(self, bits: torch.Tensor, p: float, generator: torch.Generator | None = None) -> ChannelOutput:
        p = check_probability(p)
        flipped = _uniform(bits, generator) < p
        received = torch.where(flipped, 1 - bits, bits)
        return ChannelOutput(_straight_through(bits, received), flipped, torch.zeros_like(flipped))


class BinaryErasureChannel(NoiselessChannel):
    """BEC(p): each bit is erased independently with probability ``p``.

    What the receiver reads for an erased bit is the ``erasure_policy``:

    - ``"random"`` (the papers' setting): a fair coin, 0 or 1 with probability 1/2 each, so on average
      half of the erased bits arrive wrong and BEC(p) corrupts like BSC(p/2);
    - ``"zero"``: a 0 (a receiver that treats silence as no spike);
    - ``"mask"``: a 0 in ``received`` plus the erasure mask in :meth:`transmit`'s ``erased``, for a
      receiver that knows which bits were lost (serving sends the mask as a second bitmap).

    Bits that are not erased are never touched.
    """

    name = "bec"

    def __init__(self, erasure_policy: str = "random") -> None:
        if erasure_policy not in ERASURE_POLICIES:
            raise ValueError(f"unknown erasure_policy {erasure_policy!r}; known: {ERASURE_POLICIES}")
        self.erasure_policy = erasure_policy

    def transmit(self, bits: torch.Tensor, p: float, generator: torch.Generator | None = None) -> ChannelOutput:
        p = check_probability(p)
        erased = _uniform(bits, generator) < p
        if self.erasure_policy == "random":
            fill = (_uniform(bits, generator) < 0.5).to(bits.dtype)
        else:
            fill = torch.zeros_like(bits)
        received = torch.where(erased, fill, bits)
        flipped = received != bits
        return ChannelOutput(_straight_through(bits, received), flipped, erased)


CHANNELS: dict[str, type[NoiselessChannel]] = {
    "none": NoiselessChannel,
    "bsc": BinarySymmetricChannel,
    "bec": BinaryErasureChannel,
}


def build_channel(kind: str, erasure_policy: str = "random") -> NoiselessChannel:
    """Build a channel by name: ``none``, ``bsc`` or ``bec``."""
    if kind not in CHANNELS:
        raise ValueError(f"unknown channel {kind!r}; known: {sorted(CHANNELS)}")
    if kind == "bec":
        return BinaryErasureChannel(erasure_policy)
    return CHANNELS[kind]()


@dataclass(frozen=True)
class PayloadReport:
    """What a channel did to one payload: counts over payload bits only (never the padding)."""

    payload: bytes
    payload_bits: int
    flipped_bits: int
    erased_bits: int
    erasure_mask: bytes | None = None


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
) -> PayloadReport:
    """Corrupt a packed payload with the same randomness as the tensor form, and count what changed.

    BSC and BEC work on numpy bits (XOR with the flip mask, select with the erasure mask); any other channel
    goes through its tensor :meth:`transmit`.
    """
    shape = tuple(int(d) for d in shape)
    bits = bitstream.unpack_bits(payload, shape)
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
        )
    hit, fill = draws
    hit_u8 = hit.view(np.uint8)
    if isinstance(channel, BinaryErasureChannel):
        received = np.where(hit, fill.view(np.uint8), bits) if fill is not None else bits & ~hit_u8 & 1
        flipped = int(np.count_nonzero(received != bits))
        erased = int(np.count_nonzero(hit_u8))
        mask = bitstream.pack_bits(hit_u8) if channel.erasure_policy == "mask" else None
        return PayloadReport(bitstream.pack_bits(received), bits.size, flipped, erased, mask)
    received = bits ^ hit_u8
    return PayloadReport(bitstream.pack_bits(received), bits.size, int(np.count_nonzero(hit_u8)), 0)


def awgn_bpsk_to_bsc(ebn0_db: float) -> float:
    """Crossover probability of BPSK over AWGN with hard decisions: ``p = Q(sqrt(2 Eb/N0))``.

    ``Q(x) = erfc(x / sqrt 2) / 2``, so ``p = erfc(sqrt(Eb/N0)) / 2``. Lets a user state an SNR
    and evaluate the BSC it induces.
    """
    ebn0 = 10.0 ** (float(ebn0_db) / 10.0)
    return 0.5 * math.erfc(math.sqrt(ebn0))
