"""Where tensors run: one rule for every process, so ``auto`` means the same thing everywhere."""

from __future__ import annotations

import torch


def select_device(preference: str = "auto") -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; anything else is taken as a torch device name."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"compute device {preference!r} requested but CUDA is not available")
    return device
