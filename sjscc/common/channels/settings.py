"""What a channel is set up with, without torch: the channels' names and the checks of their settings.

The command line's parsers and the services' settings tables (``sjscc/common/params.py``,
``sjscc/device/settings.py``) need these names and checks to build ``sjscc --help``; the channels themselves
(``base.py``, ``radio.py``, ...) need torch and Sionna, which take seconds to import. Everything here is plain
Python, so the parsers import this module and never the channels; the channel modules import their names and
checks from here (and re-export them), so each is declared once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CHANNEL_NAMES = ("none", "bsc", "bec", "ge", "awgn", "rayleigh")
"""The keys of the channel registry ``CHANNELS`` (``registry.py``), in its order; a test checks they agree."""
LINK_KINDS = ("awgn", "rayleigh")
"""The channels that are a radio link (:class:`LinkSettings` instead of ``p``)."""
ERASURE_POLICIES = ("random", "zero", "mask")
"""What the receiver reads for a BEC-erased bit (see ``BinaryErasureChannel``): a fair coin, a 0, or a 0 plus the
erasure mask."""
DEFAULT_BURST = 8.0
"""Mean burst length (bits) of the Gilbert-Elliott channel when none is given."""


def _as_float(value: object, must: str, refused: tuple[type, ...] = (str, bytes, bool)) -> float:
    """``value`` as float, or a ValueError ``"<must>, got ..."``: ``refused`` types are not converted (a string or
    a bool reaching a setting means a caller skipped its own parsing; ``float(True) == 1.0``)."""
    if isinstance(value, refused):
        raise ValueError(f"{must}, got {type(value).__name__} {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{must}, got {value!r}") from None


def check_probability(p: float) -> float:
    """Return ``p`` as float or raise a ValueError that says what was wrong.

    Strings and booleans are refused rather than converted: ``"0.1"`` or ``True`` reaching a channel means a
    caller skipped its own parsing, and ``float(True) == 1.0`` would silently invert every bit.
    """
    value = _as_float(p, "channel probability p must be a number in [0, 1]")
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"channel probability p must be in [0, 1], got {p!r}")
    return value


def check_burst(burst: float) -> float:
    """Return the mean burst length as float, or raise a ValueError: a number >= 1 (bits)."""
    value = _as_float(burst, "mean burst length must be a number >= 1 (bits)")
    if not value >= 1.0 or math.isinf(value):
        raise ValueError(f"mean burst length must be a finite number >= 1 (bits), got {burst!r}")
    return value


# --- the radio link (radio.py) -----------------------------------------------------------------------------------

MODULATIONS = {"bpsk": ("pam", 1), "qpsk": ("qam", 2), "16qam": ("qam", 4)}
"""Modulation name -> (Sionna constellation type, bits per symbol); all Gray-labelled."""
DECISIONS = ("hard", "soft")
COHERENCE_WORDS = ("packet", "step")
SOFT_BITS_RANGE = (2, 8)


def _check_number(name: str, value: object) -> float:
    number = _as_float(value, f"{name} must be a number", (str, bytes, bool, type(None)))
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def parse_coherence(value: str | int) -> str | int:
    """``"packet"``, ``"step"`` or a positive whole number of symbols (``"64"`` or ``64``); else ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"coherence must be 'packet', 'step' or a number of symbols >= 1, got {value!r}")
    if isinstance(value, str):
        text = value.strip().lower()
        if text in COHERENCE_WORDS:
            return text
        if not text.isdigit():
            raise ValueError(f"coherence must be 'packet', 'step' or a number of symbols >= 1, got {value!r}")
        value = int(text)
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"coherence must be 'packet', 'step' or a number of symbols >= 1, got {value!r}")
    return value


