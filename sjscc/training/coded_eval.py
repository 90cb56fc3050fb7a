"""``sjscc eval`` of a separate-coding bundle over a radio link: the served road, one LDPC block per image.

A bundle whose manifest names a ``channel_code`` (issue 24: a CNN-q<n> source + CRC + 5G LDPC) is served with its
code in the link, so its accuracy against Eb/N0 must be measured with the code too: sending its source bits
uncoded would describe another system. Each image's payload bits (``k``, in payload order) are CRC + LDPC encoded
(:class:`sjscc.common.channels.coding.CodedLink`), cross the radio link exactly as the device sends them
(:class:`sjscc.common.channels.radio.RadioChannel` at the code's modulation, Eb/N0 per information bit), reach the
decoder as the edge reads them (soft: the k-bit LLR levels dequantised; hard: the decided bits with the block's
reliability, :func:`hard_llr_magnitude`), and are BP + CRC decoded; a failed block follows the bundle's failure
policy (:func:`recover`: ``erase`` classifies fill bits, ``misclassify`` counts the image wrong).

A row is a radio row (:func:`sjscc.training.evaluate.link_rows`) plus ``bler`` (the fraction of failed blocks over
all repeats) and ``code`` (kind, CRC, k, n, rate, on_failure, fill); ``ber`` is the coded bits' hard-decision
error rate before decoding and ``p`` its closed form at the code's rate. Draws are keyed by the setting
(:func:`link_seed`), like every radio sweep.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from sjscc.common.channels import LinkSettings
from sjscc.common.channels.coding import CodedLink, hard_llr, hard_llr_magnitude, recover
from sjscc.common.channels.radio import RadioChannel, closed_form_ber, dequantize_llr
from sjscc.common.model import SplitModel


def check_coded_link(code: CodedLink, link: LinkSettings) -> None:
    """Refuse, naming the setting, what one LDPC block per image cannot be sent with (before any image is encoded)."""
    if link.modulation != code.modulation:
        raise ValueError(f"this bundle's LDPC block is sent with {code.modulation} (fixed by its manifest's "
                         f"channel_code): pass --modulation {code.modulation}, not {link.modulation}")
    if link.coherence == "step":
        raise ValueError("--coherence step has no meaning for one LDPC block per image: use packet or a number of "
                         "symbols")


def block_llrs(channel: RadioChannel | float, coded: torch.Tensor,
               generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """What BP reads for a batch of coded blocks ``[B, n]``, as the edge reads a served block, and the hard errors;
    ``channel`` is a radio link or the crossover probability of a BSC."""
    if not isinstance(channel, RadioChannel):
        flips = torch.rand(coded.shape, generator=generator) < channel
        received = torch.where(flips, 1.0 - coded, coded)
        return (2.0 * received - 1.0) * hard_llr(channel), int(flips.sum())
    out = channel.demap(coded, generator)
    settings = channel.settings
    if settings.decisions == "soft":
        llr = dequantize_llr(out.levels.long(), settings.soft_bits).view(coded.shape[0], -1)
    else:  # each block's reliability, as the device's link computes it for one served block (block_hard_llr)
        llr = (2.0 * (out.llr > 0).float() - 1.0) * hard_llr_magnitude(out.llr)
    return llr, int(out.flipped.sum())


@torch.no_grad()
def coded_pass(model: SplitModel, bits: torch.Tensor, labels: torch.Tensor, code: CodedLink,
               channel: RadioChannel | float,
               on_failure: str, fill: str, generator: torch.Generator, batch_size: int) -> tuple[int, int, int]:
    """One pass of cached payload bits ``[N, ...]`` through the coded link: (hits, failed blocks, hard errors)."""
    model.eval()
    hits = failures = errors = 0
    for start in range(0, len(bits), batch_size):
        part = bits[start: start + batch_size]
        source = part.reshape(len(part), -1).float()
        llr, flipped = block_llrs(channel, code.encode(source), generator)
        decoded, ok = code.decode(llr)
        filled, wrong = recover(decoded, ok, on_failure, fill, generator)
        logits = model.tail(model.codec.decoder(filled.view(part.shape).float()))
        right = (logits.argmax(1).cpu() == labels[start: start + batch_size]) & ~wrong
        hits += int(right.sum())
        failures += int((~ok.bool()).sum())
        errors += flipped
    return hits, failures, errors


def _repeated(model: SplitModel, bits: torch.Tensor, labels: torch.Tensor, code: CodedLink,
              channel: RadioChannel | float, on_failure: str, fill: str, seeds: Sequence[int], batch_size: int,
              bar) -> dict[str, Any]:
    """One setting over its repeats (one generator seed each): the accuracy fields, ``ber`` and ``bler``."""
    from sjscc.training.evaluate import _accuracy_fields

    hits, failures, errors = [], 0, 0
    for seed in seeds:
        hit, failed, error = coded_pass(model, bits, labels, code, channel, on_failure, fill,
                                        torch.Generator().manual_seed(seed), batch_size)
        hits.append(hit)
        failures += failed
        errors += error
        bar.update()
    draws = len(bits) * len(seeds)
    return {"ber": errors / max(1, code.n * draws), "bler": failures / max(1, draws),
            "code": {"kind": "ldpc", "crc": code.crc, "k": code.k, "n": code.n, "rate": round(code.rate, 6),
                     "on_failure": on_failure, "fill": fill},
            **_accuracy_fields(hits, len(bits))}


def coded_link_rows(model: SplitModel, bits: torch.Tensor, labels: torch.Tensor, code: CodedLink, kind: str,
                    snrs: Sequence[float], link: LinkSettings, on_failure: str, fill: str, repeats: int = 10,
                    seed: int = 0, batch_size: int = 256, progress: bool = False) -> list[dict[str, Any]]:
    """One row per Eb/N0 for cached payload bits ``[N, ...]`` (see the module docstring)."""
    from sjscc.training.evaluate import _progress, link_seed

    check_coded_link(code, link)
    rows = []
    with _progress(len(snrs) * repeats, f"{kind} {code.modulation} {link.decisions} + ldpc r={code.rate:.2f}",
                   progress) as bar:
        for snr in snrs:
            settings = dataclasses.replace(link, snr_db=snr, coderate=code.rate)
            seeds = [link_seed(seed, repeat, kind, settings) for repeat in range(repeats)]
            measured = _repeated(model, bits, labels, code, RadioChannel(kind, settings), on_failure, fill, seeds,
                                 batch_size, bar)
            row = {"channel": kind, "p": closed_form_ber(kind, settings), **settings.describe(),
                   "ber": measured.pop("ber"), "symbols": code.symbols, **measured}
            if settings.decisions == "soft":
                row["soft_bits"] = settings.soft_bits
            rows.append(row)
    return rows


def coded_bsc_rows(model: SplitModel, bits: torch.Tensor, labels: torch.Tensor, code: CodedLink,
                   probabilities: Sequence[float], on_failure: str, fill: str, repeats: int = 10, seed: int = 0,
                   batch_size: int = 256, progress: bool = False,
                   draw_keys: str = "setting") -> list[dict[str, Any]]:
    """One row per crossover probability ``p`` of a BSC on the coded bits (``ber``: measured, ``bler``, ``code``)."""
    from sjscc.training.evaluate import _progress, draw_seed

    rows = []
    with _progress(len(probabilities) * repeats, f"bsc + ldpc r={code.rate:.2f}", progress) as bar:
        for p_index, p in enumerate(probabilities):
            seeds = [draw_seed(draw_keys, seed, repeat, "bsc", p, p_index) for repeat in range(repeats)]
            rows.append({"channel": "bsc", "p": float(p), **_repeated(model, bits, labels, code, float(p),
                                                                       on_failure, fill, seeds, batch_size, bar)})
    return rows
