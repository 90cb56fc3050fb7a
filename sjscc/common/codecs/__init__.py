"""Codec registry: ``build_codec("snn" | "snn-progressive" | "cnn-q<n>", config)``."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from sjscc.common.codecs.base import Codec, CodecConfig, CodecOutput
from sjscc.common.codecs.cnn import CNNCodec
from sjscc.common.codecs.progressive import CODEC_NAME as PROGRESSIVE
from sjscc.common.codecs.progressive import ProgressiveSNNCodec, is_progressive
from sjscc.common.codecs.snn import SNNCodec

__all__ = ["CODECS", "Codec", "CodecConfig", "CodecOutput", "build_codec", "is_progressive", "parse_codec_name"]

CODECS: dict[str, Callable[[CodecConfig], Codec]] = {"snn": SNNCodec, PROGRESSIVE: ProgressiveSNNCodec,
                                                     "cnn": CNNCodec}

_CNN_NAME = re.compile(r"^cnn-q([0-9]+)$")
# round(x (2^n - 1)) on float32 sigmoid outputs is exact only up to ~16 bits, and bit planes use int64 shifts.
MAX_CNN_BITS = 16


def parse_codec_name(name: str) -> tuple[str, int | None]:
    """``"snn"`` -> ``("snn", None)``; ``"cnn-q8"`` -> ``("cnn", 8)``; anything else is an error."""
    if name in ("snn", PROGRESSIVE):
        return name, None
    match = _CNN_NAME.match(name)
    if match:
        n_bits = int(match.group(1))
        if not 1 <= n_bits <= MAX_CNN_BITS:
            raise ValueError(f"codec {name!r}: the CNN quantizer takes 1 to {MAX_CNN_BITS} bits, got {n_bits}")
        return "cnn", n_bits
    raise ValueError(f"unknown codec {name!r}; known: 'snn', 'snn-progressive' and 'cnn-q<n>' with n bits, "
                     "e.g. 'cnn-q8'")


def build_codec(name: str, config: CodecConfig) -> Codec:
    """Build a codec by name. For ``cnn-q<n>`` the bit count n sets ``timesteps`` (n bits <=> T = n)."""
    family, n_bits = parse_codec_name(name)
    if n_bits is not None and n_bits != config.timesteps:
        config = dataclasses.replace(config, timesteps=n_bits)
    return CODECS[family](config)
