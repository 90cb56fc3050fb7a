"""Text -> value parsers: each accepts what a flag, variable or query string carries and names the problem."""

from __future__ import annotations

import pytest

from sjscc.common.params import (
    MAX_SEED,
    parse_burst,
    parse_channel_kind,
    parse_confidence,
    parse_interleave,
    parse_probability,
    parse_seed,
)


def test_values_and_empties() -> None:
    assert parse_seed(" 7 ") == 7 and parse_seed("None") is None and parse_seed(str(MAX_SEED)) == MAX_SEED
    assert parse_probability(" 0.25 ") == 0.25 and parse_probability(1) == 1.0
    assert parse_burst("2") == 2.0 and parse_interleave("OFF") is None and parse_interleave(0) == 0
    assert parse_channel_kind("ge") == "ge"
    assert parse_confidence(" 0.5 ") == 0.5 and parse_confidence(1.0) == 1.0


@pytest.mark.parametrize(("parse", "text", "message"), [
    (parse_seed, str(MAX_SEED + 1), r"seed must be an integer in \[0, "),
    (parse_probability, "1.01", r"p must be in \[0, 1\]"),
    (parse_probability, "half", r"p must be a number in \[0, 1\], got 'half'"),
    (parse_burst, "0", "burst length must be a finite number >= 1"),
    (parse_interleave, "1e3", "interleave must be a seed"),
    (parse_channel_kind, "wifi", "unknown channel 'wifi'; use one of none, bsc, bec, ge, awgn, rayleigh"),
    (parse_confidence, "0", r"confidence must be in \(0, 1\], got '0'"),
    (parse_confidence, "nan", r"confidence must be in \(0, 1\]"),
    (parse_confidence, "high", r"confidence must be a number in \(0, 1\], got 'high'"),
])
def test_bad_text_names_the_setting(parse, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(text)
