"""Evaluation of a progressive bundle: accuracy against the bits actually sent.

Two families of rows, both added to an ``sjscc eval`` report's ``results`` beside the fixed-T sweep:

- **fixed prefix** (``"mode": "prefix"``): the model cut at every prefix t = 1..T, i.e. ``t * bits_per_step``
  bits per image for every image (the rate ladder the one model offers without feedback);
- **confidence** (``"mode": "progressive"``, ``"confidence": tau``): the streaming rule of the device: after
  each step the edge reports ``max softmax`` of its current logits, and the device stops at the first t whose
  confidence is >= tau, or at T. The answer is the top-1 after the stopping step. Per row: accuracy (mean and
  std over the repeats), ``mean_payload_bits``, ``mean_steps`` and the distribution of the stopping step.

For a ``cnn-q<n>`` bundle the same fixed-prefix rows cut its n bit planes (most significant first) after t planes:
the receiver reads the planes not sent as 0 (the level rounded down to t bits), which is the rate ladder the
one trained n-bit codec offers without retraining (a CNN trained at t bits would do at least as well). A
fixed-T ``snn`` bundle has no prefix decoder (its converter reads all T steps) and is refused.

The channel noise is drawn exactly as :func:`sjscc.training.evaluate.sweep` draws it (the same seeds under the
same ``draw_keys``, over the full ``[N, T, ...]`` bits, batch by batch), and prefix t reads the first t received
steps. So the t = T row equals the fixed sweep's row at the same p, and every threshold sees the same noise
(common random numbers). The feedback link that carries the confidence back to the device is assumed error-free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sjscc.common.bundle import load_bundle
from sjscc.common.channels import build_channel, check_probability
from sjscc.common.codecs import is_progressive
from sjscc.common.devices import select_device
from sjscc.common.model import SplitModel
from sjscc.training.data import Normalize
from sjscc.training.evaluate import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DRAW_KEYS,
    EncodedSet,
    _index_batches,
    check_draw_keys,
    draw_seed,
    encode,
    load_eval_data,
)
from sjscc.training.selection import DEFAULT_MARGIN, HalfTally, select_thresholds, split_halves


def parse_thresholds(text: str | Sequence[float]) -> list[float]:
    """``"0.5,0.9"`` -> ``[0.5, 0.9]``; each a confidence in (0, 1]."""
    items = text.split(",") if isinstance(text, str) else list(text)
    values = []
    for item in items:
        try:
            value = float(item)
        except (TypeError, ValueError):
            raise ValueError(f"--confidence {text!r}: {str(item).strip()!r} is not a number; "
                             "write e.g. 0.5,0.8,0.9") from None
        if not 0.0 < value <= 1.0 or math.isnan(value):
            raise ValueError(f"--confidence values are max-softmax thresholds in (0, 1], got {value}")
        values.append(value)
    if not values:
        raise ValueError("--confidence needs at least one threshold, e.g. 0.5,0.8,0.9")
    return list(dict.fromkeys(values))


def stopping_step(confidence: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per image, the 1-based first step whose confidence is >= ``threshold``, or T (``confidence``: ``[T, N]``)."""
    reached = confidence >= threshold
    reached[-1] = True
    return reached.to(torch.int8).argmax(0) + 1  # argmax returns the first maximal index


@torch.no_grad()
def prefix_probabilities(model: SplitModel, encoded: EncodedSet, channel: str | None, p: float,
                         generator: torch.Generator | None, device: torch.device,
                         batch_size: int = DEFAULT_BATCH_SIZE, erasure_policy: str = "random") -> torch.Tensor:
    """Softmax after every prefix t = 1..T, ``[T, N, classes]`` (CPU), through one channel draw of all T steps."""
    model.eval()
    check_prefix_codec(model)
    link = build_channel(channel, erasure_policy) if channel is not None else None
    steps = list(range(1, model.codec.timesteps + 1))
    parts = []
    for part in _index_batches(len(encoded), batch_size):
        bits = encoded.bits[part].to(device).float()
        received = link(bits, p, generator) if link is not None else bits
        if is_progressive(model.codec):
            features = model.codec.decoder.prefix_features(received, steps)
        else:  # cnn-q<n>: the planes after the first t were not sent and read as 0
            keep = torch.arange(len(steps), device=received.device).view(1, -1, 1, 1, 1)
            features = [model.codec.decoder(received * (keep < t)) for t in steps]
        logits = model.tail(torch.cat(features)).view(len(steps), bits.shape[0], -1)
        parts.append(torch.softmax(logits, -1).cpu())
    return torch.cat(parts, 1)


