"""Accuracy over a channel sweep, repeated with fresh channel noise (SNN-SC Sec. IV-D, Fig. 4 and Fig. 7).

The device half (head + encoder) is deterministic in eval mode, so it runs **once** per bundle and its
bits are cached (uint8, ``[N, T, c2, h2, w2]``); every (channel, p, repeat) then costs only the channel,
the decoder and the tail. Repeat ``r`` of a binary channel (BSC, BEC, GE) draws its noise from a generator
seeded by :func:`binary_seed` from the setting itself: ``(seed, r, kind, p)`` and, for GE, its mean burst length
(which changes the draw). Not its position in the ``--p`` list, so two runs with different lists are paired at
a shared p; the same for every bundle, so two bundles with the same payload shape see the same noise (common
random numbers make their curves comparable). Left out, like the link's decisions: the interleaver seed (it
permutes the same wire-order draw, so a run with and without it is paired) and the erasure policy (what the
receiver reads; ``zero`` and ``mask`` see the same erasures). The noise of one pass is drawn batch by batch in
order, so a result is reproducible for the same seed, batch size and device.

Eval JSONs written before this keying (no ``draw_keys`` field) seeded binary draws by the position of p in the
list, :func:`position_seed` ``(seed, r, i)``, the same for every channel kind; ``sweep(..., draw_keys="position")``
(``sjscc eval --draw-keys position``) replays them draw for draw.

Radio links (``awgn``, ``rayleigh``; issue 21) sweep Eb/N0 instead of p: one row per SNR with the link's
settings (``snr_db``, ``modulation``, ``coherence``, ``decisions``), the measured hard-decision ``ber`` and, as
``p``, the link's closed-form BER; its noise is seeded by :func:`link_seed` from the setting itself (kind, SNR,
modulation, coherence, not its position in the list; not the decisions, so hard and soft rows of one setting
see the same noise and are paired). Each row also carries ``bsc_equivalent``: the same bundle over BSC at
``p`` = that closed-form BER, the abstraction the link replaces.

The report of one bundle is the contract of ``sjscc eval`` (DESIGN.md)::

    {"bundle": model_id, "dataset", "split", "n_images", "clean_accuracy",
     "results": [{"channel", "p", "accuracy_mean", "accuracy_std", "repeats"}, ...]}

plus extra fields (per-repeat accuracies, the firing-rate histogram, timings, the bundle's description), among
them ``draw_keys``: how the binary channels' draws were keyed, ``"setting"`` (:func:`binary_seed`) or
``"position"`` (:func:`position_seed`); a report without it was keyed by position. Radio-link rows are keyed by
their setting (:func:`link_seed`) either way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sjscc.common.bundle import Bundle, load_bundle
from sjscc.common.channels import (
    CHANNELS,
    DEFAULT_BURST,
    LINK_KINDS,
    LinkSettings,
    RadioChannel,
    build_channel,
    check_burst,
    check_probability,
)
from sjscc.common.channels.radio import closed_form_ber
from sjscc.common.devices import select_device
from sjscc.common.energy import estimate_energy, format_energy
from sjscc.common.model import SplitModel
from sjscc.training.data import DataError, ImageSet, Normalize, first, load_split

if TYPE_CHECKING:  # coding.py loads Sionna's LDPC blocks: only coded bundles need them
    from sjscc.common.channels.coding import CodedLink

DEFAULT_BATCH_SIZE = 500
DEFAULT_P = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
HISTOGRAM_BINS = 50
EVAL_CHANNELS = ("bsc", "bec", "ge", "awgn", "rayleigh")
DEFAULT_SNR_DB = (-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
DRAW_KEYS = ("setting", "position")  # how binary-channel draws are seeded; see the module docstring
DEFAULT_DRAW_KEYS = "setting"


@dataclass
class EncodedSet:
    """What the device half sent for every image: bits ``[N, T, c2, h2, w2]`` (uint8) and the labels."""

    bits: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def firing_rates(self) -> torch.Tensor:
        """Per image, the fraction of ones among its payload bits (Eq. 9 averaged over T; Fig. 7)."""
        return self.bits.flatten(1).float().mean(1)


def _parse_numbers(text: str | Sequence[float], flag: str, example: str, what: str,
                   check: Callable[[float], float]) -> list[float]:
    """A comma-separated list (or a sequence) of numbers for ``flag``, each passed through ``check``."""
    items = text.split(",") if isinstance(text, str) else list(text)
    values = []
    for item in items:
        if isinstance(item, str):
            try:
                item = float(item)
            except ValueError:
                raise ValueError(f"{flag} {text!r}: {item.strip()!r} is not a number; write e.g. {example}") from None
        values.append(check(item))
    if not values:
        raise ValueError(f"{flag} needs at least one {what}, e.g. {example}")
    return values


def parse_probabilities(text: str | Sequence[float]) -> list[float]:
    """``"0,0.05,0.1"`` -> ``[0.0, 0.05, 0.1]``; every value must be a probability."""
    return _parse_numbers(text, "--p", "0,0.05,0.1", "probability", check_probability)


def parse_snrs(text: str | Sequence[float]) -> list[float]:
    """``"-4,-2,0"`` -> ``[-4.0, -2.0, 0.0]``: Eb/N0 values in dB, each checked as :class:`LinkSettings` does."""
    return _parse_numbers(text, "--snr-db", "-2,0,2,4", "Eb/N0 in dB", lambda snr: LinkSettings(snr_db=snr).snr_db)


def parse_channels(text: str | Sequence[str]) -> list[str]:
    """``"bsc,bec"`` -> ``["bsc", "bec"]``; only the noisy channels are swept (clean accuracy is always measured)."""
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    for name in names:
        if name not in EVAL_CHANNELS:
            raise ValueError(f"unknown channel {name!r} for a sweep; use {', '.join(EVAL_CHANNELS)} or e.g. 'bsc,ge'")
    if not names:
        raise ValueError(f"--channel needs at least one of {', '.join(EVAL_CHANNELS)}")
    radio = [name for name in names if name in LINK_KINDS]
    if radio and len(radio) != len(names):
        raise ValueError(f"--channel {','.join(names)}: sweep radio links (awgn, rayleigh: over --snr-db) and binary "
                         "channels (bsc, bec, ge: over --p) in separate runs")
    return list(dict.fromkeys(names))


def check_draw_keys(draw_keys: str) -> str:
    """``draw_keys`` if it is one of :data:`DRAW_KEYS`; a ValueError that names both otherwise."""
    if draw_keys not in DRAW_KEYS:
        raise ValueError(f"draw keys {draw_keys!r}: use 'setting' (each binary-channel draw keyed by seed, repeat, "
                         "kind, p and GE's burst) or 'position' (by the index of p in the list, as eval JSONs "
                         "without a draw_keys field were)")
    return draw_keys


def _seed_from(key: str) -> int:
    """A 63-bit generator seed from a text key: SHA-256, stable across runs, processes and machines."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def binary_seed(seed: int, repeat: int, kind: str, p: float, burst: float = DEFAULT_BURST) -> int:
    """The seed of one binary-channel draw, keyed by the setting: ``(seed, repeat, kind, p)`` and GE's ``burst``
    (ignored for BSC and BEC), so runs with different p lists are paired at a shared p and kinds do not share
    noise. The key text is ``sjscc-eval-binary:{seed}:{repeat}:{kind}:p={p!r}[:burst={burst!r}]``, p and burst
    as floats."""
    key = f"sjscc-eval-binary:{seed}:{repeat}:{kind}:p={float(p)!r}"
    if kind == "ge":
        key += f":burst={float(burst)!r}"
    return _seed_from(key)


