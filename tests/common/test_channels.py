"""BSC and BEC: statistics over >= 10^6 bits, erasure policies, edge values of p, straight-through backward,
seeding, tensor form == packed form, AWGN->BSC mapping, bad input, the registry's names and the package's names."""

from __future__ import annotations

import math

import pytest
import torch

from sjscc.common import bitstream, channels
from sjscc.common.channels import (
    CHANNEL_NAMES,
    CHANNELS,
    LINK_KINDS,
    BinaryErasureChannel,
    BinarySymmetricChannel,
    NoiselessChannel,
    RadioChannel,
    apply_to_payload,
    awgn_bpsk_to_bsc,
    build_channel,
    check_probability,
)
from sjscc.common.codecs import CodecConfig, build_codec

N_BITS = 1_048_576  # >= 10^6


def _bits(n: int = N_BITS, seed: int = 0, rate: float = 0.5) -> torch.Tensor:
    return (torch.rand(n, generator=torch.Generator().manual_seed(seed)) < rate).float()


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _within_4_sigma(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p))


# --- statistics ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.01, 0.15, 0.5])
def test_bsc_flip_rate(p: float) -> None:
    bits = _bits()
    out = BinarySymmetricChannel().transmit(bits, p, _gen())
    flips = int((out.received != bits).sum())
    assert _within_4_sigma(flips, N_BITS, p), f"{flips} flips of {N_BITS} at p={p}"
    assert torch.equal(out.flipped, out.received != bits)
    assert not out.erased.any()


@pytest.mark.parametrize("p", [0.05, 0.25, 0.6])
def test_bec_random_fill_flips_half_the_erasures(p: float) -> None:
    bits = _bits()
    out = BinaryErasureChannel("random").transmit(bits, p, _gen())
    erased, wrong = out.erased, out.received != bits
    assert _within_4_sigma(int(erased.sum()), N_BITS, p)
    assert _within_4_sigma(int(wrong.sum()), N_BITS, p / 2), f"{int(wrong.sum())} wrong bits at p={p}"
    assert torch.equal(out.received[~erased], bits[~erased])  # never touches an unerased bit
    assert not (wrong & ~erased).any()
    assert torch.equal(out.flipped, wrong)
    # the fill is a fair coin whatever was sent: about half of the erased bits read 1
    assert _within_4_sigma(int(out.received[erased].sum()), int(erased.sum()), 0.5)


def test_bec_random_fill_is_fair_even_for_all_zero_input() -> None:
    bits = torch.zeros(N_BITS)
    out = BinaryErasureChannel().transmit(bits, 0.2, _gen())
    assert _within_4_sigma(int(out.received.sum()), N_BITS, 0.1)


def test_bec_zero_policy() -> None:
    bits = _bits(100_000)
    out = BinaryErasureChannel("zero").transmit(bits, 0.3, _gen())
    assert _within_4_sigma(int(out.erased.sum()), 100_000, 0.3)
    assert (out.received[out.erased] == 0).all()
    assert torch.equal(out.received[~out.erased], bits[~out.erased])
    assert torch.equal(out.flipped, out.erased & (bits == 1))


def test_bec_mask_policy_reports_the_mask() -> None:
    shape = [3, 2, 5, 5]  # 150 bits: padding in the last byte
    bits = _bits(150, seed=3).view(shape)
    channel = BinaryErasureChannel("mask")
    out = channel.transmit(bits, 0.3, _gen())
    assert (out.received[out.erased] == 0).all()
    assert torch.equal(out.received[~out.erased], bits[~out.erased])
    report = apply_to_payload(channel, bitstream.pack(bits), shape, 0.3, _gen())
    assert report.erasure_mask == bitstream.pack(out.erased.to(torch.uint8))
    assert report.erased_bits == int(out.erased.sum())
    assert apply_to_payload(BinaryErasureChannel("random"), bitstream.pack(bits), shape, 0.3).erasure_mask is None


# --- edge values of p ---------------------------------------------------------------------------------

@pytest.mark.parametrize("channel", [NoiselessChannel(), BinarySymmetricChannel(), BinaryErasureChannel("random"),
                                     BinaryErasureChannel("zero"), BinaryErasureChannel("mask")],
                         ids=["none", "bsc", "bec-random", "bec-zero", "bec-mask"])
def test_p_zero_is_identity(channel: NoiselessChannel) -> None:
    bits = _bits(10_000)
    out = channel.transmit(bits, 0.0, _gen())
    assert torch.equal(out.received, bits)
    assert not out.flipped.any() and not out.erased.any()


def test_bsc_p_one_inverts_every_bit() -> None:
    bits = _bits(10_000)
    assert torch.equal(BinarySymmetricChannel()(bits, 1.0, _gen()), 1 - bits)


def test_bec_p_one_erases_every_bit() -> None:
    assert BinaryErasureChannel("zero").transmit(_bits(10_000), 1.0).erased.all()


def test_noiseless_channel_ignores_p() -> None:
    bits = _bits(1000)
    assert torch.equal(NoiselessChannel()(bits, 0.5), bits)


# --- training behaviour -------------------------------------------------------------------------------

