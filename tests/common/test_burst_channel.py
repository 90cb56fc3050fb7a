"""Gilbert-Elliott burst channel and bit interleaver: the (p, L) mapping by hand, stationary statistics over
2^21 bits against their closed forms, seeding, tensor form == packed form, burst spreading, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from sjscc.common import bitstream
from sjscc.common.channels import (
    BinarySymmetricChannel,
    GilbertElliottChannel,
    InterleavedChannel,
    Interleaver,
    apply_to_payload,
    build_channel,
    check_burst,
    gilbert_elliott_errors,
    gilbert_elliott_transitions,
)

N_BITS = 2_097_152  # 2^21


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _lambda(p: float, burst: float) -> float:
    """Second eigenvalue of the chain: the error indicator's autocorrelation is lambda^k at lag k."""
    return 1 - 1 / burst - p / (burst * (1 - p))


def _runs(errors: torch.Tensor) -> torch.Tensor:
    """Lengths of the runs of True in a 1-D bool tensor."""
    padded = torch.cat([torch.zeros(1), errors.float(), torch.zeros(1)])
    edges = torch.diff(padded)
    return (edges == -1).nonzero().flatten() - (edges == 1).nonzero().flatten()


def _autocorrelation(x: torch.Tensor, lag: int) -> float:
    x = x.double() - x.double().mean()
    return float((x[:-lag] * x[lag:]).mean() / (x * x).mean())


def test_transitions_by_hand() -> None:
    # p = 0.2, L = 4: r = 1/4, q = 0.2 * 0.25 / 0.8 = 0.0625; stationary bad share q / (q + r) = 0.2
    q, r = gilbert_elliott_transitions(0.2, 4)
    assert (q, r) == pytest.approx((0.0625, 0.25), abs=1e-15)
    assert q / (q + r) == pytest.approx(0.2, abs=1e-15)
    assert gilbert_elliott_transitions(0.0, 8) == (0.0, 0.125)
    # the largest mean error rate for L: p = L / (L + 1) makes q = 1
    assert gilbert_elliott_transitions(8 / 9, 8)[0] == pytest.approx(1.0)


@pytest.mark.parametrize(("p", "burst"), [(0.05, 8), (0.15, 8), (0.1, 2.5), (0.3, 1)])
def test_stationary_statistics(p: float, burst: float) -> None:
    """Mean error rate, mean burst (error-run) length and autocorrelation at lags 1, 4, 16.

    Tolerances are 5 standard errors: the mean of a Markov-correlated indicator has variance
    ``p(1-p)/n * (1+lambda)/(1-lambda)``; the mean run length of ``m`` geometric runs ``L sqrt(1-1/L)/sqrt(m)``;
    the autocorrelations get 0.01 absolute (their standard error is below 0.002 at n = 2^21 for these cases).
    """
    errors = gilbert_elliott_errors(N_BITS, p, burst, _gen())
    lam = _lambda(p, burst)
    rate_sigma = math.sqrt(p * (1 - p) / N_BITS * (1 + lam) / (1 - lam))
    assert abs(float(errors.double().mean()) - p) <= 5 * rate_sigma
    runs = _runs(errors)
    run_sigma = burst * math.sqrt(1 - 1 / burst) / math.sqrt(len(runs))
    assert abs(float(runs.double().mean()) - burst) <= 5 * run_sigma + 1e-12
    for lag in (1, 4, 16):
        assert _autocorrelation(errors, lag) == pytest.approx(lam**lag, abs=0.01), f"lag {lag}"


def test_burst_one_over_one_minus_p_is_a_bsc() -> None:
    """L = 1/(1-p) makes lambda = 0: errors uncorrelated, error runs geometric like BSC(p)'s."""
    p = 0.2
    errors = gilbert_elliott_errors(N_BITS, p, 1 / (1 - p), _gen(3))
    bsc = BinarySymmetricChannel().transmit(torch.zeros(N_BITS), p, _gen(4)).flipped
    for lag in (1, 2, 5):
        assert abs(_autocorrelation(errors, lag)) < 0.01
    assert float(_runs(errors).double().mean()) == pytest.approx(float(_runs(bsc).double().mean()), rel=0.02)