def position_seed(seed: int, repeat: int, p_index: int) -> int:
    """The seed of eval JSONs without ``draw_keys``: keyed by ``(seed, repeat, index of p in the list)``, the same
    for every channel kind. Kept to replay them draw for draw."""
    return _seed_from(f"sjscc-eval:{seed}:{repeat}:{p_index}")


def draw_seed(draw_keys: str, seed: int, repeat: int, kind: str, p: float, p_index: int,
              burst: float = DEFAULT_BURST) -> int:
    """The seed of repeat ``repeat`` at the ``p_index``-th p of a binary-channel sweep under ``draw_keys``."""
    if check_draw_keys(draw_keys) == "position":
        return position_seed(seed, repeat, p_index)
    return binary_seed(seed, repeat, kind, p, burst)


def link_seed(seed: int, repeat: int, kind: str, link: LinkSettings) -> int:
    """A 63-bit generator seed keyed by the link setting itself (kind, Eb/N0, modulation, coherence), so runs with
    different SNR lists are paired; the decisions are left out, so hard and soft see the same noise."""
    return _seed_from(f"sjscc-eval-link:{seed}:{repeat}:{kind}:{link.snr_db!r}:{link.modulation}:{link.coherence}")


def _index_batches(n: int, batch_size: int) -> list[slice]:
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


