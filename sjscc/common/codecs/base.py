"""What every codec is: an encoder (device half) that emits bits and a decoder (edge half) that reads them.

Bits travel batch-first as ``[B, T, c2, h2, w2]`` with values in {0, 1}: T time steps of spikes for the
SNN codec, T = n bit planes (most significant first) for the n-bit CNN baseline. Both therefore send
``T * c2 * h2 * w2`` bits per image and use the same channel, packer and wire format.

**What a decoder reads** (:attr:`Codec.received_input`): whatever the channel hands it, in the same layout:
received bits in {0, 1} (hard decisions, every binary channel) or the posterior ``P(bit = 1)`` in [0, 1]
(a radio link with soft decisions). No caller branches on which: every decoder here is defined on [0, 1].
The SNN reconstructor takes the posterior spike probability as its input current (its first Conv-BN is
linear, so that is the expected current ``E[W z] = W P(z = 1)``); the CNN decoder's dequantiser
``sum_i 2^(n-1-i) b_i / (2^n - 1)`` is linear in the bits, so on probabilities it reads the expected
quantised value (the expected bits). On {0, 1} input both are exactly today's hard-decision path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sjscc.common.channels import NoiselessChannel


@dataclass
class CodecConfig:
    """Geometry and neuron choices of a codec; the papers' ResNet50 values are the defaults."""

    in_channels: int = 2048
    c1: int = 256
    c2: int = 32
    timesteps: int = 8
    reconstructor_neuron: str = "ihf"
    v_threshold: float = 1.0


@dataclass
class CodecOutput:
    """A codec's forward result: the reconstructed feature, the bits sent, their firing rate."""

    feature: torch.Tensor
    bits: torch.Tensor
    received: torch.Tensor
    firing_rate: torch.Tensor


class Codec(nn.Module):
    """``encoder``: feature ``[B,c,h,w]`` -> bits ``[B,T,c2,h,w]``; ``decoder``: bits -> feature."""

    encoder: nn.Module
    decoder: nn.Module
    received_input: tuple[str, ...] = ("bits", "probabilities")
    """What :attr:`decoder` accepts from the channel: hard bits in {0, 1} and soft ``P(bit = 1)`` in [0, 1]."""

    def __init__(self, name: str, config: CodecConfig) -> None:
        super().__init__()
        self.name = name
        self.config = config

    @property
    def timesteps(self) -> int:
        return self.config.timesteps

    def latent_shape(self, feature_hw: tuple[int, int]) -> list[int]:
        """``[c2, h2, w2]`` for a split feature of spatial size ``feature_hw`` (3x3, stride 1, pad 1)."""
        return [self.config.c2, int(feature_hw[0]), int(feature_hw[1])]

    def forward(
        self,
        feature: torch.Tensor,
        channel: NoiselessChannel | None = None,
        p: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> CodecOutput:
        """Encode, pass through ``channel`` (straight-through backward, active in eval too), decode.

        ``received`` is bits or probabilities, as the channel gives them (see :attr:`received_input`)."""
        bits = self.encoder(feature)
        received = channel(bits, p, generator) if channel is not None else bits
        return CodecOutput(self.decoder(received), bits, received, bits.mean())
