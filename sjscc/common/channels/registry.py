"""The channel registry: each channel's name -> its class, and :func:`build_channel`, which builds one by name."""

from __future__ import annotations

from sjscc.common.channels.base import NoiselessChannel
from sjscc.common.channels.burst import GilbertElliottChannel
from sjscc.common.channels.interleaver import InterleavedChannel, Interleaver
from sjscc.common.channels.memoryless import BinaryErasureChannel, BinarySymmetricChannel
from sjscc.common.channels.radio import RadioChannel
from sjscc.common.channels.settings import DEFAULT_BURST, LINK_KINDS, LinkSettings

CHANNELS: dict[str, type[NoiselessChannel]] = {
    "none": NoiselessChannel,
    "bsc": BinarySymmetricChannel,
    "bec": BinaryErasureChannel,
    "ge": GilbertElliottChannel,
    "awgn": RadioChannel,
    "rayleigh": RadioChannel,
}
"""Its keys, in this order, are also ``settings.CHANNEL_NAMES`` (what the parsers offer without importing this)."""


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
