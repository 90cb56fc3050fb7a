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


def set_torch_threads(threads: int) -> int:
    """Use ``threads`` intra-op threads (0 keeps torch's default); returns the number in use.

    A device and an edge on one machine each default to every core, so together they oversubscribe it; giving
    each half the cores is the setting docs/PERFORMANCE.md measures.
    """
    if threads < 0:
        raise ValueError(f"torch threads must be >= 0 (0: torch's default), got {threads}")
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
