"""Multi-step spiking neurons on SpikingJelly: IF, IHF and IHF-m.

All three share one membrane. With soft reset and threshold V_th (SNN-SC Eq. 8)::

    m_t = m_{t-1} + I_t          (charge)
    S_t = [m_t >= V_th]          (fire; DESIGN.md uses >=, as SpikingJelly's Heaviside does)
    m_t = m_t - S_t * V_th       (soft reset)
    M_t = m_t                    (IHF's analog output: the *post-reset* potential)

IF outputs S only, IHF-m outputs M only, IHF outputs both. SpikingJelly's
``IFNode(v_reset=None, step_mode="m", store_v_seq=True)`` computes exactly this and keeps M in
``v_seq``; the backward pass of the Heaviside step uses a shifted sigmoid surrogate.
Tensors are time-major, ``[T, B, ...]``, like SpikingJelly's multi-step mode.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from spikingjelly.activation_based import neuron, surrogate
from torch import nn

# Output names a reconstructor's last neuron can expose to the converter.
SPIKE = "spike"
MEMBRANE = "mem"


class _MultiStepIF(nn.Module):
    """Soft-reset integrate-and-fire over a whole sequence; state never leaks between calls."""

    outputs: tuple[str, ...] = (SPIKE,)

    def __init__(self, v_threshold: float = 1.0, surrogate_alpha: float = 4.0) -> None:
        super().__init__()
        self.node = neuron.IFNode(
            v_threshold=v_threshold,
            v_reset=None,
            surrogate_function=surrogate.Sigmoid(alpha=surrogate_alpha),
            step_mode="m",
            store_v_seq=True,
        )

    def _run(self, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (S, M), both ``[T, ...]``, for input current ``[T, ...]``."""
        self.node.reset()
        spikes = self.node(current)
        membrane = self.node.v_seq
        self.node.reset()  # drop references to this batch's graph
        return spikes, membrane

    def forward(self, current: torch.Tensor) -> tuple[torch.Tensor, ...]:
        spikes, membrane = self._run(current)
        by_name = {SPIKE: spikes, MEMBRANE: membrane}
        return tuple(by_name[name] for name in self.outputs)


class IF(_MultiStepIF):
    """Integrate-and-fire: binary spikes S only."""

    outputs = (SPIKE,)


class IHF(_MultiStepIF):
    """Integrate and Hybrid Fire (SNN-SC Sec. III-C): spikes S and post-reset potential M."""

    outputs = (SPIKE, MEMBRANE)


class IHFm(_MultiStepIF):
    """IHF-m, the ablation that keeps only the post-reset membrane potential M."""

    outputs = (MEMBRANE,)


NEURONS: dict[str, Callable[..., _MultiStepIF]] = {"if": IF, "ihf": IHF, "ihf-m": IHFm}


def build_neuron(name: str, **kwargs: float) -> _MultiStepIF:
    """Build a neuron by registry name (``if``, ``ihf``, ``ihf-m``)."""
    try:
        return NEURONS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown neuron {name!r}; known: {sorted(NEURONS)}") from None
