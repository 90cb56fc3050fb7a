"""A seeded bit interleaver and the channel wrapped between it and its inverse (spreads bursts)."""

from __future__ import annotations

import torch

from sjscc.common.channels.base import ChannelOutput, NoiselessChannel

PAYLOAD_DIMS = 4
"""A payload is the trailing ``[T, c2, h2, w2]`` of the codecs' ``[B, T, c2, h2, w2]`` bits."""


class Interleaver:
    """A seeded pseudo-random permutation of the bits of each payload, to spread a burst over it.

    Bit ``i`` on the wire is payload bit ``permutation[i]`` (:meth:`interleave`, before the channel);
    :meth:`deinterleave` puts every received bit back in place, so a burst of L wire bits lands on L
    scattered payload positions. The permutation is ``torch.randperm(n)`` from a CPU generator seeded with
    ``seed``: the same on every machine, so both ends of a link agree on it by the seed alone.
    """

    def __init__(self, seed: int, payload_dims: int = PAYLOAD_DIMS) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ValueError(f"interleaver seed must be an integer in [0, 2^63), got {seed!r}")
        if payload_dims < 1:
            raise ValueError(f"a payload has at least one dimension, got payload_dims={payload_dims}")
        self.seed = seed
        self.payload_dims = payload_dims
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def permutation(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(permutation, inverse)`` of ``range(n)`` (cached per payload size)."""
        if n not in self._cache:
            forward = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
            inverse = torch.empty_like(forward)
            inverse[forward] = torch.arange(n)
            self._cache[n] = (forward, inverse)
        return self._cache[n]

    def _apply(self, bits: torch.Tensor, which: int) -> torch.Tensor:
        if bits.dim() < self.payload_dims:
            raise ValueError(f"interleaving needs payloads of {self.payload_dims} dims, got shape {list(bits.shape)}")
        flat = bits.flatten(bits.dim() - self.payload_dims)
        order = self.permutation(flat.shape[-1])[which].to(bits.device)
        return flat.index_select(-1, order).view(bits.shape)

    def interleave(self, bits: torch.Tensor) -> torch.Tensor:
        """Payload order -> wire order."""
        return self._apply(bits, 0)

    def deinterleave(self, bits: torch.Tensor) -> torch.Tensor:
        """Wire order -> payload order (inverse of :meth:`interleave`)."""
        return self._apply(bits, 1)


class InterleavedChannel(NoiselessChannel):
    """``deinterleave(channel(interleave(bits)))``: interleaver, channel, de-interleaver as one link.

    The masks in :meth:`transmit` are in payload order, like the received bits. The backward pass stays the
    identity (a permutation and its inverse around a straight-through channel).
    """

    def __init__(self, channel: NoiselessChannel, interleaver: Interleaver) -> None:
        self.channel = channel
        self.interleaver = interleaver
        self.name = channel.name

    def transmit(self, bits: torch.Tensor, p: float, generator: torch.Generator | None = None) -> ChannelOutput:
        out = self.channel.transmit(self.interleaver.interleave(bits), p, generator)
        back = self.interleaver.deinterleave
        return ChannelOutput(back(out.received), back(out.flipped), back(out.erased))
