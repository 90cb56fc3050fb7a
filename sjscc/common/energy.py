"""Energy per image of each half, from counted operations (the SNN literature's first-order estimate).

A layer whose input is binary (spikes, or any {0,1} tensor) needs no multiplications: every 1 adds a
weight to each output it reaches, an *accumulate* (AC, a synaptic operation) per 1, so its cost follows the
measured firing rate. Any other layer costs one *multiply-accumulate* (MAC) per weight use. Energy is
``ACs x E_AC + MACs x E_MAC`` with, by default, Horowitz's 45 nm figures for 32-bit floats
(M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, p. 10-14):
add 0.9 pJ, multiply 3.7 pJ, so E_AC = 0.9 pJ and E_MAC = 3.7 + 0.9 = 4.6 pJ. These are the constants of
most SNN energy comparisons (e.g. Spikformer, Zhou et al., ICLR 2023), which makes numbers comparable.

The counting is SpikingJelly's (``spikingjelly.activation_based.op_counter``): its ``SynOpCounter`` counts,
for convolutions and matrix products fed a binary tensor, the exact weight uses of the nonzero inputs
(padding included); its ``MACCounter`` counts the weight uses of those fed real numbers. Both intercept
the aten operators of one real forward pass (``DispatchCounterMode``), so what is counted is what runs.
Counted: convolutions and linear/matrix products. Not counted: batch norm (folded into the preceding
convolution at inference), neuron state updates, activations, pooling, residual additions and memory
traffic; the estimate is a lower bound on compute energy, the same for both codecs.

The edge half is counted on the bits as sent (a noiseless channel): channel errors change its firing
rates, not the model's structure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from spikingjelly.activation_based.op_counter import DispatchCounterMode, MACCounter, SynOpCounter
from torch import nn

aten = torch.ops.aten
WEIGHT_OPS = (aten.convolution.default, aten.mm.default, aten.addmm.default, aten.bmm.default,
              aten.baddbmm.default)
"""The aten operators whose weight uses are counted (convolutions and linear/matrix products)."""

HOROWITZ_2014 = "Horowitz, ISSCC 2014, 45 nm, 32-bit float: add 0.9 pJ, multiply 3.7 pJ"


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation: ``pj_per_ac`` per accumulate, ``pj_per_mac`` per multiply-accumulate."""

    pj_per_ac: float = 0.9
    pj_per_mac: float = 4.6
    source: str = HOROWITZ_2014

    def picojoules(self, macs: float, accumulates: float) -> float:
        return macs * self.pj_per_mac + accumulates * self.pj_per_ac


@dataclass
class OperationCount:
    """Operations of one part over ``images`` images: MACs (real-valued input) and ACs (binary input)."""

    macs: int = 0
    accumulates: int = 0
    images: int = 0

    def per_image(self, model: EnergyModel) -> dict[str, float]:
        n = max(1, self.images)
        return {"macs": self.macs / n, "accumulates": self.accumulates / n,
                "energy_uj": model.picojoules(self.macs, self.accumulates) / n * 1e-6}


def count_operations(forward: Callable[[], Any], images: int) -> OperationCount:
    """Run ``forward()`` once under SpikingJelly's counters; the MACs and ACs of its weight operators."""
    accumulates, macs = SynOpCounter(), MACCounter()
    with torch.no_grad(), DispatchCounterMode([accumulates, macs]):
        forward()
    syn = accumulates.get_counts().get("Global", {})
    mac = macs.get_counts().get("Global", {})
    return OperationCount(sum(int(mac.get(op, 0)) for op in WEIGHT_OPS),
                          sum(int(syn.get(op, 0)) for op in WEIGHT_OPS), images)


def _decoder_parts(decoder: nn.Module) -> dict[str, nn.Module]:
    """The SNN decoder's reconstructor and converter as separate parts; any other decoder as one."""
    children = dict(decoder.named_children())
    if {"reconstructor", "converter"} <= children.keys():
        return {"reconstructor": children["reconstructor"], "converter": children["converter"]}
    return {"decoder": decoder}


