"""Memoryless binary channels: BSC(p) flips, BEC(p) erases, each bit independently."""

from __future__ import annotations

import torch

from sjscc.common.channels.base import ChannelOutput, NoiselessChannel, _straight_through, _uniform
from sjscc.common.channels.settings import ERASURE_POLICIES, check_probability


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
