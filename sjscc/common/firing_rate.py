"""The firing-rate regularizer of SNN-SC Eq. 10: ``Loss = CE + (alpha - firing_rate)^2``.

At a firing rate of 0.5 a binary symmetric channel leaves the expected rate unchanged, which is why
the papers pick alpha = 0.5.
"""

from __future__ import annotations

import torch


def firing_rate(spikes: torch.Tensor) -> torch.Tensor:
    """Mean of a {0,1} spike tensor over all its elements (Eq. 9)."""
    return spikes.float().mean()


def firing_rate_penalty(spikes: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """``(alpha - firing_rate)^2``; differentiable through the surrogate gradient of the spikes."""
    return (alpha - firing_rate(spikes)) ** 2
