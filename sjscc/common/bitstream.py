"""Spike tensors <-> bytes on the wire.

A payload carries exactly ``prod(shape)`` bits (shape ``[T, c2, h2, w2]`` for one image), in
row-major order, most significant bit first within each byte (``numpy.packbits``' default), and
padded with zero bits only up to the last byte. Everything is vectorized on numpy: no per-bit Python
loop, and no copy beyond the one ``packbits``/``unpackbits`` make (``numpy`` measured faster than
``bitarray`` here for both directions, see docs/PERFORMANCE.md).
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


def _binary_uint8(array: np.ndarray) -> np.ndarray:
    """``array`` flattened as uint8 0/1, refusing any other value (one pass for bool and uint8 inputs)."""
    flat = array.reshape(-1)
    if flat.dtype == np.bool_:
        return flat.view(np.uint8)
    bad = flat > 1 if flat.dtype == np.uint8 else (flat != 0) & (flat != 1)
    if bad.any():
        raise PayloadError(f"pack expects binary values 0/1 only, found e.g. {flat[bad][:3].tolist()}")
    return flat if flat.dtype == np.uint8 else flat.astype(np.uint8)


def pack_bits(bits: np.ndarray) -> bytes:
    """Pack a numpy {0,1} array (bool or any number type) into bytes, row-major, MSB first."""
    if bits.size == 0:
        raise PayloadError("cannot pack an empty tensor")
    return np.packbits(_binary_uint8(np.ascontiguousarray(bits))).tobytes()


def pack(bits: torch.Tensor | np.ndarray) -> bytes:
    """Pack a {0,1} tensor of any shape into bytes (row-major, MSB first)."""
    array = bits.detach().cpu().numpy() if isinstance(bits, torch.Tensor) else np.asarray(bits)
    return pack_bits(array)


def pack_batch(bits: torch.Tensor) -> list[bytes]:
    """Pack a batch ``[B, ...]`` into one payload per sample (one validation pass over the whole batch)."""
    array = bits.detach().cpu().numpy() if isinstance(bits, torch.Tensor) else np.asarray(bits)
    if array.ndim < 2 or array.size == 0:
        return [pack(sample) for sample in array]
    flat = _binary_uint8(np.ascontiguousarray(array)).reshape(array.shape[0], -1)
    return [row.tobytes() for row in np.packbits(flat, axis=1)]


def unpack_bits(payload: bytes, shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`pack` as a numpy uint8 array of ``shape``; checks the length and the zero padding."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise PayloadError(f"payload must be bytes, got {type(payload).__name__}")
    n_bits = payload_bits(shape)
    expected = (n_bits + 7) // 8
    if len(payload) != expected:
        raise PayloadError(
            f"payload is {len(payload)} bytes but shape {list(shape)} needs {n_bits} bits = {expected} bytes"
        )
    bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))
    if n_bits % 8 and bits[n_bits:].any():
        raise PayloadError("payload padding bits after the last payload bit must be zero")
    return bits[:n_bits].reshape(tuple(int(d) for d in shape))


def unpack(payload: bytes, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Inverse of :func:`pack`; checks the length and that the padding bits are zero."""
    bits = torch.from_numpy(unpack_bits(payload, shape))  # unpackbits made a fresh array: no copy needed
    return bits if dtype == torch.uint8 else bits.to(dtype)


def unpack_batch(payloads: Sequence[bytes], shape: Sequence[int]) -> torch.Tensor:
    """Unpack several payloads of the same shape into ``[B, *shape]``."""
    return torch.stack([unpack(p, shape) for p in payloads])
