"""numpy vs bitarray for the bit path (pack a {0,1} array, XOR a flip mask, unpack), on 512 bits and 1 Mbit.

    PYTHONPATH=. python benchmarks/numpy_vs_bitarray.py

Decides which library ``sjscc.common.bitstream`` uses; bitarray is not a dependency of sjscc (install it to
run this comparison). Medians of 200 runs, microseconds; the channel's random draws are excluded (both would
use the same torch draws).
"""

from __future__ import annotations

import statistics
import time

import numpy as np


def median_us(fn, runs: int = 200) -> float:
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def main() -> None:
    from bitarray import bitarray

    rng = np.random.default_rng(0)
    for n in (512, 1 << 20):
        bits = (rng.random(n) < 0.3).astype(np.uint8)
        flips = rng.random(n) < 0.1

        def with_numpy(bits: np.ndarray = bits, flips: np.ndarray = flips) -> np.ndarray:
            payload = np.packbits(bits).tobytes()
            received = np.unpackbits(np.frombuffer(payload, np.uint8)) ^ flips.view(np.uint8)
            return np.unpackbits(np.packbits(received))

        def with_bitarray(bits: np.ndarray = bits, flips: np.ndarray = flips) -> np.ndarray:
            packer = bitarray()
            packer.pack(bits.tobytes())  # bitarray's own byte-per-bit -> packed conversion
            payload = packer.tobytes()
            sent = bitarray()
            sent.frombytes(payload)
            mask = bitarray()
            mask.pack(flips.view(np.uint8).tobytes())
            received = sent ^ mask
            return np.frombuffer(received.unpack(), dtype=np.uint8)

        assert np.array_equal(with_numpy(), with_bitarray())
        print(f"{n:>8} bits: numpy {median_us(with_numpy):10.1f} us   bitarray {median_us(with_bitarray):10.1f} us")


if __name__ == "__main__":
    main()