@dataclass
class SplitOperations:
    """Counted operations of each part of a split model, accumulated over batches."""

    device: dict[str, OperationCount] = field(default_factory=dict)
    edge: dict[str, OperationCount] = field(default_factory=dict)

    def add_batch(self, model: nn.Module, images: torch.Tensor) -> None:
        """Count one batch of (normalized) images through head, encoder, decoder parts and tail."""
        model.eval()
        n = len(images)
        with torch.no_grad():
            feature = model.head(images)
            bits = model.codec.encoder(feature).float()
        parts_device = {"head": (model.head, images), "encoder": (model.codec.encoder, feature)}
        for name, (module, inputs) in parts_device.items():
            self._merge(self.device, name, count_operations(lambda m=module, x=inputs: m(x), n))
        decoder = model.codec.decoder
        parts = _decoder_parts(decoder)
        if "reconstructor" in parts:
            with torch.no_grad():
                outputs = parts["reconstructor"](bits)
                decoded = parts["converter"](outputs)
            self._merge(self.edge, "reconstructor", count_operations(lambda: parts["reconstructor"](bits), n))
            self._merge(self.edge, "converter", count_operations(lambda: parts["converter"](outputs), n))
        else:
            with torch.no_grad():
                decoded = decoder(bits)
            self._merge(self.edge, "decoder", count_operations(lambda: decoder(bits), n))
        self._merge(self.edge, "tail", count_operations(lambda: model.tail(decoded), n))

    @staticmethod
    def _merge(half: dict[str, OperationCount], name: str, count: OperationCount) -> None:
        if name in half:
            previous = half[name]
            half[name] = OperationCount(previous.macs + count.macs, previous.accumulates + count.accumulates,
                                        previous.images + count.images)
        else:
            half[name] = count


def _half_report(parts: dict[str, OperationCount], model: EnergyModel) -> dict[str, Any]:
    total = OperationCount(sum(c.macs for c in parts.values()), sum(c.accumulates for c in parts.values()),
                           max((c.images for c in parts.values()), default=0))
    return {**total.per_image(model), "parts": {name: count.per_image(model) for name, count in parts.items()}}


def estimate_energy(model: nn.Module, batches: Iterable[torch.Tensor],
                    energy_model: EnergyModel | None = None) -> dict[str, Any]:
    """Energy per image of the device half (head + encoder) and the edge half (decoder parts + tail).

    ``batches`` are normalized images; the firing rates behind the accumulates are those measured on them.
    Returns per-image ``macs``, ``accumulates`` and ``energy_uj`` for each half and each part, the total,
    and the constants used.
    """
    energy_model = energy_model or EnergyModel()
    counted = SplitOperations()
    images = 0
    for batch in batches:
        counted.add_batch(model, batch)
        images += len(batch)
    if images == 0:
        raise ValueError("an energy estimate needs at least one image")
    device, edge = _half_report(counted.device, energy_model), _half_report(counted.edge, energy_model)
    return {
        "images": images,
        "device": device,
        "edge": edge,
        "total_energy_uj": device["energy_uj"] + edge["energy_uj"],
        "constants": {"pj_per_ac": energy_model.pj_per_ac, "pj_per_mac": energy_model.pj_per_mac,
                      "source": energy_model.source},
        "counter": "spikingjelly.activation_based.op_counter: SynOpCounter (binary input) + MACCounter "
                   "(real input) on convolutions and matrix products; batch norm, neurons, pooling, additions "
                   "not counted",
    }


def format_energy(energy: dict[str, Any]) -> str:
    """An :func:`estimate_energy` report as text: the total, then one line per half with its parts."""
    lines = [f"  energy per image over {energy['images']} images ({energy['constants']['pj_per_mac']} pJ/MAC, "
             f"{energy['constants']['pj_per_ac']} pJ/AC): total {energy['total_energy_uj']:.2f} uJ"]
    for half in ("device", "edge"):
        h = energy[half]
        parts = ", ".join(f"{name} {part['energy_uj']:.2f}" for name, part in h["parts"].items())
        lines.append(f"    {half:<6} {h['macs'] / 1e6:9.2f} M MAC {h['accumulates'] / 1e6:9.2f} M AC "
                     f"{h['energy_uj']:8.2f} uJ  ({parts})")
    return "\n".join(lines)
