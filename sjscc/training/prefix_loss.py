"""Training pieces of the progressive codec: the loss over prefixes and the warm start from a shipped bundle.

Loss (steps 2 and 3, channel in the loop)::

    L = mean_{t in P} CE(tail(F'_t), y) + (alpha - firing_rate(z))^2

with ``P`` all prefix lengths 1..T, or T plus ``k - 1`` lengths drawn from 1..T-1 per batch (cheaper, still an
unbiased estimate of the all-prefix mean over the sampled part). The bits are the full T steps through the
channel; each prefix is read off one reconstructor run (:meth:`ProgressiveDecoder.prefix_features`), so the
extra cost over the fixed-T loss is the tail run once per prefix. The firing-rate term is the fixed codec's.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from sjscc.common.bundle import DEVICE_FILE, EDGE_FILE, load_bundle
from sjscc.common.channels import NoiselessChannel
from sjscc.common.codecs.progressive import converters_from_fixed
from sjscc.common.model import SplitModel


def sample_prefixes(timesteps: int, count: int, generator: torch.Generator | None) -> list[int]:
    """The prefix lengths of one batch: all of 1..T when ``count`` is 0 or >= T, else T and ``count - 1`` others."""
    if count < 0:
        raise ValueError(f"prefixes must be >= 0 (0: all), got {count}")
    if count == 0 or count >= timesteps:
        return list(range(1, timesteps + 1))
    others = torch.randperm(timesteps - 1, generator=generator)[: count - 1] + 1
    return sorted([*others.tolist(), timesteps])


def prefix_logits(model: SplitModel, inputs: torch.Tensor, prefixes: list[int],
                  channel: NoiselessChannel | None = None, p: float = 0.0,
                  generator: torch.Generator | None = None,
                  is_feature: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Logits after each prefix length in ``prefixes`` and the sent bits ``[B, T, ...]``.

    The tail runs once on all prefixes stacked along the batch (its BN is in eval mode whenever it is frozen).
    """
    feature = inputs if is_feature else model.head(inputs)
    bits = model.codec.encoder(feature)
    received = channel(bits, p, generator) if channel is not None else bits
    features = model.codec.decoder.prefix_features(received, prefixes)
    logits = model.tail(torch.cat(features))
    return list(logits.chunk(len(prefixes))), bits


def prefix_loss(logits: list[torch.Tensor], labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over the prefixes."""
    losses = [torch.nn.functional.cross_entropy(x, labels, label_smoothing=label_smoothing) for x in logits]
    return torch.stack(losses).mean()


def bundle_init_state(path: str | Path, codec: bool = True) -> dict[str, torch.Tensor]:
    """Weights to initialise a training run from a bundle (hashes verified, safetensors only, never a pickle).

    Always the backbone (``head.*``, ``tail.*``); with ``codec``, also the bundle's codec tensors and, for a
    fixed-T ``snn`` bundle, prefix converters derived from its converter (:func:`converters_from_fixed`). The
    caller keeps the tensors whose names and shapes fit its model.
    """
    bundle = load_bundle(path)
    state: dict[str, torch.Tensor] = {}
    for name in (DEVICE_FILE, EDGE_FILE):
        try:
            state.update(load_file(bundle.path / name))
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{bundle.path / name} is not a readable safetensors file: {error}") from None
    if not codec:
        return {k: v for k, v in state.items() if k.startswith(("head.", "tail."))}
    state.update(converters_from_fixed(state, bundle.timesteps))
    return state
