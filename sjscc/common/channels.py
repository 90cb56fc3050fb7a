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
from dataclasses import dataclass

import numpy as np
import torch

from sjscc.common import bitstream

ERASURE_POLICIES = ("random", "zero", "mask")


def check_probability(p: float) -> float:
    """Return ``p`` as float or raise a ValueError that says what was wrong.

    Strings and booleans are refused rather than converted: ``"0.1"`` or ``True`` reaching a channel means a
    caller skipped its own parsing, and ``float(True) == 1.0`` would silently invert every bit.
    """
    if isinstance(p, (str, bytes, bool)):
        raise ValueError(f"channel probability p must be a number in [0, 1], got {type(p).__name__} {p!r}")
    try:
        value = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"channel probability p must be a number in [0, 1], got {p!r}") from None
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"channel probability p must be in [0, 1], got {p!r}")
    return value


def _uniform(bits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else bits.device
    return torch.rand(bits.shape, generator=generator, device=device).to(bits.device)


def _straight_through(bits: torch.Tensor, received: torch.Tensor) -> torch.Tensor:
    """Forward: ``received``; backward: identity to ``bits``."""
    return bits + (received - bits).detach()


@dataclass(frozen=True)
class ChannelOutput:
    """Received bits plus what happened on the way: the flip and erasure masks (bool)."""

    received: torch.Tensor
    flipped: torch.Tensor
    erased: torch.Tensor


class NoiselessChannel:
    """The identity channel: every bit arrives as sent. ``p`` is ignored."""

    name = "none"

    def transmit(self, bits: torch.Tensor, p: float, generator: torch.Generator | None = None) -> ChannelOutput:
        check_probability(p)
        none = torch.zeros_like(bits, dtype=torch.bool)
        return ChannelOutput(bits, none, none)

    def __call__(self, bits: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.transmit(bits, p, generator).received


class BinarySymmetricChannel(NoiselessChannel):
    """BSC(p): each bit is flipped independently with probability ``p``.

    ``p = 0`` is the identity, ``p = 1`` inverts every bit, ``p = 0.5`` destroys all information.
    """

    name = "bsc"

    def transmit(self, bits: torch.Tensor, p: float, generator: torch.Generator | None = None) -> ChannelOutput:
        p = check_probability(p)
        flipped = _uniform(bits, generator) < p
        received = torch.where(flipped, 1 - bits, bits)
        return ChannelOutput(_straight_through(bits, received), flipped, torch.zeros_like(flipped))


class BinaryErasureChannel(NoiselessChannel):
    """BEC(p): each bit is erased independently with probability ``p``.

    What the receiver reads for an erased bit is the ``erasure_policy``:

    - ``"random"`` (the papers' setting): a fair coin, 0 or 1 with probability 1/2 each, so on average
      half of the erased bits arrive wrong and BEC(p) corrupts like BSC(p/2);
    - ``"zero"``: a 0 (a receiver that treats silence as no spike);
    - ``"mask"``: a 0 in ``received`` plus the erasure mask in :meth:`transmit`'s ``erased``, for a
      receiver that knows which bits were lost (serving sends the mask as a second bitmap).

    Bits that are not erased are never touched.
    """

    name = "bec"

    def __init__(self, erasure_policy: str = "random") -> None:
        if erasure_policy not in ERASURE_POLICIES:
            raise ValueError(f"unknown erasure_policy {erasure_policy!r}; known: {ERASURE_POLICIES}")
        self.erasure_policy = erasure_policy

    def transmit(self, bits: torch.Tensor, p: float, generator: torch.Generator | None = None) -> ChannelOutput:
        p = check_probability(p)
        erased = _uniform(bits, generator) < p
        if self.erasure_policy == "random":
            fill = (_uniform(bits, generator) < 0.5).to(bits.dtype)
        else:
            fill = torch.zeros_like(bits)
        received = torch.where(erased, fill, bits)
        flipped = received != bits
        return ChannelOutput(_straight_through(bits, received), flipped, erased)


DEFAULT_BURST = 8.0
"""Mean burst length (bits) of the Gilbert-Elliott channel when none is given."""


def check_burst(burst: float) -> float:
    """Return the mean burst length as float, or raise a ValueError: a number >= 1 (bits)."""
    if isinstance(burst, (str, bytes, bool)):
        raise ValueError(f"mean burst length must be a number >= 1 (bits), got {type(burst).__name__} {burst!r}")
    try:
        value = float(burst)
    except (TypeError, ValueError):
        raise ValueError(f"mean burst length must be a number >= 1 (bits), got {burst!r}") from None
    if not value >= 1.0 or math.isinf(value):
        raise ValueError(f"mean burst length must be a finite number >= 1 (bits), got {burst!r}")
    return value


def gilbert_elliott_transitions(p: float, burst: float) -> tuple[float, float]:
    """The state transition probabilities ``(q, r)`` = (P(good -> bad), P(bad -> good)) per bit.

    With every bit flipped in the bad state and none in the good one, a burst is exactly a stay in the bad
    state: geometric with mean ``L = 1/r``; the stationary share of bad bits, ``q / (q + r)``, is the mean
    bit error rate ``p``. Hence ``r = 1/L`` and ``q = p / (L (1 - p))``, which needs ``q <= 1``, i.e.
    ``p <= L / (L + 1)`` (bursts of mean length L separated by at least one good bit on average).
    """
    p = check_probability(p)
    burst = check_burst(burst)
    r = 1.0 / burst
    if p == 0.0:
        return 0.0, r
    limit = burst / (burst + 1.0)
    if p > limit:
        raise ValueError(f"a Gilbert-Elliott channel with mean burst length {burst:g} has a mean error rate of "
                         f"at most L/(L+1) = {limit:.4g}; got p={p:g} (use longer bursts or a smaller p)")
    return min(1.0, p * r / (1.0 - p)), r


def _geometric(count: int, prob: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``count`` draws of a geometric law on {1, 2, ...} with success probability ``prob`` (int64)."""
    if prob >= 1.0:
        return torch.ones(count, dtype=torch.int64, device=device)
    draws = torch.empty(count, dtype=torch.float64, device=device).geometric_(prob, generator=generator)
    return draws.clamp_(max=2**62).to(torch.int64)


def gilbert_elliott_errors(n: int, p: float, burst: float, generator: torch.Generator | None = None,
                           device: torch.device | str = "cpu") -> torch.Tensor:
    """The error pattern (bool ``[n]``) of ``n`` consecutive bits on a stationary Gilbert-Elliott link.

    The chain starts in its stationary distribution (bad with probability ``p``) and alternates stays in
    the good and bad states, drawn as geometric run lengths (means ``1/q`` and ``L``): a whole stay costs
    one draw, not one per bit. This is the channel's one randomness, shared by tensors and packed payloads.
    """
    q, r = gilbert_elliott_transitions(p, burst)
    if generator is not None:
        device = generator.device
    device = torch.device(device)
    if n <= 0 or q == 0.0:
        return torch.zeros(max(n, 0), dtype=torch.bool, device=device)
    start_bad = bool(torch.rand((), generator=generator, device=device) < q / (q + r))
    first, second = (r, q) if start_bad else (q, r)
    pair_bits = 1.0 / q + 1.0 / r
    lengths, total = [], 0
    while total < n:
        pairs = int((n - total) / pair_bits * 1.2) + 8
        runs = torch.stack([_geometric(pairs, first, generator, device),
                            _geometric(pairs, second, generator, device)], dim=1).flatten().clamp_(max=n)
        lengths.append(runs)
        total += int(runs.sum())
    runs = torch.cat(lengths)
    states = torch.tensor([start_bad, not start_bad], device=device).repeat(len(runs) // 2)
    return torch.repeat_interleave(states, runs)[:n]


class GilbertElliottChannel(NoiselessChannel):
    """GE(p, L): a two-state Markov (Gilbert-Elliott) burst channel with mean bit error rate ``p`` and mean
    burst length ``L`` bits (a constructor argument, like BEC's erasure policy).

    Parametrization: the good state flips no bit and the bad state flips every bit (error probabilities
    0 and 1), so a burst *is* a run of consecutive bit errors and ``p`` and ``L`` are what a user measures
    on a link trace (the share of wrong bits, the mean length of the runs of wrong bits). With Gilbert's
    coin-flip bad state (error probability 1/2) half the bits of a fade would still arrive right and the
    error runs would be shorter than ``L``, so neither number could be read off the errors.
    Transitions per bit: ``P(bad -> good) = 1/L``, ``P(good -> bad) = p / (L (1 - p))``
    (:func:`gilbert_elliott_transitions`); the error indicator then has mean ``p``, error runs of mean
    length ``L`` and autocorrelation ``lambda^k`` at lag k, ``lambda = 1 - 1/L - p / (L (1 - p))``.
    ``L = 1 / (1 - p)`` gives ``lambda = 0``: BSC(p). ``p = 0`` is the identity; ``p`` above ``L/(L+1)``
    is refused.

    The bits of a tensor are sent in row-major order as one stream (a batch is payloads sent back to back);
    the chain starts stationary, so every payload sees the same statistics as one sent alone.
    """

    name = "ge"

    def __init__(self, burst: float = DEFAULT_BURST) -> None:
        self.burst = check_burst(burst)

    def transmit(self, bits: torch.Tensor, p: float, generator: torch.Generator | None = None) -> ChannelOutput:
        flipped = gilbert_elliott_errors(bits.numel(), p, self.burst, generator, bits.device)
        flipped = flipped.to(bits.device).view(bits.shape)
        received = torch.where(flipped, 1 - bits, bits)
        return ChannelOutput(_straight_through(bits, received), flipped, torch.zeros_like(flipped))


PAYLOAD_DIMS = 4
"""A payload is the trailing ``[T, c2, h2, w2]`` of the codecs' ``[B, T, c2, h2, w2]`` bits."""


class Interleaver:
    """A seeded pseudo-random permutation of the bits of each payload, to spread a burst over it.

    Bit ``i`` on the wire is payload bit ``permutation[i]`` (:meth:`interleave`, before the channel);
    :meth:`deinterleave` puts every received bit back in place, so a burst of L wire bits lands on L
    scattered payload positions. The permutation is ``torch.randperm(n)`` from a CPU generator seeded with
    ``seed``: the same on every machine, so both ends of a link agree on it by the seed alone.
    """

    def __init__(self, seed: int, payload_dims: int = PAYLOAD_DIMS) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ValueError(f"interleaver seed must be an integer in [0, 2^63), got {seed!r}")
        if payload_dims < 1:
            raise ValueError(f"a payload has at least one dimension, got payload_dims={payload_dims}")
        self.seed = seed
        self.payload_dims = payload_dims
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def permutation(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(permutation, inverse)`` of ``range(n)`` (cached per payload size)."""
        if n not in self._cache:
            forward = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
            inverse = torch.empty_like(forward)
            inverse[forward] = torch.arange(n)
            self._cache[n] = (forward, inverse)
        return self._cache[n]

    def _apply(self, bits: torch.Tensor, which: int) -> torch.Tensor:
        if bits.dim() < self.payload_dims:
            raise ValueError(f"interleaving needs payloads of {self.payload_dims} dims, got shape {list(bits.shape)}")
        flat = bits.flatten(bits.dim() - self.payload_dims)
        order = self.permutation(flat.shape[-1])[which].to(bits.device)
        return flat.index_select(-1, order).view(bits.shape)

    def interleave(self, bits: torch.Tensor) -> torch.Tensor:
        """Payload order -> wire order."""
        return self._apply(bits, 0)

    def deinterleave(self, bits: torch.Tensor) -> torch.Tensor:
        """Wire order -> payload order (inverse of :meth:`interleave`)."""
        return self._apply(bits, 1)


class InterleavedChannel(NoiselessChannel):
    """``deinterleave(channel(interleave(bits)))``: interleaver, channel, de-interleaver as one link.

    The masks in :meth:`transmit` are in payload order, like the received bits. The backward pass stays the
    identity (a permutation and its inverse around a straight-through channel).
    """

    def __init__(self, channel: NoiselessChannel, interleaver: Interleaver) -> None:
        self.channel = channel
        self.interleaver = interleaver
        self.name = channel.name

    def transmit(self, bits: torch.Tensor, p: float, generator: torch.Generator | None = None) -> ChannelOutput:
        out = self.channel.transmit(self.interleaver.interleave(bits), p, generator)
        back = self.interleaver.deinterleave
        return ChannelOutput(back(out.received), back(out.flipped), back(out.erased))


CHANNELS: dict[str, type[NoiselessChannel]] = {
    "none": NoiselessChannel,
    "bsc": BinarySymmetricChannel,
    "bec": BinaryErasureChannel,
    "ge": GilbertElliottChannel,
}


def build_channel(kind: str, erasure_policy: str = "random", burst: float = DEFAULT_BURST,
                  interleave: int | None = None) -> NoiselessChannel:
    """Build a channel by name: ``none``, ``bsc``, ``bec`` (with its erasure policy) or ``ge`` (with its mean
    burst length); with an ``interleave`` seed, wrapped in that seed's :class:`Interleaver`."""
    if kind not in CHANNELS:
        raise ValueError(f"unknown channel {kind!r}; known: {sorted(CHANNELS)}")
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


@dataclass(frozen=True)
class PayloadReport:
    """What a channel did to one payload: counts over payload bits only (never the padding)."""

    payload: bytes
    payload_bits: int
    flipped_bits: int
    erased_bits: int
    erasure_mask: bytes | None = None
    erased_positions: bytes | None = None  # packed like the payload; only when asked for (for display)


def _packed_draws(channel: NoiselessChannel, shape: tuple[int, ...], p: float,
                  generator: torch.Generator | None) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The BSC/BEC random draws of :meth:`transmit` for a payload of ``shape``, as numpy masks, or None.

    Same calls to the generator in the same order as the tensor form (``_uniform`` on a CPU tensor), so a
    seed gives the same corruption in training and serving; only the bookkeeping around the draws is
    numpy instead of float tensors. Returns ``(flip_or_erase, fill)``; None for any other channel.
    """
    if generator is not None and generator.device.type != "cpu":
        return None
    if type(channel) is BinarySymmetricChannel:
        p = check_probability(p)
        return (torch.rand(shape, generator=generator) < p).numpy(), None
    if type(channel) is BinaryErasureChannel:
        p = check_probability(p)
        erased = (torch.rand(shape, generator=generator) < p).numpy()
        fill = (torch.rand(shape, generator=generator) < 0.5).numpy() if channel.erasure_policy == "random" else None
        return erased, fill
    return None


def apply_to_payload(
    channel: NoiselessChannel,
    payload: bytes,
    shape: list[int] | tuple[int, ...],
    p: float,
    generator: torch.Generator | None = None,
    keep_erased_positions: bool = False,
) -> PayloadReport:
    """Corrupt a packed payload with the same randomness as the tensor form, and count what changed.

    BSC and BEC work on numpy bits (XOR with the flip mask, select with the erasure mask); any other channel
    goes through its tensor :meth:`transmit`. ``keep_erased_positions`` also returns which bits were erased
    whatever the erasure policy: the receiver never sees this under the ``random`` policy, but a person
    inspecting the channel's damage does.
    """
    shape = tuple(int(d) for d in shape)
    bits = bitstream.unpack_bits(payload, shape)
    draws = _packed_draws(channel, shape, p, generator)
    if draws is None:
        out = channel.transmit(torch.from_numpy(bits).float(), p, generator)
        mask = None
        if isinstance(channel, BinaryErasureChannel) and channel.erasure_policy == "mask":
            mask = bitstream.pack(out.erased.to(torch.uint8))
        return PayloadReport(
            payload=bitstream.pack(out.received.to(torch.uint8)),
            payload_bits=bits.size,
            flipped_bits=int(out.flipped.sum()),
            erased_bits=int(out.erased.sum()),
            erasure_mask=mask,
            erased_positions=bitstream.pack(out.erased.to(torch.uint8)) if keep_erased_positions else None,
        )
    hit, fill = draws
    hit_u8 = hit.view(np.uint8)
    if isinstance(channel, BinaryErasureChannel):
        received = np.where(hit, fill.view(np.uint8), bits) if fill is not None else bits & ~hit_u8 & 1
        flipped = int(np.count_nonzero(received != bits))
        erased = int(np.count_nonzero(hit_u8))
        mask = bitstream.pack_bits(hit_u8) if channel.erasure_policy == "mask" else None
        positions = (mask if mask is not None else bitstream.pack_bits(hit_u8)) if keep_erased_positions else None
        return PayloadReport(bitstream.pack_bits(received), bits.size, flipped, erased, mask, positions)
    received = bits ^ hit_u8
    return PayloadReport(bitstream.pack_bits(received), bits.size, int(np.count_nonzero(hit_u8)), 0)


def awgn_bpsk_to_bsc(ebn0_db: float) -> float:
    """Crossover probability of BPSK over AWGN with hard decisions: ``p = Q(sqrt(2 Eb/N0))``.

    ``Q(x) = erfc(x / sqrt 2) / 2``, so ``p = erfc(sqrt(Eb/N0)) / 2``. Lets a user state an SNR
    and evaluate the BSC it induces.
    """
    ebn0 = 10.0 ** (float(ebn0_db) / 10.0)
    return 0.5 * math.erfc(math.sqrt(ebn0))