def check_prefix_codec(model: SplitModel) -> None:
    """Prefix rows exist for ``snn-progressive`` and (bit-plane truncation) ``cnn-q<n>``; ValueError otherwise."""
    name = getattr(model.codec, "name", None)
    if not (is_progressive(model.codec) or str(name).startswith("cnn-q")):
        raise ValueError(f"codec {name!r} has no prefix decoder: fixed-prefix rows need snn-progressive (or "
                         "cnn-q<n>, cut after t bit planes)")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def progressive_sweep(model: SplitModel, encoded: EncodedSet, channels: Sequence[str],
                      probabilities: Sequence[float], thresholds: Sequence[float], repeats: int = 10, seed: int = 0,
                      device: torch.device | str = "cpu", batch_size: int = DEFAULT_BATCH_SIZE,
                      erasure_policy: str = "random",
                      halves: tuple[torch.Tensor, torch.Tensor] | None = None,
                      draw_keys: str = DEFAULT_DRAW_KEYS) -> list[dict[str, Any]]:
    """Fixed-prefix rows (t = 1..T) and confidence rows (one per threshold) for every (channel, p).

    ``halves`` (two index tensors, :func:`sjscc.training.selection.split_halves`) adds to every row its numbers
    on each half (``"halves": {"A": ..., "B": ...}``), so a threshold can be picked on one and reported on the
    other. Draws are seeded as :func:`sjscc.training.evaluate.sweep` seeds them under ``draw_keys``."""
    check_prefix_codec(model)
    check_draw_keys(draw_keys)
    if thresholds and not is_progressive(model.codec):
        raise ValueError("a confidence sweep needs a progressive codec (snn-progressive)")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = torch.device(device)
    steps = model.codec.timesteps
    bits_per_step = int(encoded.bits[0, 0].numel()) if len(encoded) else 0
    labels = encoded.labels
    rows: list[dict[str, Any]] = []
    for channel in channels:
        for p_index, p in enumerate(probabilities):
            p = check_probability(p)
            prefix_hits = [[] for _ in range(steps)]
            by_threshold: dict[float, dict[str, list]] = {tau: {"acc": [], "steps": [], "hist": []}
                                                          for tau in thresholds}
            n = max(1, len(encoded))
            prefix_halves = [HalfTally(halves) for _ in range(steps)] if halves is not None else None
            rule_halves = {tau: HalfTally(halves) for tau in thresholds} if halves is not None else None
            for repeat in range(repeats):
                generator = torch.Generator(device=device).manual_seed(
                    draw_seed(draw_keys, seed, repeat, channel, p, p_index))
                probs = prefix_probabilities(model, encoded, channel, p, generator, device, batch_size,
                                             erasure_policy)
                confidence, predicted = probs.max(-1)  # [T, N] each
                correct = predicted == labels.unsqueeze(0)
                for t in range(steps):
                    prefix_hits[t].append(int(correct[t].sum()) / n)
                    if prefix_halves is not None:
                        prefix_halves[t].add(correct[t], torch.full_like(confidence[t], (t + 1) * bits_per_step))
                for tau, acc in by_threshold.items():
                    stop = stopping_step(confidence, tau)
                    hit = correct.gather(0, (stop - 1).long().unsqueeze(0))[0]
                    acc["acc"].append(int(hit.sum()) / n)
                    acc["steps"].append(float(stop.float().mean()))
                    acc["hist"].append(torch.bincount(stop.long() - 1, minlength=steps).tolist())
                    if rule_halves is not None:
                        rule_halves[tau].add(hit, stop.float() * bits_per_step)
            for t in range(steps):
                mean, std = _mean_std(prefix_hits[t])
                rows.append({"channel": channel, "p": float(p), "mode": "prefix", "timesteps": t + 1,
                             "accuracy_mean": mean, "accuracy_std": std, "repeats": repeats,
                             "mean_payload_bits": float((t + 1) * bits_per_step), "accuracies": prefix_hits[t]})
                if prefix_halves is not None:
                    rows[-1]["halves"] = prefix_halves[t].summary()
            for tau, acc in by_threshold.items():
                mean, std = _mean_std(acc["acc"])
                mean_steps = sum(acc["steps"]) / repeats
                distribution = [sum(h[t] for h in acc["hist"]) / (repeats * n) for t in range(steps)]
                rows.append({"channel": channel, "p": float(p), "mode": "progressive", "confidence": tau,
                             "accuracy_mean": mean, "accuracy_std": std, "repeats": repeats,
                             "mean_steps": mean_steps, "mean_payload_bits": mean_steps * bits_per_step,
                             "steps_distribution": distribution, "accuracies": acc["acc"]})
                if rule_halves is not None:
                    rows[-1]["halves"] = rule_halves[tau].summary()
    return rows


