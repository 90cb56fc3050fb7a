"""The Gilbert-Elliott burst channel: errors in runs of mean length L, mean rate p."""

from __future__ import annotations

import torch

from sjscc.common.channels.base import ChannelOutput, NoiselessChannel, _straight_through
from sjscc.common.channels.settings import DEFAULT_BURST, check_burst, check_probability


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