@torch.no_grad()
def encode(model: SplitModel, data: ImageSet, normalize: Normalize, device: torch.device,
           batch_size: int = DEFAULT_BATCH_SIZE) -> EncodedSet:
    """Run head + encoder once over ``data`` (eval mode) and keep the bits on the CPU as uint8."""
    if model.codec is None:
        raise ValueError("evaluation over a channel needs a model with a codec")
    model.eval()
    parts = []
    for part in _index_batches(len(data), batch_size):
        images = normalize(data.images[part]).to(device)
        parts.append(model.codec.encoder(model.head(images)).to(torch.uint8).cpu())
    bits = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.uint8)
    return EncodedSet(bits, data.labels.clone())


@torch.no_grad()
def decode_logits(model: SplitModel, encoded: EncodedSet, channel: str | None, p: float,
                  generator: torch.Generator | None, device: torch.device,
                  batch_size: int = DEFAULT_BATCH_SIZE, erasure_policy: str = "random", *,
                  burst: float = DEFAULT_BURST, interleave: int | None = None) -> torch.Tensor:
    """``tail(decoder(channel(bits)))`` over the cached bits, batch by batch (CPU logits ``[N, classes]``);
    ``channel=None``: noiseless. ``burst`` is GE's mean burst length; ``interleave`` an interleaver seed."""
    model.eval()
    link = build_channel(channel, erasure_policy, burst, interleave) if channel is not None else None
    parts = []
    for part in _index_batches(len(encoded), batch_size):
        bits = encoded.bits[part].to(device).float()
        received = link(bits, p, generator) if link is not None else bits
        parts.append(model.tail(model.codec.decoder(received)).cpu())
    return torch.cat(parts) if parts else torch.zeros(0, 0)


def count_correct(model: SplitModel, encoded: EncodedSet, channel: str | None, p: float,
                  generator: torch.Generator | None, device: torch.device,
                  batch_size: int = DEFAULT_BATCH_SIZE, erasure_policy: str = "random", *,
                  burst: float = DEFAULT_BURST, interleave: int | None = None) -> int:
    """Top-1 hits of :func:`decode_logits`."""
    if len(encoded) == 0:
        return 0
    logits = decode_logits(model, encoded, channel, p, generator, device, batch_size, erasure_policy,
                           burst=burst, interleave=interleave)
    return int((logits.argmax(1) == encoded.labels).sum())


def decode_accuracy(model: SplitModel, encoded: EncodedSet, channel: str | None, p: float,
                    generator: torch.Generator | None, device: torch.device,
                    batch_size: int = DEFAULT_BATCH_SIZE, erasure_policy: str = "random") -> float:
    """:func:`count_correct` as a fraction of the images."""
    hits = count_correct(model, encoded, channel, p, generator, device, batch_size, erasure_policy)
    return hits / max(1, len(encoded))


def _accuracy_fields(hits: Sequence[int], n_images: int) -> dict[str, Any]:
    """Mean and population std over repeats, from integer hit counts (equal repeats give exactly std 0)."""
    repeats, n = len(hits), max(1, n_images)
    variance = sum((h * repeats - sum(hits)) ** 2 for h in hits) / repeats**3
    return {"accuracy_mean": sum(hits) / repeats / n, "accuracy_std": math.sqrt(variance) / n, "repeats": repeats,
            "accuracies": [h / n for h in hits]}