def evaluate_progressive(path: str | Path, thresholds: Sequence[float], data_root: str | Path | None = None,
                         dataset: str | None = None, split: str = "test", channels: Sequence[str] = ("bsc",),
                         probabilities: Sequence[float] = (0.0,), repeats: int = 10, seed: int = 0,
                         batch_size: int = DEFAULT_BATCH_SIZE, limit: int = 0, device: str = "auto",
                         erasure_policy: str = "random", download: bool = False, halves_seed: int | None = None,
                         margin: float = DEFAULT_MARGIN, draw_keys: str = DEFAULT_DRAW_KEYS) -> dict[str, Any]:
    """The progressive part of an ``sjscc eval`` report: rows for ``results`` and what they were measured with.

    ``halves_seed`` splits the images into halves A and B (:mod:`sjscc.training.selection`): every row gets its
    numbers per half, and with thresholds the result has ``halves`` with the threshold picked on A per
    (channel, p) and its accuracy on B. A fixed-T bundle is refused with a ValueError that names its codec.
    """
    check_draw_keys(draw_keys)
    bundle = load_bundle(path)
    if thresholds and not bundle.progressive:
        raise ValueError(f"--confidence needs a progressive bundle (codec snn-progressive); {bundle.path} is "
                         f"{bundle.manifest.get('codec')!r} and always sends all {bundle.timesteps} steps")
    data, _ = load_eval_data(bundle, data_root, dataset, split, limit, download)
    torch_device = select_device(device)
    model = bundle.build(device=torch_device)
    encoded = encode(model, data, Normalize(bundle.spec.mean, bundle.spec.std), torch_device, batch_size)
    halves = split_halves(encoded.labels, halves_seed) if halves_seed is not None else None
    rows = progressive_sweep(model, encoded, channels, probabilities, thresholds, repeats, seed, torch_device,
                             batch_size, erasure_policy, halves, draw_keys)
    bits_per_step = int(encoded.bits[0, 0].numel()) if len(encoded) else 0
    out: dict[str, Any] = {"rows": rows, "progressive": {"bits_per_step": bits_per_step,
                                                         "thresholds": list(thresholds), "feedback": "error-free"}}
    if halves is not None:
        out["halves"] = {"seed": halves_seed, "n_images": [len(h) for h in halves],
                         "selection": select_thresholds(rows, margin) if thresholds else []}
    return out


def format_progressive_table(report: dict[str, Any]) -> str:
    """The fixed-prefix and confidence rows of a report as plain text."""
    lines = [f"  {'channel':<8}{'p':>6}  {'rule':<14}{'accuracy':>9}  {'std':>7}  {'bits/image':>10}  "
             f"{'steps':>5}"]
    for row in report["results"]:
        if row.get("mode") == "prefix":
            rule, steps = f"t = {row['timesteps']}", float(row["timesteps"])
        elif row.get("mode") == "progressive":
            rule, steps = f"conf >= {row['confidence']:g}", row["mean_steps"]
        else:
            continue
        lines.append(f"  {row['channel']:<8}{row['p']:>6.3f}  {rule:<14}{row['accuracy_mean']:>9.4f}  "
                     f"{row['accuracy_std']:>7.4f}  {row['mean_payload_bits']:>10.1f}  {steps:>5.2f}")
    return "\n".join(lines)
