"""Text -> value parsers, one per setting, shared by flags, ``SJSCC_*`` variables and query strings.

A flat module of small functions: each takes what a user typed (or an already-typed value) and returns the
value, or raises a ValueError whose message names the setting, the accepted range and what was given, so the
caller can pass the message on unchanged (a 400 ``detail``, an argparse error, a startup failure).
"""

from __future__ import annotations

from sjscc.common.channels.settings import (
    CHANNEL_NAMES,
    DECISIONS,
    MODULATIONS,
    SOFT_BITS_RANGE,
    LinkSettings,
    check_burst,
    check_probability,
    parse_coherence,
)

MAX_SEED = 2**63 - 1
NONE_WORDS = ("", "none")


def parse_seed(seed: object) -> int | None:
    """A channel seed from a flag, environment variable or query string; empty means none."""
    if seed is None or (isinstance(seed, str) and seed.strip().lower() in NONE_WORDS):
        return None
    try:
        value = int(str(seed).strip())
    except ValueError:
        raise ValueError(f"seed must be an integer in [0, {MAX_SEED}], got {seed!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return value


def parse_probability(p: str | float) -> float:
    """A channel probability from a query string or flag: a number in [0, 1]."""
    if isinstance(p, str):
        try:
            p = float(p.strip())
        except ValueError:
            raise ValueError(f"p must be a number in [0, 1], got {p!r}") from None
    return check_probability(p)


def parse_burst(burst: str | float) -> float:
    """A GE mean burst length from a query string, flag or environment variable: a number >= 1 (bits)."""
    if isinstance(burst, str):
        try:
            burst = float(burst.strip())
        except ValueError:
            raise ValueError(f"burst (mean burst length) must be a number >= 1, got {burst!r}") from None
    return check_burst(burst)


def parse_interleave(interleave: object) -> int | None:
    """An interleaver seed (an integer in [0, 2^63)) from a query string, flag or environment variable;
    empty, ``none`` or ``off`` means no interleaver."""
    if interleave is None or (isinstance(interleave, str) and interleave.strip().lower() in (*NONE_WORDS, "off")):
        return None
    try:
        value = int(str(interleave).strip())
    except ValueError:
        raise ValueError(f"interleave must be a seed in [0, {MAX_SEED}] or 'none', got {interleave!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"interleave must be a seed in [0, {MAX_SEED}] or 'none', got {interleave!r}")
    return value


def parse_channel_kind(kind: str) -> str:
    """A channel name (``none``, ``bsc``, ``bec``, ``ge``, ``awgn``, ``rayleigh``: the registry's keys)."""
    if kind not in CHANNEL_NAMES:
        raise ValueError(f"unknown channel {kind!r}; use one of {', '.join(CHANNEL_NAMES)}")
    return kind


def parse_confidence(confidence: str | float) -> float:
    """A progressive stop threshold: the top-1 probability at which the device stops sending, in (0, 1]."""
    if isinstance(confidence, str):
        try:
            value = float(confidence.strip())
        except ValueError:
            raise ValueError(f"confidence must be a number in (0, 1], got {confidence!r}") from None
    else:
        value = float(confidence)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"confidence must be in (0, 1], got {confidence!r}")
    return value


def parse_snr_db(snr_db: str | float) -> float:
    """A radio link's Eb/N0 in dB from a query string, flag or environment variable (checked as LinkSettings)."""
    if isinstance(snr_db, str):
        try:
            snr_db = float(snr_db.strip())
        except ValueError:
            raise ValueError(f"snr_db (Eb/N0 in dB) must be a number, got {snr_db!r}") from None
    return LinkSettings(snr_db=snr_db).snr_db


def parse_modulation(modulation: str) -> str:
    """``bpsk``, ``qpsk`` or ``16qam`` (any case)."""
    text = str(modulation).strip().lower()
    if text not in MODULATIONS:
        raise ValueError(f"unknown modulation {modulation!r}; use one of {', '.join(MODULATIONS)}")
    return text


def parse_link_coherence(coherence: str | int) -> str | int:
    """``packet``, ``step`` or a whole number of symbols >= 1 (Rayleigh block fading)."""
    return parse_coherence(coherence)


def parse_decisions(decisions: str) -> str:
    """``hard`` or ``soft``."""
    text = str(decisions).strip().lower()
    if text not in DECISIONS:
        raise ValueError(f"decisions must be one of {', '.join(DECISIONS)}, got {decisions!r}")
    return text


def parse_soft_bits(soft_bits: str | int) -> int:
    """Bits per quantised LLR on the wire for soft decisions."""
    low, high = SOFT_BITS_RANGE
    try:
        value = int(str(soft_bits).strip())
    except ValueError:
        raise ValueError(f"soft_bits must be an integer in [{low}, {high}], got {soft_bits!r}") from None
    if not low <= value <= high:
        raise ValueError(f"soft_bits must be an integer in [{low}, {high}], got {soft_bits!r}")
    return value
