"""The radio link (Sionna): BER against closed forms, LLR/hard agreement, seeding, coherence, wire format, errors.

BER checks: each hard link's measured BER must fall in the binomial 99% interval ``p +- 2.576 sqrt(p(1-p)/n)``
around its closed form, n = 2^20 bits (independent bits: Rayleigh with one fade per symbol). The draws are seeded,
so a pass is reproducible and a failure means the link or the formula moved (with fresh draws each check would
fail by chance 1% of the time).
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from sjscc.common.channels import LinkSettings, RadioChannel, apply_to_payload, build_channel
from sjscc.common.channels.radio import (
    LLR_CLIP,
    _coherence_symbols,
    dequantize_llr,
    measure_throughput,
    pack_levels,
    quantize_llr,
    soft_levels_bytes,
    unpack_levels,
)

N_BITS = 2**20
Z99 = 2.5758


def q_function(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def awgn_bpsk_ber(ebn0_db: float) -> float:
    """BPSK and Gray QPSK over AWGN: ``Q(sqrt(2 Eb/N0))``."""
    return q_function(math.sqrt(2.0 * 10 ** (ebn0_db / 10)))


def rayleigh_bpsk_ber(ebn0_db: float) -> float:
    """BPSK over Rayleigh with coherent detection, averaged over the fade: ``(1 - sqrt(g / (1 + g))) / 2``."""
    g = 10 ** (ebn0_db / 10)
    return 0.5 * (1.0 - math.sqrt(g / (1.0 + g)))


def qam16_gray_ber(ebn0_db: float) -> float:
    """16-QAM (Gray) over AWGN with per-dimension threshold decisions: ``(3 Q(x) + 2 Q(3x) - Q(5x)) / 4``,
    ``x = d / sigma = sqrt(4/5 Eb/N0)`` (4-PAM per dimension; sign bit and inner/outer bit averaged)."""
    x = math.sqrt(0.8 * 10 ** (ebn0_db / 10))
    return (3 * q_function(x) + 2 * q_function(3 * x) - q_function(5 * x)) / 4


def random_bits(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < 0.5).float()


def measured_ber(kind: str, settings: LinkSettings, seed: int = 1) -> float:
    bits = random_bits((256, N_BITS // 256))
    out = build_channel(kind, link=settings).transmit(bits, generator=torch.Generator().manual_seed(seed))
    return float(out.flipped.float().mean())


def within_binomial_99(measured: float, expected: float, n: int, slack: float = 0.0) -> bool:
    half = Z99 * math.sqrt(expected * (1 - expected) / n) + slack * expected
    return abs(measured - expected) <= half


@pytest.mark.parametrize("modulation,snr_db", [("bpsk", 0.0), ("bpsk", 6.0), ("qpsk", 2.0), ("qpsk", 6.0)])
def test_hard_ber_awgn_matches_q_function(modulation: str, snr_db: float) -> None:
    ber = measured_ber("awgn", LinkSettings(snr_db, modulation))
    assert within_binomial_99(ber, awgn_bpsk_ber(snr_db), N_BITS), (ber, awgn_bpsk_ber(snr_db))


@pytest.mark.parametrize("snr_db", [0.0, 8.0])
def test_hard_ber_rayleigh_bpsk_matches_average(snr_db: float) -> None:
    ber = measured_ber("rayleigh", LinkSettings(snr_db, "bpsk", coherence=1))
    assert within_binomial_99(ber, rayleigh_bpsk_ber(snr_db), N_BITS), (ber, rayleigh_bpsk_ber(snr_db))


def test_hard_ber_rayleigh_qpsk_per_bit_equals_bpsk() -> None:
    """Gray QPSK is two BPSK links at the same Eb/N0: the same Rayleigh average per bit."""
    ber = measured_ber("rayleigh", LinkSettings(4.0, "qpsk", coherence=1))
    assert within_binomial_99(ber, rayleigh_bpsk_ber(4.0), N_BITS), (ber, rayleigh_bpsk_ber(4.0))


def test_hard_ber_16qam_matches_gray_closed_form() -> None:
    """Stated tolerance: the 99% binomial half-width plus 2% of the value. The demapper decides each bit by its
    exact posterior (bit-wise MAP), whose inner/outer boundary sits slightly off the 2d threshold of the formula."""
    ber = measured_ber("awgn", LinkSettings(4.0, "16qam"))
    assert within_binomial_99(ber, qam16_gray_ber(4.0), N_BITS, slack=0.02), (ber, qam16_gray_ber(4.0))


@pytest.mark.parametrize("modulation", ["bpsk", "qpsk"])
def test_closed_form_hard_decisions_equal_sionna_demapper(modulation: str) -> None:
    """The fast hard path (AWGN BPSK/QPSK) draws the same noise and decides the same bits as Sionna's demapper."""
    bits = random_bits((64, 2048))
    link = RadioChannel("awgn", LinkSettings(1.0, modulation))
    fast = link.transmit(bits, generator=torch.Generator().manual_seed(3))
    demapped = link.demap(bits, generator=torch.Generator().manual_seed(3))
    assert fast.llr is None
    assert torch.equal(fast.received, (demapped.llr > 0).float())
    assert int(fast.flipped.sum()) > 1000


