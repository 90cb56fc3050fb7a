"""The SNN-SC codec (SNN-SC Sec. III-B; S-JSCC): spiking encoder, reconstructor and converter."""

from __future__ import annotations

import torch
from torch import nn

from sjscc.common.codecs.base import Codec, CodecConfig
from sjscc.common.neurons import IF, build_neuron


def conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution (stride 1, padding 1: spatial size kept) followed by batch norm."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels)
    )


def _per_step(module: nn.Module, sequence: torch.Tensor) -> torch.Tensor:
    """Apply a stateless module to each step of ``[T, B, ...]`` at once (T*B as the batch)."""
    steps, batch = sequence.shape[:2]
    return module(sequence.flatten(0, 1)).unflatten(0, (steps, batch))


class SNNEncoder(nn.Module):
    """``z^t = E2(E1(F))`` for t = 1..T (Eq. 4): Conv-BN-IF (c -> c1), Conv-BN-IF (c1 -> c2).

    F is the same at every step and the weights are shared over steps, so the first Conv-BN is computed
    once and its current fed to the IF neuron T times: the same numbers as the naive loop
    (:meth:`forward_naive`) for a fraction of the cost.
    """

    def __init__(self, c: int, c1: int, c2: int, timesteps: int, v_threshold: float = 1.0) -> None:
        super().__init__()
        self.timesteps = timesteps
        self.block1 = conv_bn(c, c1)
        self.if1 = IF(v_threshold)
        self.block2 = conv_bn(c1, c2)
        self.if2 = IF(v_threshold)

    def _spike_sequence(self, current1: torch.Tensor) -> torch.Tensor:
        (spikes1,) = self.if1(current1)
        (spikes2,) = self.if2(_per_step(self.block2, spikes1))
        return spikes2.transpose(0, 1)  # [B, T, c2, h, w]

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        current = self.block1(feature)
        return self._spike_sequence(current.unsqueeze(0).expand(self.timesteps, *current.shape))

    def forward_naive(self, feature: torch.Tensor) -> torch.Tensor:
        """Reference: recompute the first Conv-BN at each of the T steps."""
        repeated = feature.unsqueeze(0).repeat(self.timesteps, *([1] * feature.dim()))
        return self._spike_sequence(_per_step(self.block1, repeated))


class Reconstructor(nn.Module):
    """``S^t, M^t = R2(R1(z^t))`` (Eq. 6): Conv-BN-IF (c2 -> c1), Conv-BN-<last> (c1 -> c).

    ``last`` is ``ihf`` (the papers' model), ``if`` or ``ihf-m`` (the ablations); its outputs (spikes
    and/or post-reset membrane potentials, each ``[T, B, c, h, w]``) go to the converter.
    """

    def __init__(self, c2: int, c1: int, c: int, last: str = "ihf", v_threshold: float = 1.0) -> None:
        super().__init__()
        self.block1 = conv_bn(c2, c1)
        self.if1 = IF(v_threshold)
        self.block2 = conv_bn(c1, c)
        self.last = build_neuron(last, v_threshold=v_threshold)

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.last.outputs

    def forward(self, bits: torch.Tensor) -> tuple[torch.Tensor, ...]:
        sequence = bits.transpose(0, 1)  # [T, B, c2, h, w]
        (spikes1,) = self.if1(_per_step(self.block1, sequence))
        return self.last(_per_step(self.block2, spikes1))


class Converter(nn.Module):
    """``F' = sigmoid(Linear([S^1, M^1, ..., S^T, M^T]))`` per element (Eq. 7).

    One ``Linear(K*T -> 1)`` shared by all c*h*w elements, K = number of reconstructor outputs
    (2 for IHF, 1 for IF or IHF-m).
    """

    def __init__(self, timesteps: int, outputs: tuple[str, ...] = ("spike", "mem")) -> None:
        super().__init__()
        self.outputs = tuple(outputs)
        self.linear = nn.Linear(len(self.outputs) * timesteps, 1)

    def forward(self, outputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        # Linear over the inputs ordered S^1, M^1, S^2, M^2, ...: weight index t*K + k. Written as a weighted
        # sum over (t, k) so no [B, c, h, w, T*K] copy is materialised; same numbers as self.linear(stacked).
        steps = outputs[0].shape[0]
        weight = self.linear.weight.view(steps, len(outputs))
        mixed = sum(torch.einsum("tbchw,t->bchw", out, weight[:, k]) for k, out in enumerate(outputs))
        return torch.sigmoid(mixed + self.linear.bias)


class SNNDecoder(nn.Module):
    """Edge half: reconstructor then converter."""

    def __init__(self, c2: int, c1: int, c: int, timesteps: int, last: str, v_threshold: float) -> None:
        super().__init__()
        self.reconstructor = Reconstructor(c2, c1, c, last, v_threshold)
        self.converter = Converter(timesteps, self.reconstructor.outputs)

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        return self.converter(self.reconstructor(bits))


class SNNCodec(Codec):
    """SNN-SC: the spikes are the bitstream, T steps of ``c2*h*w`` bits each."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__("snn", config)
        c = config
        self.encoder = SNNEncoder(c.in_channels, c.c1, c.c2, c.timesteps, c.v_threshold)
        self.decoder = SNNDecoder(c.c2, c.c1, c.in_channels, c.timesteps, c.reconstructor_neuron, c.v_threshold)
