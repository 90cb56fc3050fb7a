"""Digital channels between the encoder's spikes and the reconstructor (Sionna-style callables).

A channel is called as ``channel(bits, p, generator)`` on a {0,1} tensor and returns received bits of
the same shape and dtype. It is *always* active (training and eval mode alike) and is a
straight-through identity in the backward pass (SNN-SC Sec. IV-C: "the noise interference of digital
channel is treated as an identity map"). The randomness of each channel lives in one method, used both
on tensors (training, evaluation) and on packed payloads (serving, via :func:`apply_to_payload`), so
the two cannot drift apart.
"""


from __future__ import annotations

import math

from sjscc.common.channels.base import ChannelOutput, NoiselessChannel, check_probability
from sjscc.common.channels.burst import (
    DEFAULT_BURST,
    GilbertElliottChannel,
    check_burst,
    gilbert_elliott_errors,
    gilbert_elliott_transitions,
)
from sjscc.common.channels.interleaver import PAYLOAD_DIMS, InterleavedChannel, Interleaver
from sjscc.common.channels.memoryless import ERASURE_POLICIES, BinaryErasureChannel, BinarySymmetricChannel
from sjscc.common.channels.payload import PayloadReport, apply_to_payload
from sjscc.common.channels.radio import LINK_KINDS, LinkOutput, LinkSettings, RadioChannel

__all__ = [
    "CHANNELS", "DEFAULT_BURST", "ERASURE_POLICIES", "PAYLOAD_DIMS", "BinaryErasureChannel", "BinarySymmetricChannel",
    "ChannelOutput", "GilbertElliottChannel", "InterleavedChannel", "Interleaver", "LINK_KINDS", "LinkOutput",
    "LinkSettings", "NoiselessChannel", "PayloadReport", "RadioChannel",
    "apply_to_payload", "awgn_bpsk_to_bsc", "build_channel", "check_burst", "check_probability",
    "gilbert_elliott_errors", "gilbert_elliott_transitions",
]


CHANNELS: dict[str, type[NoiselessChannel]] = {
    "none": NoiselessChannel,
    "bsc": BinarySymmetricChannel,
    "bec": BinaryErasureChannel,
    "ge": GilbertElliottChannel,
    "awgn": RadioChannel,
    "rayleigh": RadioChannel,
}


def build_channel(kind: str, erasure_policy: str = "random", burst: float = DEFAULT_BURST,
                  interleave: int | None = None, link: LinkSettings | None = None) -> NoiselessChannel:
    """Build a channel by name: ``none``, ``bsc``, ``bec`` (with its erasure policy), ``ge`` (with its mean
    burst length) or a radio link ``awgn`` / ``rayleigh`` (with its :class:`LinkSettings`, default BPSK at
    6 dB hard); with an ``interleave`` seed, wrapped in that seed's :class:`Interleaver` (binary channels only)."""
    if kind not in CHANNELS:
        raise ValueError(f"unknown channel {kind!r}; known: {sorted(CHANNELS)}")
    if kind in LINK_KINDS:
        if interleave is not None:
            raise ValueError(f"interleaving is not available on the radio link {kind!r} (use coherence to set "
                             "how long a fade lasts)")
        return RadioChannel(kind, link)
    if link is not None:
        raise ValueError(f"link settings (snr_db, modulation, ...) apply to 'awgn' and 'rayleigh', not {kind!r}")
    if kind == "bec":
        channel: NoiselessChannel = BinaryErasureChannel(erasure_policy)
    elif kind == "ge":
        channel = GilbertElliottChannel(burst)
    else:
        channel = CHANNELS[kind]()
    if interleave is None:
        return channel
    if kind == "bec" and erasure_policy == "mask":
        raise ValueError("interleaving is not available with erasure_policy 'mask' (the mask travels in wire order)")
    return InterleavedChannel(channel, Interleaver(interleave))


def awgn_bpsk_to_bsc(ebn0_db: float) -> float:
    """Crossover probability of BPSK over AWGN with hard decisions: ``p = Q(sqrt(2 Eb/N0))``.

    ``Q(x) = erfc(x / sqrt 2) / 2``, so ``p = erfc(sqrt(Eb/N0)) / 2``. Lets a user state an SNR
    and evaluate the BSC it induces.
    """
    ebn0 = 10.0 ** (float(ebn0_db) / 10.0)
    return 0.5 * math.erfc(math.sqrt(ebn0))
