"""The progressive SNN codec (``snn-progressive``): the edge decodes after any prefix of t <= T time steps.

The encoder is SNN-SC's (Eq. 4) and the reconstructor's IF/IHF neurons are causal, so the first t steps of
spikes give exactly the first t steps of ``S^t, M^t`` whatever comes later. Only the converter (Eq. 7) reads
all T steps at once. This codec keeps the encoder and the reconstructor of :mod:`sjscc.common.codecs.snn`
unchanged (same modules, same parameter names, so a fixed-T ``snn`` bundle's weights load into it) and gives
the edge **one converter per prefix length**: ``F'_t = sigmoid(Linear_{2t->1}([S^1, M^1, ..., S^t, M^t]))``.

Why one converter per prefix rather than one readout for all prefixes: a converter has only ``2t + 1``
parameters (80 in all for T = 8), each prefix gets the weighting that is best for it (a fixed readout
would have to rescale a partial sum whose statistics change with t), and decoding a prefix costs the
same as decoding the full sequence did. The tail is shared by all prefixes and learns, through the loss
over prefixes (:func:`prefix_logits` in training), to read the rougher early features too.
"""

from __future__ import annotations

import torch
from torch import nn

from sjscc.common.codecs.base import Codec, CodecConfig
from sjscc.common.codecs.snn import Converter, Reconstructor, SNNEncoder

CODEC_NAME = "snn-progressive"


class ProgressiveDecoder(nn.Module):
    """Edge half: the causal reconstructor, then the converter of the received prefix length."""

    def __init__(self, c2: int, c1: int, c: int, timesteps: int, last: str, v_threshold: float) -> None:
        super().__init__()
        self.timesteps = timesteps
        self.reconstructor = Reconstructor(c2, c1, c, last, v_threshold)
        self.converters = nn.ModuleList(Converter(t, self.reconstructor.outputs) for t in range(1, timesteps + 1))

    def _check_steps(self, steps: int) -> None:
        if not 1 <= steps <= self.timesteps:
            raise ValueError(f"a prefix of {steps} time steps: this decoder reads 1 to {self.timesteps}")

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        """Bits ``[B, t, c2, h, w]`` for any prefix length t in 1..T -> feature ``F'_t``."""
        steps = bits.shape[1]
        self._check_steps(steps)
        return self.converters[steps - 1](self.reconstructor(bits))

    def prefix_features(self, bits: torch.Tensor, prefixes: list[int]) -> list[torch.Tensor]:
        """``F'_t`` for every t in ``prefixes`` from one run of the reconstructor over the longest prefix.

        Identical to calling :meth:`forward` on each prefix (the reconstructor is causal), for the cost of one.
        """
        for steps in prefixes:
            self._check_steps(steps)
        outputs = self.reconstructor(bits[:, : max(prefixes)])
        return [self.converters[t - 1](tuple(out[:t] for out in outputs)) for t in prefixes]


class ProgressiveSNNCodec(Codec):
    """SNN-SC whose bitstream can stop after any time step; ``forward`` decodes all T steps."""

    progressive = True

    def __init__(self, config: CodecConfig) -> None:
        super().__init__(CODEC_NAME, config)
        c = config
        self.encoder = SNNEncoder(c.in_channels, c.c1, c.c2, c.timesteps, c.v_threshold)
        self.decoder = ProgressiveDecoder(c.c2, c.c1, c.in_channels, c.timesteps, c.reconstructor_neuron,
                                          c.v_threshold)


def is_progressive(codec: nn.Module | None) -> bool:
    """Whether a codec's decoder reads any prefix of its T steps."""
    return bool(getattr(codec, "progressive", False))


def converters_from_fixed(state: dict[str, torch.Tensor], timesteps: int) -> dict[str, torch.Tensor]:
    """Warm-start weights for the prefix converters from a fixed-T ``snn`` converter (``codec.decoder.converter``).

    Converter t gets the first ``K*t`` weights of the fixed one scaled by ``T/t`` (a prefix's weighted sum then
    has the full sequence's scale when the steps look alike) and the same bias. Only a starting point: training
    with the loss over prefixes adjusts them. Returns an empty dict when ``state`` has no fixed converter.
    """
    weight = state.get("codec.decoder.converter.linear.weight")
    bias = state.get("codec.decoder.converter.linear.bias")
    if weight is None or bias is None or weight.shape[1] % timesteps:
        return {}
    per_step = weight.shape[1] // timesteps
    out = {}
    for t in range(1, timesteps + 1):
        prefix = f"codec.decoder.converters.{t - 1}.linear."
        out[prefix + "weight"] = weight[:, : per_step * t] * (timesteps / t)
        out[prefix + "bias"] = bias.clone()
    return out
