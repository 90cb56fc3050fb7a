"""The channel interface: :class:`NoiselessChannel` (the identity) and what every channel shares.

A channel is called as ``channel(bits, p, generator)`` on a {0,1} tensor and returns received bits of the same
shape and dtype, always active (training and eval alike) and a straight-through identity in the backward pass
(SNN-SC Sec. IV-C: "the noise interference of digital channel is treated as an identity map").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sjscc.common.channels.settings import check_probability


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