@pytest.mark.parametrize("channel", [BinarySymmetricChannel(), BinaryErasureChannel()], ids=["bsc", "bec"])
def test_straight_through_gradient_is_identity(channel: NoiselessChannel) -> None:
    bits = _bits(4096).requires_grad_(True)
    received = channel(bits, 0.4, _gen())
    assert (received != bits).any()
    upstream = torch.randn(4096, generator=_gen(7))
    received.backward(upstream)
    assert torch.equal(bits.grad, upstream)


def test_channel_active_in_eval_mode() -> None:
    codec = build_codec("snn", CodecConfig(16, 8, 4, timesteps=4)).eval()
    with torch.no_grad():
        out = codec(torch.randn(4, 16, 4, 4), BinarySymmetricChannel(), 0.5, _gen())
    assert not codec.training
    changed = (out.received != out.bits).float().mean().item()
    assert 0.3 < changed < 0.7  # 1024 bits at p = 0.5


@pytest.mark.parametrize("kind", ["bsc", "bec"])
def test_same_seed_same_output(kind: str) -> None:
    bits, channel = _bits(10_000), build_channel(kind)
    first, second = channel(bits, 0.2, _gen(5)), channel(bits, 0.2, _gen(5))
    assert torch.equal(first, second)
    assert not torch.equal(first, channel(bits, 0.2, _gen(6)))


@pytest.mark.parametrize(("kind", "policy"), [("bsc", "random"), ("bec", "random"), ("bec", "zero")])
def test_packed_payload_equals_tensor_form(kind: str, policy: str) -> None:
    shape = [4, 3, 3, 3]  # 108 bits -> 14 bytes, 4 padding bits
    bits = _bits(108, seed=2).view(shape)
    channel = build_channel(kind, policy)
    tensor_form = channel(bits, 0.25, _gen(9))
    report = apply_to_payload(channel, bitstream.pack(bits), shape, 0.25, _gen(9))
    assert torch.equal(bitstream.unpack(report.payload, shape), tensor_form)  # also checks zero padding
    assert report.payload_bits == 108
    assert report.flipped_bits == int((tensor_form != bits).sum()) > 0
    assert len(report.payload) == 14


def test_packed_form_of_a_batch_sample_matches_training_draws() -> None:
    """One image [1, T, c2, h, w] in training and its payload [T, c2, h, w] in serving draw the same noise."""
    bits = _bits(2 * 4 * 4, seed=4).view(1, 2, 4, 2, 2)
    channel = BinarySymmetricChannel()
    trained = channel(bits, 0.3, _gen(11))[0]
    served = apply_to_payload(channel, bitstream.pack(bits[0]), [2, 4, 2, 2], 0.3, _gen(11))
    assert torch.equal(bitstream.unpack(served.payload, [2, 4, 2, 2]), trained)


# --- AWGN -> BSC ----------------------------------------------------------------------------------------

def test_awgn_bpsk_to_bsc_hand_values() -> None:
    # p = Q(sqrt(2 Eb/N0)); at 0 dB, Q(sqrt 2) = erfc(1)/2 = 0.0786496...
    assert awgn_bpsk_to_bsc(0.0) == pytest.approx(0.0786496, abs=1e-7)
    # at 10 dB, Q(sqrt 20) = erfc(sqrt 10)/2 = 3.8721e-6
    assert awgn_bpsk_to_bsc(10.0) == pytest.approx(3.8721e-6, rel=1e-4)
    assert awgn_bpsk_to_bsc(-100.0) == pytest.approx(0.5, abs=1e-3)
    assert awgn_bpsk_to_bsc(3.0) < awgn_bpsk_to_bsc(0.0) < awgn_bpsk_to_bsc(-3.0)


# --- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), float("inf"), "0.1", "high", None, True, [0.1]])
def test_bad_probability_is_refused_with_a_clear_error(p: object) -> None:
    for channel in (NoiselessChannel(), BinarySymmetricChannel(), BinaryErasureChannel()):
        with pytest.raises(ValueError, match=r"probability p must be"):
            channel(_bits(16), p)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"probability p must be"):
        apply_to_payload(BinarySymmetricChannel(), b"\x00\x00", [16], p)  # type: ignore[arg-type]


def test_probability_accepts_numbers() -> None:
    assert check_probability(0) == 0.0
    assert check_probability(torch.tensor(0.25)) == 0.25
    assert check_probability(1) == 1.0


def test_unknown_channel_and_policy() -> None:
    with pytest.raises(ValueError, match=r"unknown channel 'wifi'"):
        build_channel("wifi")
    with pytest.raises(ValueError, match=r"unknown erasure_policy 'ones'"):
        BinaryErasureChannel("ones")
    with pytest.raises(ValueError, match=r"unknown erasure_policy 'drop'"):
        build_channel("bec", "drop")


# --- names --------------------------------------------------------------------------------------------

def test_the_parsers_channel_names_are_the_registrys() -> None:
    """settings.py names the channels without torch (for the parsers); the registry's keys must be those names."""
    assert tuple(CHANNELS) == CHANNEL_NAMES
    assert tuple(kind for kind, channel in CHANNELS.items() if channel is RadioChannel) == LINK_KINDS


def test_the_package_exports_every_public_name_and_its_submodules() -> None:
    for name in channels.__all__:
        assert getattr(channels, name) is not None, name
    from sjscc.common.channels import radio

    assert radio.LinkSettings is channels.LinkSettings
    with pytest.raises(AttributeError, match="has no attribute 'wifi'"):
        channels.wifi  # noqa: B018