@contextmanager
def _progress(total: int, label: str, enabled: bool) -> Iterator[Any]:
    """A tqdm bar on stderr for one sweep (``enabled=False``: a silent stand-in)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="pass", file=sys.stderr, disable=not enabled, leave=False)
    try:
        yield bar
    finally:
        bar.close()


def sweep(model: SplitModel, encoded: EncodedSet, channels: Sequence[str], probabilities: Sequence[float],
          repeats: int = 10, seed: int = 0, device: torch.device | str = "cpu",
          batch_size: int = DEFAULT_BATCH_SIZE, erasure_policy: str = "random", *,
          burst: float = DEFAULT_BURST, interleave: int | None = None, snrs: Sequence[float] = DEFAULT_SNR_DB,
          link: LinkSettings | None = None, bsc_equivalent: bool = True,
          progress: bool = False, draw_keys: str = DEFAULT_DRAW_KEYS,
          channel_code: dict[str, Any] | None = None, paired_hard: bool = False) -> list[dict[str, Any]]:
    """One result per (channel, p), or per (radio link, Eb/N0): mean and population std of the accuracy over
    ``repeats`` noise draws.

    Rows of the ``ge`` channel carry its mean burst length ``burst``; with an interleaver every row carries
    its seed ``interleave``. Binary-channel draws are seeded by :func:`draw_seed` under ``draw_keys``
    (``"position"`` replays an eval JSON without a ``draw_keys`` field). Radio links sweep ``snrs`` with the
    other settings from ``link`` (see :func:`link_rows`), keyed by their setting whatever ``draw_keys``.
    ``channel_code`` (a separate-coding bundle's manifest entry) sends every payload through its CRC + LDPC block
    (:mod:`sjscc.training.coded_eval`), over the radio links and the BSC."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    check_draw_keys(draw_keys)
    device = torch.device(device)
    if channel_code is not None:
        return _coded_sweep(model, encoded, channels, probabilities, repeats, seed, batch_size, snrs, link,
                            progress, draw_keys, channel_code, paired_hard)
    results = []
    for channel in channels:
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; known: {sorted(CHANNELS)}")
        if channel in LINK_KINDS:
            results += link_rows(model, encoded, channel, snrs, link or LinkSettings(), repeats, seed, device,
                                 batch_size, bsc_equivalent=bsc_equivalent, progress=progress,
                                 paired_hard=paired_hard)
            continue
        with _progress(len(probabilities) * repeats, channel, progress) as bar:
            for p_index, p in enumerate(probabilities):
                hits = []
                for repeat in range(repeats):
                    generator = torch.Generator(device=device).manual_seed(
                        draw_seed(draw_keys, seed, repeat, channel, p, p_index, burst))
                    hits.append(count_correct(model, encoded, channel, p, generator, device, batch_size,
                                              erasure_policy, burst=burst, interleave=interleave))
                    bar.update()
                results.append({"channel": channel, "p": float(p), **_accuracy_fields(hits, len(encoded)),
                                **link_fields(channel, burst, interleave)})
    return results


def check_coded_channels(channel_code: dict[str, Any], channels: Sequence[str], link: LinkSettings | None,
                         paired_hard: bool = False) -> CodedLink:
    """The separate-coding bundle's code, after refusing (before any image is encoded) a sweep its block cannot be
    sent over."""
    from sjscc.common.channels.coding import link_for
    from sjscc.training.coded_eval import check_coded_link

    if paired_hard:
        raise ValueError("--paired-hard is for uncoded links; this bundle's LDPC decoder reads the LLRs: run "
                         "--decisions hard and --decisions soft separately")
    code = link_for({"channel_code": channel_code})
    for channel in channels:
        if channel not in (*LINK_KINDS, "bsc"):
            raise ValueError(f"this bundle sends its bits through a CRC + 5G LDPC block; channel {channel!r} is not "
                             "evaluated with it (use awgn, rayleigh or bsc)")
        if channel in LINK_KINDS:
            check_coded_link(code, link or LinkSettings())
    return code


def _coded_sweep(model: SplitModel, encoded: EncodedSet, channels: Sequence[str], probabilities: Sequence[float],
                 repeats: int, seed: int, batch_size: int, snrs: Sequence[float], link: LinkSettings | None,
                 progress: bool, draw_keys: str, channel_code: dict[str, Any],
                 paired_hard: bool) -> list[dict[str, Any]]:
    from sjscc.common.channels.coding import failure_policy
    from sjscc.training.coded_eval import coded_bsc_rows, coded_link_rows

    code = check_coded_channels(channel_code, channels, link, paired_hard)
    on_failure, fill = failure_policy({"channel_code": channel_code})
    results: list[dict[str, Any]] = []
    for channel in channels:
        if channel in LINK_KINDS:
            results += coded_link_rows(model, encoded.bits, encoded.labels, code, channel, snrs,
                                       link or LinkSettings(), on_failure, fill, repeats, seed, batch_size, progress)
        else:
            results += coded_bsc_rows(model, encoded.bits, encoded.labels, code, probabilities, on_failure, fill,
                                      repeats, seed, batch_size, progress, draw_keys)
    return results


@torch.no_grad()
def _link_pass(model: SplitModel, encoded: EncodedSet, link: RadioChannel, generator: torch.Generator,
               device: torch.device, batch_size: int,
               paired_hard: bool = False) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """One pass over the cached bits through a radio link: (per-image top-1 hits, hard-decision bit errors, and
    with ``paired_hard`` the per-image hits of the hard decisions of the *same* received symbols)."""
    model.eval()
    hits, hard_hits, errors = [], [], 0
    for part in _index_batches(len(encoded), batch_size):
        sent = encoded.bits[part].to(device).float()
        out = link.transmit(sent, 0.0, generator)
        labels = encoded.labels[part]
        hits.append(model.tail(model.codec.decoder(out.received)).argmax(1).cpu() == labels)
        if paired_hard:  # the sign of each LLR: what a hard-decision receiver would have handed the decoder
            decided = ((sent > 0.5) ^ out.flipped.bool()).float()
            hard_hits.append(model.tail(model.codec.decoder(decided)).argmax(1).cpu() == labels)
        errors += int(out.flipped.sum())
    empty = torch.zeros(0, dtype=torch.bool)
    return (torch.cat(hits) if hits else empty), errors, ((torch.cat(hard_hits) if hard_hits else empty)
                                                          if paired_hard else None)


def paired_difference(soft: torch.Tensor, hard: torch.Tensor, repeats: int) -> dict[str, Any]:
    """Soft minus hard accuracy from per-image hit counts over ``repeats`` draws in which both decoded the same
    received symbols: the mean of the per-image differences and its 95% normal interval over images (the draws of
    one image are averaged first, so the interval spans images and channel draws, not training seeds), and the
    discordant (image, draw) pairs: right only with soft, right only with hard."""
    n = len(soft)
    diff = (soft.double() - hard.double()) / repeats
    mean = float(diff.mean()) if n else float("nan")
    half = 1.96 * float(diff.std(unbiased=True)) / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": mean, "ci95": [mean - half, mean + half], "resolved": not (mean - half <= 0.0 <= mean + half),
            "images": n, "spans": "images and channel draws of one trained model (same noise for both)"}