def test_channel_flips_exactly_the_error_pattern_and_is_seeded() -> None:
    bits = (torch.rand(4, 8, 4, 4, 4, generator=_gen(7)) < 0.3).float()
    channel = GilbertElliottChannel(burst=6)
    out = channel.transmit(bits, 0.1, _gen(9))
    expected = gilbert_elliott_errors(bits.numel(), 0.1, 6, _gen(9)).view(bits.shape)
    assert torch.equal(out.flipped, expected)
    assert torch.equal(out.received, torch.where(expected, 1 - bits, bits))
    assert not out.erased.any()
    assert torch.equal(channel(bits, 0.1, _gen(9)), out.received)
    assert not torch.equal(channel(bits, 0.1, _gen(10)), out.received)
    assert torch.equal(channel(bits, 0.0, _gen(9)), bits)


def test_straight_through_gradient() -> None:
    bits = (torch.rand(2, 8, 2, 2, 2, generator=_gen()) < 0.5).float().requires_grad_()
    for channel in (GilbertElliottChannel(4), build_channel("ge", burst=4, interleave=5)):
        (grad,) = torch.autograd.grad((channel(bits, 0.3, _gen()) * torch.arange(128.0).view(2, 8, 2, 2, 2)).sum(),
                                      bits)
        assert torch.equal(grad, torch.arange(128.0).view(2, 8, 2, 2, 2))


@pytest.mark.parametrize("interleave", [None, 11])
def test_packed_payload_equals_tensor_form(interleave: int | None) -> None:
    shape = [8, 4, 4, 4]
    bits = (torch.rand(shape, generator=_gen(2)) < 0.4).to(torch.uint8)
    channel = build_channel("ge", burst=8, interleave=interleave)
    report = apply_to_payload(channel, bitstream.pack(bits), shape, 0.15, _gen(5))
    out = channel.transmit(bits.float(), 0.15, _gen(5))
    assert torch.equal(bitstream.unpack(report.payload, shape), out.received.to(torch.uint8))
    assert report.flipped_bits == int(out.flipped.sum()) > 0
    assert report.erased_bits == 0 and report.payload_bits == 512


def test_interleaver_is_a_seeded_permutation_both_ends_agree_on() -> None:
    bits = torch.arange(2 * 8 * 2 * 2 * 3, dtype=torch.float32).view(2, 8, 2, 2, 3)
    device_end, edge_end = Interleaver(42), Interleaver(42)
    wire = device_end.interleave(bits)
    assert not torch.equal(wire, bits)
    assert torch.equal(edge_end.deinterleave(wire), bits)
    # each payload is permuted on its own, by the same permutation
    assert torch.equal(wire[0].flatten().sort().values, bits[0].flatten())
    forward, _ = device_end.permutation(96)
    assert torch.equal(wire[1].flatten(), bits[1].flatten()[forward])
    assert not torch.equal(Interleaver(43).interleave(bits), wire)


def test_interleaving_spreads_bursts() -> None:
    """Same channel draw, same number of errors; the longest error run per 512-bit payload collapses."""
    bits = torch.zeros(2000, 8, 4, 4, 4)
    plain = GilbertElliottChannel(8).transmit(bits, 0.1, _gen(21)).flipped
    spread = build_channel("ge", burst=8, interleave=3).transmit(bits, 0.1, _gen(21)).flipped
    assert int(spread.sum()) == int(plain.sum())

    def longest_run(errors: torch.Tensor) -> float:
        return float(torch.tensor([float(_runs(e.flatten()).max()) if e.any() else 0.0 for e in errors]).mean())

    plain_max, spread_max = longest_run(plain), longest_run(spread)
    assert plain_max > 15  # bursts of mean 8: the longest per payload is far longer
    assert spread_max < 4  # like BSC(0.1) over 512 bits
    assert spread_max * 4 < plain_max


@pytest.mark.parametrize("burst", [0.5, 0, -1, float("nan"), float("inf"), "8", True, None])
def test_bad_burst_is_refused(burst: object) -> None:
    with pytest.raises(ValueError, match="burst length"):
        check_burst(burst)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="burst length"):
        GilbertElliottChannel(burst)  # type: ignore[arg-type]


def test_error_rate_above_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match=r"at most L/\(L\+1\)"):
        GilbertElliottChannel(1).transmit(torch.zeros(10), 0.6)
    with pytest.raises(ValueError, match="p must be in"):
        GilbertElliottChannel(8).transmit(torch.zeros(10), 1.5)


def test_bad_interleaver_settings_are_refused() -> None:
    for seed in (-1, 2**63, 1.5, "3", True):
        with pytest.raises(ValueError, match="interleaver seed"):
            Interleaver(seed)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mask"):
        build_channel("bec", "mask", interleave=1)
    with pytest.raises(ValueError, match="payloads of 4 dims"):
        Interleaver(1).interleave(torch.zeros(3, 4))
    assert isinstance(build_channel("bsc", interleave=0), InterleavedChannel)
