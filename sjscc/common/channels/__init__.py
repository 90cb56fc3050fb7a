"""Digital channels between the encoder's spikes and the reconstructor (Sionna-style callables).

A channel is called as ``channel(bits, p, generator)`` on a {0,1} tensor and returns received bits of
the same shape and dtype. It is *always* active (training and eval mode alike) and is a
straight-through identity in the backward pass (SNN-SC Sec. IV-C: "the noise interference of digital
channel is treated as an identity map"). The randomness of each channel lives in one method, used both
on tensors (training, evaluation) and on packed payloads (serving, via :func:`apply_to_payload`), so
the two cannot drift apart.

The names and checks a parser needs (``CHANNEL_NAMES``, ``LinkSettings``, ``check_probability``, ...) come from
:mod:`.settings`, which imports no torch; everything else (the channels, the registry ``CHANNELS``,
``build_channel``) is imported on first use (PEP 562), so ``sjscc --help`` does not load torch or Sionna.
"""


from __future__ import annotations

import importlib
import math

from sjscc.common.channels.settings import (
    CHANNEL_NAMES,
    DEFAULT_BURST,
    ERASURE_POLICIES,
    LINK_KINDS,
    LinkSettings,
    check_burst,
    check_probability,
)

__all__ = [
    "CHANNELS", "CHANNEL_NAMES", "DEFAULT_BURST", "ERASURE_POLICIES", "PAYLOAD_DIMS", "BinaryErasureChannel",
    "BinarySymmetricChannel", "ChannelOutput", "GilbertElliottChannel", "InterleavedChannel", "Interleaver",
    "LINK_KINDS", "LinkOutput", "LinkSettings", "NoiselessChannel", "PayloadReport", "RadioChannel",
    "apply_to_payload", "awgn_bpsk_to_bsc", "build_channel", "check_burst", "check_probability",
    "gilbert_elliott_errors", "gilbert_elliott_transitions",
]

_ON_FIRST_USE = {  # name -> the module that defines it (each imports torch)
    "ChannelOutput": "base", "NoiselessChannel": "base",
    "GilbertElliottChannel": "burst", "gilbert_elliott_errors": "burst", "gilbert_elliott_transitions": "burst",
    "PAYLOAD_DIMS": "interleaver", "InterleavedChannel": "interleaver", "Interleaver": "interleaver",
    "BinaryErasureChannel": "memoryless", "BinarySymmetricChannel": "memoryless",
    "PayloadReport": "payload", "apply_to_payload": "payload",
    "LinkOutput": "radio", "RadioChannel": "radio",
    "CHANNELS": "registry", "build_channel": "registry",
}


def __getattr__(name: str) -> object:
    if name not in _ON_FIRST_USE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_ON_FIRST_USE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_ON_FIRST_USE})


def awgn_bpsk_to_bsc(ebn0_db: float) -> float:
    """Crossover probability of BPSK over AWGN with hard decisions: ``p = Q(sqrt(2 Eb/N0))``.

    ``Q(x) = erfc(x / sqrt 2) / 2``, so ``p = erfc(sqrt(Eb/N0)) / 2``. Lets a user state an SNR
    and evaluate the BSC it induces.
    """
    ebn0 = 10.0 ** (float(ebn0_db) / 10.0)
    return 0.5 * math.erfc(math.sqrt(ebn0))