def link_rows(model: SplitModel, encoded: EncodedSet, kind: str, snrs: Sequence[float], link: LinkSettings,
              repeats: int = 10, seed: int = 0, device: torch.device | str = "cpu",
              batch_size: int = DEFAULT_BATCH_SIZE, *, bsc_equivalent: bool = True,
              progress: bool = False, paired_hard: bool = False) -> list[dict[str, Any]]:
    """One row per Eb/N0 over the radio link ``kind`` with ``link``'s modulation, coherence and decisions.

    A row: ``channel``, ``p`` (the closed-form hard BER, :func:`closed_form_ber`), ``snr_db``, ``modulation``,
    ``coherence``, ``decisions`` (+ ``soft_bits``), the measured hard-decision ``ber`` (over all repeats),
    ``symbols`` per image, the accuracy fields, and ``bsc_equivalent`` = the accuracy over BSC(p) with the same
    repeats (seeded from the same key), unless ``bsc_equivalent`` is False. ``paired_hard`` (soft decisions only)
    also decodes the hard decisions of the same received symbols: the row adds ``hard`` (its accuracy fields) and
    ``soft_minus_hard`` (:func:`paired_difference`), a paired comparison far tighter than two separate runs.
    """
    device = torch.device(device)
    if paired_hard and link.decisions != "soft":
        raise ValueError("--paired-hard compares soft decisions with the hard ones of the same noise: use it with "
                         "--decisions soft")
    payload_bits = int(encoded.bits[0].numel()) if len(encoded) else 0
    rows = []
    with _progress(len(snrs) * repeats * (2 if bsc_equivalent else 1), f"{kind} {link.modulation} {link.decisions}",
                   progress) as bar:
        for snr in snrs:
            settings = dataclasses.replace(link, snr_db=snr)
            channel = RadioChannel(kind, settings)
            p = closed_form_ber(kind, settings)
            hits, hard_hits, errors = [], [], 0
            per_image = torch.zeros(len(encoded), dtype=torch.int64)
            per_image_hard = torch.zeros(len(encoded), dtype=torch.int64)
            for repeat in range(repeats):
                generator = torch.Generator(device=device).manual_seed(link_seed(seed, repeat, kind, settings))
                hit, error, hard = _link_pass(model, encoded, channel, generator, device, batch_size, paired_hard)
                hits.append(int(hit.sum()))
                per_image += hit.long()
                if hard is not None:
                    hard_hits.append(int(hard.sum()))
                    per_image_hard += hard.long()
                errors += error
                bar.update()
            row = {"channel": kind, "p": p, **settings.describe(), "ber": errors / max(1, payload_bits * len(encoded)
                                                                                        * repeats),
                   "symbols": channel.symbols_per_payload(payload_bits), **_accuracy_fields(hits, len(encoded))}
            if settings.decisions == "soft":
                row["soft_bits"] = settings.soft_bits
            if paired_hard:
                row["hard"] = _accuracy_fields(hard_hits, len(encoded))
                row["soft_minus_hard"] = paired_difference(per_image, per_image_hard, repeats)
            if bsc_equivalent:
                bsc_hits = []
                for repeat in range(repeats):
                    generator = torch.Generator(device=device).manual_seed(
                        link_seed(seed, repeat, f"bsc-equivalent-{kind}", settings))
                    bsc_hits.append(count_correct(model, encoded, "bsc", p, generator, device, batch_size))
                    bar.update()
                fields = _accuracy_fields(bsc_hits, len(encoded))
                row["bsc_equivalent"] = {"p": p, "accuracy_mean": fields["accuracy_mean"],
                                         "accuracy_std": fields["accuracy_std"]}
            rows.append(row)
    return rows