@dataclass(frozen=True)
class LinkSettings:
    """The radio link's parameters (all validated here, so a bad setting is a ValueError before any draw).

    ``snr_db``: Eb/N0 in dB per information bit. ``modulation``: bpsk | qpsk | 16qam (Gray).
    ``coherence``: packet | step | N symbols per fade (Rayleigh; AWGN ignores it). ``decisions``: hard | soft.
    ``soft_bits``: bits per quantised LLR on the wire for soft decisions (default 4). ``coderate``: the rate of
    a channel code in front of the link (1 = uncoded), so that Eb is per information bit. ``snr_db_max``
    (training over a range of SNRs): when set, every call draws its Eb/N0 uniformly from ``[snr_db, snr_db_max]``
    (one draw per call, i.e. per batch, the first draw from the call's generator).
    """

    snr_db: float = 6.0
    modulation: str = "bpsk"
    coherence: str | int = "packet"
    decisions: str = "hard"
    soft_bits: int = 4
    coderate: float = 1.0
    snr_db_max: float | None = None

    def __post_init__(self) -> None:
        snr = _check_number("snr_db (Eb/N0 in dB)", self.snr_db)
        if not -30.0 <= snr <= 60.0:
            raise ValueError(f"snr_db (Eb/N0 in dB) must be in [-30, 60], got {self.snr_db!r}")
        object.__setattr__(self, "snr_db", snr)
        modulation = str(self.modulation).lower() if isinstance(self.modulation, str) else self.modulation
        if modulation not in MODULATIONS:
            raise ValueError(f"unknown modulation {self.modulation!r}; known: {list(MODULATIONS)}")
        object.__setattr__(self, "modulation", modulation)
        object.__setattr__(self, "coherence", parse_coherence(self.coherence))
        decisions = self.decisions.lower() if isinstance(self.decisions, str) else self.decisions
        if decisions not in DECISIONS:
            raise ValueError(f"decisions must be one of {DECISIONS}, got {self.decisions!r}")
        object.__setattr__(self, "decisions", decisions)
        low, high = SOFT_BITS_RANGE
        if isinstance(self.soft_bits, bool) or not isinstance(self.soft_bits, int) or not low <= self.soft_bits <= high:
            raise ValueError(f"soft_bits must be an integer in [{low}, {high}], got {self.soft_bits!r}")
        rate = _check_number("coderate", self.coderate)
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"coderate must be in (0, 1], got {self.coderate!r}")
        object.__setattr__(self, "coderate", rate)
        if self.snr_db_max is not None:
            high = _check_number("snr_db_max (Eb/N0 in dB)", self.snr_db_max)
            if not snr <= high <= 60.0:
                raise ValueError(f"snr_db_max must be in [snr_db, 60] = [{snr:g}, 60], got {self.snr_db_max!r}")
            object.__setattr__(self, "snr_db_max", high)

    @property
    def bits_per_symbol(self) -> int:
        return MODULATIONS[self.modulation][1]

    @property
    def wire_bits_per_bit(self) -> int:
        """Bits the receiver forwards to the edge per payload bit: 1 (hard) or ``soft_bits`` (soft)."""
        return 1 if self.decisions == "hard" else self.soft_bits

    def noise_power(self, snr_db: float | None = None) -> float:
        """``N0`` per complex symbol (E_s = 1) at ``snr_db`` (default: this link's) from Sionna's ``ebnodb2no``."""
        from sionna.phy.utils import ebnodb2no

        return float(ebnodb2no(self.snr_db if snr_db is None else snr_db, self.bits_per_symbol, self.coderate))

    def draw_snr(self, generator: torch.Generator | None, device: torch.device) -> float:
        """This call's Eb/N0: ``snr_db``, or uniform on ``[snr_db, snr_db_max]`` when a range is set."""
        if self.snr_db_max is None:
            return self.snr_db
        import torch  # here, not at the top: the parsers read these settings without loading torch

        u = float(torch.rand((), generator=generator, device=device))
        return self.snr_db + (self.snr_db_max - self.snr_db) * u

    def describe(self) -> dict[str, object]:
        """The settings as the answer's / eval row's fields (``snr_db_max`` only when a range is set)."""
        fields: dict[str, object] = {"snr_db": self.snr_db, "modulation": self.modulation,
                                     "coherence": self.coherence, "decisions": self.decisions}
        if self.snr_db_max is not None:
            fields["snr_db_max"] = self.snr_db_max
        return fields
