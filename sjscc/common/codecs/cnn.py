"""The BottleNet++-style CNN baseline with an n-bit uniform quantizer (SNN-SC Sec. IV-A, Fig. 3)."""

from __future__ import annotations

import torch
from torch import nn

from sjscc.common.codecs.base import Codec, CodecConfig


def quantize(x: torch.Tensor, n_bits: int) -> torch.Tensor:
    """``round(x * (2^n - 1))`` for x in [0, 1]; straight-through (identity) backward on the levels."""
    levels = 2**n_bits - 1
    scaled = x * levels
    return scaled + (torch.round(scaled) - scaled).detach()


def dequantize(levels: torch.Tensor, n_bits: int) -> torch.Tensor:
    """``X^q / (2^n - 1)``."""
    return levels / (2**n_bits - 1)


def _bit_weights(n_bits: int, like: torch.Tensor) -> torch.Tensor:
    """Place values of the n bit planes, most significant first, normalized to sum to 1."""
    return (2.0 ** torch.arange(n_bits - 1, -1, -1, device=like.device, dtype=like.dtype)) / (2**n_bits - 1)


def to_bit_planes(x: torch.Tensor, n_bits: int) -> torch.Tensor:
    """``[B, c, h, w]`` in [0, 1] -> ``[B, n, c, h, w]`` bits (MSB first).

    The forward value is the exact binary expansion of ``round(x (2^n-1))``; the backward pass is set up
    so that :func:`from_bit_planes` of the result has gradient 1 w.r.t. ``x`` (quantizer as identity).
    """
    levels = torch.round(x.detach() * (2**n_bits - 1)).to(torch.int64)
    shifts = torch.arange(n_bits - 1, -1, -1, device=x.device)
    hard = ((levels.unsqueeze(1) >> shifts.view(1, -1, 1, 1, 1)) & 1).to(x.dtype)
    return hard + (x - x.detach()).unsqueeze(1)


def from_bit_planes(bits: torch.Tensor) -> torch.Tensor:
    """``[B, n, c, h, w]`` bits -> dequantized values in [0, 1]."""
    weights = _bit_weights(bits.shape[1], bits)
    return (bits * weights.view(1, -1, 1, 1, 1)).sum(dim=1)


class CNNEncoder(nn.Module):
    """Conv-BN-ReLU (c -> c1), Conv-BN-Sigmoid (c1 -> c2), then n-bit quantization into bit planes."""

    def __init__(self, c: int, c1: int, c2: int, n_bits: int) -> None:
        super().__init__()
        self.n_bits = n_bits
        self.layers = nn.Sequential(
            nn.Conv2d(c, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.Sigmoid(),
        )

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return to_bit_planes(self.layers(feature), self.n_bits)


class CNNDecoder(nn.Module):
    """Dequantize, then the mirror image of the encoder: Conv-BN-ReLU (c2 -> c1), Conv-BN-ReLU (c1 -> c).

    The last ReLU matches the non-negative post-ReLU features the backbone's tail expects.
    """

    def __init__(self, c2: int, c1: int, c: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(c2, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(inplace=True),
            nn.Conv2d(c1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
        )

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        return self.layers(from_bit_planes(bits))


class CNNCodec(Codec):
    """``cnn-q<n>``: n-bit quantization sends n bit planes, the same bits as an SNN with T = n."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__(f"cnn-q{config.timesteps}", config)
        c = config
        self.encoder = CNNEncoder(c.in_channels, c.c1, c.c2, c.timesteps)
        self.decoder = CNNDecoder(c.c2, c.c1, c.in_channels)
