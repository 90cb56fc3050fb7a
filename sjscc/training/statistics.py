"""Intervals for differences between independently trained models (issue 24).

Training seed i of one model has nothing to do with training seed i of another (they share neither weights nor
batches), so the gap between two models over their seeds is a difference of two independent samples, not a
mean of paired differences. :func:`welch_interval` gives the Welch t interval for it: each model keeps its own
variance over seeds, and the degrees of freedom come from the Welch–Satterthwaite equation

    d = mean(a) − mean(b),  se² = s_a²/n_a + s_b²/n_b,
    ν = se⁴ / ((s_a²/n_a)² / (n_a − 1) + (s_b²/n_b)² / (n_b − 1)),  interval d ± t(1 − (1 − level)/2, ν) · se

(s² the sample variance with n − 1). An interval that contains 0 does not resolve which model is better.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    """A difference ``first − second`` with its two-sided interval at ``level``."""

    difference: float
    low: float
    high: float
    level: float
    degrees_of_freedom: float
    standard_error: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def verdict(self, first: str = "first", second: str = "second") -> str:
        """``"<first> better"`` when the whole interval is above 0, ``"<second> better"`` when below,
        ``"not resolved"`` when it contains 0."""
        if self.low > 0:
            return f"{first} better"
        if self.high < 0:
            return f"{second} better"
        return "not resolved"


def _sample_variance(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def welch_interval(first: Sequence[float], second: Sequence[float], level: float = 0.95) -> Interval:
    """The Welch t interval for ``mean(first) − mean(second)`` (independent samples, unequal variances).

    Both samples need at least 2 finite values. When both sample variances are 0 the interval is the point
    difference (nothing varied, so nothing is estimated) with infinite degrees of freedom."""
    from scipy.stats import t as student

    if not 0.0 < level < 1.0:
        raise ValueError(f"the confidence level must be in (0, 1), got {level}")
    for name, sample in (("first", first), ("second", second)):
        if len(sample) < 2:
            raise ValueError(f"a Welch interval needs at least 2 values per sample; the {name} has {len(sample)}")
        if not all(math.isfinite(v) for v in sample):
            raise ValueError(f"the {name} sample has a value that is not a finite number: {list(sample)}")
    difference = sum(first) / len(first) - sum(second) / len(second)
    share_first = _sample_variance(first) / len(first)
    share_second = _sample_variance(second) / len(second)
    variance = share_first + share_second
    if variance == 0.0:
        return Interval(difference, difference, difference, level, math.inf, 0.0)
    dof = variance**2 / (share_first**2 / (len(first) - 1) + share_second**2 / (len(second) - 1))
    error = math.sqrt(variance)
    half = float(student.ppf(0.5 + level / 2, dof)) * error
    return Interval(difference, difference - half, difference + half, level, dof, error)
