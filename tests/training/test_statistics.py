"""sjscc/training/statistics.py: the Welch interval for a gap between independently trained models, by hand."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from sjscc.training.statistics import welch_interval


def test_welch_interval_by_hand() -> None:
    # first 3, 4, 5: mean 4, s² = 1; second 1, 2, 3, 6: mean 3, s² = 14/3.
    # se² = 1/3 + (14/3)/4 = 1.5; ν = 1.5² / ((1/3)²/2 + (7/6)²/3) = 2.25 / 0.50925926 = 4.4181818
    # t(0.975, 4.4181818) = 2.6758139 (between the tables' 2.776 at ν = 4 and 2.571 at ν = 5)
    interval = welch_interval([3, 4, 5], [1, 2, 3, 6])
    assert interval.difference == pytest.approx(1.0)
    assert interval.standard_error == pytest.approx(math.sqrt(1.5))
    assert interval.degrees_of_freedom == pytest.approx(4.4181818, abs=1e-6)
    assert 2.571 < interval.half_width / math.sqrt(1.5) < 2.776
    assert interval.half_width == pytest.approx(2.6758139 * math.sqrt(1.5), abs=1e-6)
    assert (interval.low, interval.high) == pytest.approx((-2.2771894, 4.2771894), abs=1e-6)
    assert interval.verdict("SNN", "CNN") == "not resolved"
    # an independent implementation agrees
    reference = stats.ttest_ind([3, 4, 5], [1, 2, 3, 6], equal_var=False).confidence_interval(0.95)
    assert (interval.low, interval.high) == pytest.approx((reference.low, reference.high), rel=1e-9)


def test_unpaired_is_not_paired() -> None:
    # paired differences 1, 1, 1 would give a zero-width interval; unpaired, the seeds' own spread counts
    interval = welch_interval([10.0, 12.0, 14.0], [9.0, 11.0, 13.0])
    assert interval.low < 0 < interval.high and interval.verdict() == "not resolved"
    assert welch_interval([5.0, 5.1, 5.2], [1.0, 1.1, 1.2]).verdict("SNN", "CNN") == "SNN better"
    assert welch_interval([1.0, 1.1, 1.2], [5.0, 5.1, 5.2]).verdict("SNN", "CNN") == "CNN better"


def test_degenerate_and_bad_input() -> None:
    point = welch_interval([0.5, 0.5], [0.25, 0.25, 0.25])
    assert (point.low, point.high, point.degrees_of_freedom) == (0.25, 0.25, math.inf)
    assert point.verdict() == "first better"
    for first, second, message in (([1.0], [1.0, 2.0], "at least 2"), ([1.0, math.nan], [1.0, 2.0], "finite")):
        with pytest.raises(ValueError, match=message):
            welch_interval(first, second)
    with pytest.raises(ValueError, match="level"):
        welch_interval([1.0, 2.0], [1.0, 2.0], level=1.0)