@pytest.mark.parametrize("kind,modulation", [("awgn", "bpsk"), ("awgn", "16qam"), ("rayleigh", "qpsk")])
def test_soft_llr_sign_agrees_with_hard_decisions(kind: str, modulation: str) -> None:
    bits = random_bits((32, 1024))
    hard = build_channel(kind, link=LinkSettings(2.0, modulation, 8, "hard"))
    soft = build_channel(kind, link=LinkSettings(2.0, modulation, 8, "soft"))
    out_hard = hard.transmit(bits, generator=torch.Generator().manual_seed(5))
    out_soft = soft.transmit(bits, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out_hard.received, (out_soft.llr > 0).float())
    assert torch.equal(out_hard.received, (out_soft.received > 0.5).float())  # quantisation keeps the sign
    assert torch.equal(out_hard.flipped, out_soft.flipped)
    assert out_soft.levels.max() < 16 and out_soft.received.min() > 0 and out_soft.received.max() < 1


_DIGEST = """
import hashlib, torch
from sjscc.common.channels import LinkSettings, build_channel
bits = (torch.rand((8, 4, 8, 4, 4), generator=torch.Generator().manual_seed(0)) < 0.5).float()
out = build_channel({kind!r}, link=LinkSettings(1.0, {modulation!r}, "step", "soft")).transmit(
    bits, generator=torch.Generator().manual_seed(42))
print(hashlib.sha256(out.levels.numpy().tobytes() + out.received.numpy().tobytes()).hexdigest())
"""


@pytest.mark.parametrize("kind,modulation", [("awgn", "qpsk"), ("rayleigh", "16qam")])
def test_seeded_link_is_identical_across_processes(kind: str, modulation: str) -> None:
    code = _DIGEST.format(kind=kind, modulation=modulation)
    digests = {subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
               for _ in range(2)}
    bits = (torch.rand((8, 4, 8, 4, 4), generator=torch.Generator().manual_seed(0)) < 0.5).float()
    out = build_channel(kind, link=LinkSettings(1.0, modulation, "step", "soft")).transmit(
        bits, generator=torch.Generator().manual_seed(42))
    here = hashlib.sha256(out.levels.numpy().tobytes() + out.received.numpy().tobytes()).hexdigest()
    assert digests == {here}


def test_different_seeds_give_different_noise() -> None:
    bits = random_bits((4, 4096))
    link = build_channel("awgn", link=LinkSettings(0.0))
    a = link.transmit(bits, generator=torch.Generator().manual_seed(1)).flipped
    b = link.transmit(bits, generator=torch.Generator().manual_seed(2)).flipped
    assert not torch.equal(a, b)