def link_fields(channel: str, burst: float, interleave: int | None) -> dict[str, Any]:
    """The link settings a result row needs beyond ``channel`` and ``p``: GE's burst, the interleaver seed."""
    fields: dict[str, Any] = {}
    if channel == "ge":
        fields["burst"] = check_burst(burst)
    if interleave is not None:
        fields["interleave"] = interleave
    return fields


def firing_rate_summary(encoded: EncodedSet, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """Mean, std and a histogram on [0, 1] of the per-image firing rate (what Fig. 7 plots)."""
    rates = encoded.firing_rates
    if len(rates) == 0:
        return {"mean": float("nan"), "std": float("nan"), "bins": bins, "counts": [0] * bins}
    counts = torch.histc(rates, bins=bins, min=0.0, max=1.0)
    return {"mean": float(rates.mean()), "std": float(rates.std(unbiased=False)), "bins": bins,
            "counts": [int(c) for c in counts]}


def evaluate_model(model: SplitModel, data: ImageSet, normalize: Normalize, channels: Sequence[str],
                   probabilities: Sequence[float], repeats: int = 10, seed: int = 0,
                   device: torch.device | str = "cpu", batch_size: int = DEFAULT_BATCH_SIZE,
                   erasure_policy: str = "random", *, burst: float = DEFAULT_BURST,
                   interleave: int | None = None, snrs: Sequence[float] = DEFAULT_SNR_DB,
                   link: LinkSettings | None = None, bsc_equivalent: bool = True,
                   progress: bool = False, draw_keys: str = DEFAULT_DRAW_KEYS,
                   channel_code: dict[str, Any] | None = None, paired_hard: bool = False) -> dict[str, Any]:
    """Clean accuracy, firing rates and the sweep for one model on ``data`` (no bundle needed); ``draw_keys``
    is recorded beside the seed; ``channel_code``: see :func:`sweep`."""
    if channel_code is not None:
        check_coded_channels(channel_code, channels, link, paired_hard)
    device = torch.device(device)
    started = time.perf_counter()
    encoded = encode(model, data, normalize, device, batch_size)
    encode_seconds = time.perf_counter() - started
    clean = decode_accuracy(model, encoded, None, 0.0, None, device, batch_size)
    results = sweep(model, encoded, channels, probabilities, repeats, seed, device, batch_size, erasure_policy,
                    burst=burst, interleave=interleave, snrs=snrs, link=link, bsc_equivalent=bsc_equivalent,
                    progress=progress, draw_keys=draw_keys, channel_code=channel_code, paired_hard=paired_hard)
    return {"n_images": len(encoded), "clean_accuracy": clean, "results": results,
            "firing_rate": firing_rate_summary(encoded), "seed": seed, "draw_keys": draw_keys,
            "batch_size": batch_size,
            "erasure_policy": erasure_policy, "device": str(device),
            "seconds": {"encode": round(encode_seconds, 3), "total": round(time.perf_counter() - started, 3)}}


def energy_report(model: SplitModel, data: ImageSet, normalize: Normalize, device: torch.device,
                  images: int, batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, Any]:
    """:func:`sjscc.common.energy.estimate_energy` over the first ``images`` images of ``data`` (at least one).

    Counted on the CPU in float32 whatever ``device`` evaluated, since the counts do not depend on where the
    model runs and SpikingJelly's counters intercept CPU operators reliably; the model is put back after.
    """
    n = min(images, len(data))
    model.to("cpu")
    try:
        batches = (normalize(data.images[part]) for part in _index_batches(n, min(batch_size, 100)))
        return estimate_energy(model, batches)
    finally:
        model.to(device)


def _channel_label(row: dict[str, Any]) -> str:
    """``ge L=8 +il`` for a GE row with an interleaver; the plain name otherwise."""
    label = row["channel"]
    if row.get("burst") is not None:
        label += f" L={row['burst']:g}"
    if row.get("interleave") is not None:
        label += " +il"
    return label


def bundle_label(manifest: dict[str, Any]) -> str:
    """A legend entry such as ``snn T=8, trained bsc p=0.15``."""
    train = manifest.get("train_channel") or {}
    trained = f"trained {train.get('kind', '?')} p={train.get('p', '?')}" if train else "untrained channel"
    if train.get("p_max") is not None:
        trained += f"..{train['p_max']}"
    if train.get("kind") in LINK_KINDS:
        span = f"{train.get('snr_db')}" + (f"..{train['snr_db_max']}" if train.get("snr_db_max") is not None else "")
        trained = f"trained {train['kind']} {train.get('modulation')} {train.get('decisions')} {span} dB"
    codec = manifest.get("codec", "?")
    if codec != "snn":
        return f"{codec}, {trained}"
    config = (manifest.get("training") or {}).get("config") or {}
    neuron = ((config.get("model") or {}).get("codec_config") or {}).get("reconstructor_neuron", "ihf")
    variant = "" if neuron == "ihf" else f" {neuron.upper().replace('IHF-M', 'IHF-m')}"
    if config:
        variant += f", alpha={config['alpha']}" if config.get("alpha") is not None else ", no reg"
    return f"{codec} T={manifest.get('timesteps')}{variant}, {trained}"


def training_data_config(manifest: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` section of the training config stored in the bundle (empty when absent)."""
    training = manifest.get("training") or {}
    config = training.get("config") if isinstance(training, dict) else None
    data = config.get("data") if isinstance(config, dict) else None
    return data if isinstance(data, dict) else {}


def load_eval_data(bundle: Bundle, data_root: str | Path | None, dataset: str | None, split: str,
                   limit: int = 0, download: bool = False) -> tuple[ImageSet, dict[str, Any]]:
    """The images a bundle is evaluated on, and where they came from.

    ``val`` is the seeded stratified split training used: ``val_fraction`` and ``split_seed`` come from the
    training config in the bundle's manifest when present (0.1 and 0 otherwise). The dataset defaults to the
    one the bundle was trained on; a dataset whose class count differs from the bundle's is refused.
    """
    trained = training_data_config(bundle.manifest)
    dataset = dataset or trained.get("dataset") or "cifar10"
    root = data_root or trained.get("root")
    if not root:
        raise DataError("no data root: pass --data-root (the folder that contains cifar-10-batches-py/)")
    val_fraction = float(trained.get("val_fraction", 0.1))
    split_seed = int(trained.get("split_seed", 0))
    data = first(load_split(root, dataset, split, val_fraction, split_seed, download), limit)
    if len(data.classes) != len(bundle.classes):
        raise DataError(f"bundle {bundle.path} has {len(bundle.classes)} classes but {dataset} has "
                        f"{len(data.classes)}: evaluate it on the data set it was trained for")
    if len(data) == 0:
        raise DataError(f"the {split} split of {dataset} under {root} is empty")
    source = {"dataset": dataset, "split": split, "data_root": str(root), "limit": limit}
    if split == "val":
        source.update(val_fraction=val_fraction, split_seed=split_seed)
    return data, source


def evaluate_bundle(path: str | Path, data_root: str | Path | None = None, dataset: str | None = None,
                    split: str = "test", channels: Sequence[str] = ("bsc",),
                    probabilities: Sequence[float] = DEFAULT_P, repeats: int = 10, seed: int = 0,
                    batch_size: int = DEFAULT_BATCH_SIZE, limit: int = 0, device: str = "auto",
                    erasure_policy: str = "random", download: bool = False, *, burst: float = DEFAULT_BURST,
                    interleave: int | None = None, energy_images: int = 0,
                    snrs: Sequence[float] = DEFAULT_SNR_DB, link: LinkSettings | None = None,
                    bsc_equivalent: bool = True, progress: bool = False,
                    draw_keys: str = DEFAULT_DRAW_KEYS, paired_hard: bool = False) -> dict[str, Any]:
    """The ``sjscc eval`` report of one bundle (see the module docstring for its fields).

    ``draw_keys`` (:data:`DRAW_KEYS`) seeds the binary channels' draws and is recorded in the report.

    ``energy_images`` > 0 adds ``energy``: :func:`sjscc.common.energy.estimate_energy` over the first that
    many images of the split (firing rates measured on them)."""
    started = time.perf_counter()
    check_draw_keys(draw_keys)
    bundle = load_bundle(path)
    data, source = load_eval_data(bundle, data_root, dataset, split, limit, download)
    torch_device = select_device(device)
    model = bundle.build(device=torch_device)
    normalize = Normalize(bundle.spec.mean, bundle.spec.std)
    measured = evaluate_model(model, data, normalize, channels, probabilities, repeats, seed, torch_device,
                              batch_size, erasure_policy, burst=burst, interleave=interleave, snrs=snrs,
                              link=link, bsc_equivalent=bsc_equivalent, progress=progress,
                              draw_keys=draw_keys, channel_code=bundle.manifest.get("channel_code"),
                              paired_hard=paired_hard)
    if energy_images > 0:
        measured["energy"] = energy_report(model, data, normalize, torch_device, energy_images, batch_size)
    measured["seconds"]["total"] = round(time.perf_counter() - started, 3)
    manifest = bundle.manifest
    return {"bundle": bundle.model_id, "dataset": source["dataset"], "split": split,
            "n_images": measured.pop("n_images"), "clean_accuracy": measured.pop("clean_accuracy"),
            "results": measured.pop("results"),
            "label": bundle_label(manifest), "bundle_path": str(bundle.path), "codec": manifest.get("codec"),
            "timesteps": bundle.timesteps, "payload_bits": manifest.get("payload_bits"),
            "backbone": manifest.get("backbone"), "split_at": manifest.get("split"),
            "train_channel": manifest.get("train_channel"), "data": source, **measured}


def format_table(reports: Sequence[dict[str, Any]]) -> str:
    """A plain-text table: one block per bundle, one row per (channel, p)."""
    lines = []
    for report in reports:
        rate = report.get("firing_rate", {}).get("mean")
        rate_text = f", firing rate {rate:.3f}" if rate is not None and not math.isnan(rate) else ""
        lines.append(f"bundle {report['bundle']} ({report.get('label', '')}): {report['dataset']}/{report['split']}, "
                     f"{report['n_images']} images, clean accuracy {report['clean_accuracy']:.4f}{rate_text}")
        lines.append(f"  {'channel':<14}{'p':>7}  {'accuracy mean':>13}  {'std':>7}  {'repeats':>7}")
        for row in report["results"]:
            if row.get("snr_db") is not None:
                continue
            lines.append(f"  {_channel_label(row):<14}{row['p']:>7.3f}  {row['accuracy_mean']:>13.4f}  "
                         f"{row['accuracy_std']:>7.4f}  {row['repeats']:>7d}")
        link_rows_ = [row for row in report["results"] if row.get("snr_db") is not None]
        if link_rows_:
            lines[-1] = (f"  {'link':<28}{'Eb/N0 dB':>9}  {'ber':>8}  {'accuracy mean':>13}  {'std':>7}  "
                         f"{'BSC(p) acc':>10}  {'repeats':>7}")
        for row in link_rows_:
            label = f"{row['channel']} {row['modulation']} {row['decisions']}"
            if row["channel"] == "rayleigh":
                label += f" c={row['coherence']}"
            bsc = row.get("bsc_equivalent", {}).get("accuracy_mean")
            bsc_text = f"{bsc:>10.4f}" if bsc is not None else f"{'-':>10}"
            lines.append(f"  {label:<28}{row['snr_db']:>9.2f}  {row['ber']:>8.5f}  {row['accuracy_mean']:>13.4f}  "
                         f"{row['accuracy_std']:>7.4f}  {bsc_text}  {row['repeats']:>7d}")
        if report.get("energy"):
            lines.append(format_energy(report["energy"]))
    return "\n".join(lines)
