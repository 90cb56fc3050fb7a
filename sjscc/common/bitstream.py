"""Spike tensors <-> bytes on the wire.

A payload carries exactly ``prod(shape)`` bits (shape ``[T, c2, h2, w2]`` for one image), in
row-major order, most significant bit first within each byte (``numpy.packbits``' default), and
padded with zero bits only up to the last byte. Everything is vectorized: no per-bit Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


class PayloadError(ValueError):
    """A payload that does not match the shape it claims to carry."""


def payload_bits(shape: Sequence[int]) -> int:
    """Number of payload bits for a spike tensor of ``shape``."""
    if any(int(d) <= 0 for d in shape):
        raise PayloadError(f"shape must have positive dimensions, got {list(shape)}")
    return math.prod(int(d) for d in shape)


def payload_bytes(shape: Sequence[int]) -> int:
    """Bytes on the wire for ``shape``: the bits rounded up to a whole byte."""
    return (payload_bits(shape) + 7) // 8


def pack(bits: torch.Tensor | np.ndarray) -> bytes:
    """Pack a {0,1} tensor of any shape into bytes (row-major, MSB first)."""
    array = bits.detach().cpu().numpy() if isinstance(bits, torch.Tensor) else np.asarray(bits)
    if array.size == 0:
        raise PayloadError("cannot pack an empty tensor")
    flat = array.reshape(-1)
    if not np.isin(flat, (0, 1)).all():
        bad = flat[~np.isin(flat, (0, 1))][:3].tolist()
        raise PayloadError(f"pack expects binary values 0/1 only, found e.g. {bad}")
    return np.packbits(flat.astype(np.uint8)).tobytes()


def pack_batch(bits: torch.Tensor) -> list[bytes]:
    """Pack a batch ``[B, ...]`` into one payload per sample."""
    return [pack(sample) for sample in bits]


def unpack(payload: bytes, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Inverse of :func:`pack`; checks the length and that the padding bits are zero."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise PayloadError(f"payload must be bytes, got {type(payload).__name__}")
    n_bits = payload_bits(shape)
    expected = (n_bits + 7) // 8
    if len(payload) != expected:
        raise PayloadError(
            f"payload is {len(payload)} bytes but shape {list(shape)} needs {n_bits} bits = {expected} bytes"
        )
    bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))
    if bits[n_bits:].any():
        raise PayloadError("payload padding bits after the last payload bit must be zero")
    return torch.from_numpy(bits[:n_bits].reshape(tuple(int(d) for d in shape)).copy()).to(dtype)


def unpack_batch(payloads: Sequence[bytes], shape: Sequence[int]) -> torch.Tensor:
    """Unpack several payloads of the same shape into ``[B, *shape]``."""
    return torch.stack([unpack(p, shape) for p in payloads])