@pytest.mark.parametrize("coherence,block", [("packet", 256), ("step", 64), (16, 16), (1, 1), (1000, 256)])
def test_coherence_sets_one_fade_per_block(coherence: str | int, block: int) -> None:
    """Payload [T=4, 8, 4, 4] of 512 bits, QPSK: 256 symbols, 64 per step; one fade per block, blocks independent."""
    link = RadioChannel("rayleigh", LinkSettings(3.0, "qpsk", coherence))
    fades = link._fades(3, 256, (3, 4, 8, 4, 4), torch.Generator().manual_seed(0), torch.device("cpu"))
    assert fades.shape == (3, 256)
    blocks = fades.view(3, 256 // block, block)
    assert torch.equal(blocks, blocks[:, :, :1].expand_as(blocks))
    firsts = blocks[:, :, 0].flatten()
    assert torch.view_as_real(firsts).unique(dim=0).shape[0] == firsts.numel()


def test_coherence_step_needs_whole_symbols_per_step() -> None:
    with pytest.raises(ValueError, match="whole symbols per step"):
        _coherence_symbols("step", 100, (1, 2, 3, 3), 4)  # 9 bits per step, 16-QAM
    with pytest.raises(ValueError, match=r"\[B, T, \.\.\.\]"):
        RadioChannel("rayleigh", LinkSettings(coherence="step")).transmit(torch.zeros(4, 8))


def test_block_fading_correlates_errors_within_a_packet() -> None:
    """One fade per packet: the error counts of packets spread far wider than independent bits allow."""
    bits = random_bits((400, 512))
    out = build_channel("rayleigh", link=LinkSettings(6.0, "bpsk", "packet")).transmit(
        bits, generator=torch.Generator().manual_seed(0))
    per_packet = out.flipped.float().mean(dim=1)
    p = float(per_packet.mean())
    assert float(per_packet.var()) > 20 * p * (1 - p) / 512
    assert within_binomial_99(p, rayleigh_bpsk_ber(6.0), 400, slack=0.0) or abs(p - rayleigh_bpsk_ber(6.0)) < 0.01


def test_symbols_count_channel_uses() -> None:
    bits = random_bits((2, 4, 8, 4, 4))  # 512 bits per payload
    for modulation, symbols in (("bpsk", 512), ("qpsk", 256), ("16qam", 128)):
        assert build_channel("awgn", link=LinkSettings(modulation=modulation)).transmit(bits).symbols == symbols
    odd = build_channel("awgn", link=LinkSettings(modulation="16qam")).transmit(random_bits((2, 10)))
    assert odd.symbols == 3 and odd.received.shape == (2, 10)


def test_straight_through_backward_and_always_on() -> None:
    bits = random_bits((4, 256)).requires_grad_(True)
    for decisions in ("hard", "soft"):
        out = build_channel("awgn", link=LinkSettings(-2.0, decisions=decisions)).transmit(
            bits, generator=torch.Generator().manual_seed(0))
        (out.received * torch.arange(256.0)).sum().backward()
        assert torch.equal(bits.grad, torch.arange(256.0).expand(4, 256))
        assert int(out.flipped.sum()) > 0
        bits.grad = None


def test_call_signature_ignores_p() -> None:
    bits = random_bits((2, 128))
    link = build_channel("awgn", link=LinkSettings(0.0))
    a = link(bits, 0.3, torch.Generator().manual_seed(9))
    b = link(bits, 0.0, torch.Generator().manual_seed(9))
    assert torch.equal(a, b)


def test_llr_levels_quantise_and_pack_round_trip() -> None:
    llr = torch.tensor([-100.0, -8.0, -7.9, -0.01, 0.0, 0.01, 3.2, 7.99, 8.0, 50.0])
    levels = quantize_llr(llr, 4)
    assert levels.tolist() == [0, 0, 0, 7, 8, 8, 11, 15, 15, 15]
    assert dequantize_llr(levels, 4).tolist() == [-7.5, -7.5, -7.5, -0.5, 0.5, 0.5, 3.5, 7.5, 7.5, 7.5]
    assert float(dequantize_llr(torch.tensor([255]), 8)) == pytest.approx(LLR_CLIP - LLR_CLIP / 256)
    for soft_bits in (2, 4, 5, 8):
        values = np.random.default_rng(soft_bits).integers(0, 2**soft_bits, size=1001).astype(np.uint8)
        packed = pack_levels(values, soft_bits)
        assert len(packed) == soft_levels_bytes(1001, soft_bits) == math.ceil(1001 * soft_bits / 8)
        assert np.array_equal(unpack_levels(packed, 1001, soft_bits), values)
    with pytest.raises(ValueError, match="is 501 bytes"):
        unpack_levels(b"\x00" * 10, 1001, 4)


def test_payload_form_matches_tensor_form() -> None:
    from sjscc.common import bitstream

    shape = (4, 8, 4, 4)
    bits = random_bits((1, *shape))
    payload = bitstream.pack(bits[0].to(torch.uint8))
    for decisions in ("hard", "soft"):
        link = build_channel("rayleigh", link=LinkSettings(2.0, "qpsk", "step", decisions))
        report = apply_to_payload(link, payload, shape, 0.0, torch.Generator().manual_seed(4))
        out = link.transmit(bits, generator=torch.Generator().manual_seed(4))
        assert report.symbols == 256 and report.payload_bits == 512
        assert report.flipped_bits == int(out.flipped.sum()) > 0
        if decisions == "hard":
            assert report.soft_bits == 0 and report.payload == bitstream.pack(out.received[0].to(torch.uint8))
        else:
            assert report.soft_bits == 4 and len(report.payload) == 256
            assert np.array_equal(unpack_levels(report.payload, 512, 4), out.levels.flatten().numpy())


@pytest.mark.parametrize("kwargs,message", [
    ({"modulation": "8psk"}, "unknown modulation"),
    ({"snr_db": "3"}, "snr_db"),
    ({"snr_db": float("nan")}, "finite"),
    ({"snr_db": 100.0}, r"\[-30, 60\]"),
    ({"coherence": 0}, "coherence"),
    ({"coherence": "slow"}, "coherence"),
    ({"coherence": True}, "coherence"),
    ({"decisions": "maybe"}, "decisions"),
    ({"soft_bits": 1}, "soft_bits"),
    ({"coderate": 0.0}, "coderate"),
])
def test_bad_settings_are_clear_value_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LinkSettings(**kwargs)


def test_bad_channel_combinations_are_value_errors() -> None:
    with pytest.raises(ValueError, match="apply to 'awgn' and 'rayleigh'"):
        build_channel("bsc", link=LinkSettings())
    with pytest.raises(ValueError, match="interleaving"):
        build_channel("awgn", interleave=3)
    with pytest.raises(ValueError, match="unknown radio link"):
        RadioChannel("rician")


def test_settings_parse_text_forms() -> None:
    settings = LinkSettings(snr_db=3, modulation="QPSK", coherence="128", decisions="Soft")
    assert settings.describe() == {"snr_db": 3.0, "modulation": "qpsk", "coherence": 128, "decisions": "soft"}
    assert settings.wire_bits_per_bit == 4 and LinkSettings().wire_bits_per_bit == 1


def test_throughput_is_measured() -> None:
    result = measure_throughput(batch=4, repeats=1)
    assert result["link_mbit_s"] > 0 and result["bits_per_call"] == 4 * 4096


def test_closed_form_ber_matches_the_formulas_here() -> None:
    from sjscc.common.channels.radio import closed_form_ber

    for snr in (-2.0, 0.0, 4.0, 9.0):
        assert closed_form_ber("awgn", LinkSettings(snr, "bpsk")) == pytest.approx(awgn_bpsk_ber(snr), rel=1e-9)
        assert closed_form_ber("awgn", LinkSettings(snr, "qpsk")) == pytest.approx(awgn_bpsk_ber(snr), rel=1e-9)
        assert closed_form_ber("awgn", LinkSettings(snr, "16qam")) == pytest.approx(qam16_gray_ber(snr), rel=1e-9)
        assert closed_form_ber("rayleigh", LinkSettings(snr, "bpsk", 4)) == pytest.approx(rayleigh_bpsk_ber(snr))
    # the numerical fade average of the BPSK AWGN curve reproduces the Rayleigh closed form
    rayleigh_16qam = closed_form_ber("rayleigh", LinkSettings(4.0, "16qam"))
    assert rayleigh_bpsk_ber(4.0) < rayleigh_16qam < 0.5


def test_hard_ber_rayleigh_16qam_matches_quadrature() -> None:
    from sjscc.common.channels.radio import closed_form_ber

    settings = LinkSettings(6.0, "16qam", coherence=1)
    ber = measured_ber("rayleigh", settings)
    assert within_binomial_99(ber, closed_form_ber("rayleigh", settings), N_BITS, slack=0.02)


def test_snr_range_draws_one_snr_per_call_within_it() -> None:
    settings = LinkSettings(-2.0, "bpsk", snr_db_max=6.0)
    draws = [settings.draw_snr(torch.Generator().manual_seed(s), torch.device("cpu")) for s in range(50)]
    assert all(-2.0 <= d <= 6.0 for d in draws) and max(draws) - min(draws) > 5.0
    assert settings.describe()["snr_db_max"] == 6.0
    bits = random_bits((64, 1024))
    link = build_channel("awgn", link=settings)
    rates = {float(link.transmit(bits, generator=torch.Generator().manual_seed(s)).flipped.float().mean())
             for s in range(4)}
    assert len(rates) == 4 and all(awgn_bpsk_ber(6.5) < r < awgn_bpsk_ber(-2.5) for r in rates)
    with pytest.raises(ValueError, match="snr_db_max"):
        LinkSettings(4.0, snr_db_max=2.0)
