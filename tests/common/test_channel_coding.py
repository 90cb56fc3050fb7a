"""CRC + 5G LDPC on the radio link (sjscc.common.channels.coding): round trip, high-SNR BLER, CRC, seeding."""

from __future__ import annotations

import pytest
import torch

from sjscc.common.channels.coding import CodedLink, esno_db, recover

torch.set_num_threads(1)


def _bits(batch: int, k: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(batch, k, generator=torch.Generator().manual_seed(seed)) < 0.5).float()


@pytest.fixture(scope="module")
def link() -> CodedLink:
    return CodedLink(64, 256, "qpsk", "awgn", "soft")


def test_round_trip_without_noise(link: CodedLink) -> None:
    bits = _bits(16, 64)
    coded = link.encode(bits)
    assert coded.shape == (16, 256) and link.symbols == 128
    llr = (2 * coded - 1) * 20.0  # Sionna's sign: positive LLR means bit 1
    decoded, ok = link.decode(llr)
    assert ok.all() and torch.equal(decoded, bits)


@pytest.mark.parametrize("modulation,channel,decisions", [("bpsk", "awgn", "soft"), ("16qam", "awgn", "hard"),
                                                          ("qpsk", "rayleigh", "soft")])
def test_no_block_fails_at_high_snr(modulation: str, channel: str, decisions: str) -> None:
    """64 blocks at 30 dB: 0 failures (a BLER of 5% would show a failure with prob 1 - 0.95^64 > 96%)."""
    link = CodedLink(64, 256, modulation, channel, decisions)
    bits = _bits(64, 64, 1)
    out = link(bits, 30.0, torch.Generator().manual_seed(3))
    assert out.decoded.all() and torch.equal(out.bits, bits)


def test_every_block_fails_far_below_capacity(link: CodedLink) -> None:
    out = link(_bits(32, 64, 2), -10.0, torch.Generator().manual_seed(4))
    assert not out.decoded.any()
    assert out.channel_bit_errors.float().mean() > 0.3 * 256


def test_crc_catches_a_corrupted_block(link: CodedLink) -> None:
    bits = _bits(8, 64, 5)
    coded = link.encode(bits)
    with_crc = link._crc_encoder(bits)
    corrupted = with_crc.clone()
    corrupted[:, 3] = 1 - corrupted[:, 3]
    _, valid = link._crc_decoder(corrupted)
    assert not valid.any()
    # A codeword decoded from inconsistent LLRs (one info bit forced wrong with high confidence) fails the CRC
    llr = (2 * coded - 1) * 20.0
    llr[:, 40] = -llr[:, 40]
    llr[:, 41] = -llr[:, 41]
    llr[:, 42] = -llr[:, 42]
    decoded, ok = link.decode(llr * torch.tensor([1.0]))
    assert torch.equal(ok, (decoded == bits).all(dim=1))


def test_same_seed_same_channel(link: CodedLink) -> None:
    bits = _bits(16, 64, 6)
    first = link(bits, 1.0, torch.Generator().manual_seed(9))
    second = link(bits, 1.0, torch.Generator().manual_seed(9))
    other = link(bits, 1.0, torch.Generator().manual_seed(10))
    assert torch.equal(first.bits, second.bits) and torch.equal(first.channel_bit_errors, second.channel_bit_errors)
    assert not torch.equal(first.channel_bit_errors, other.channel_bit_errors)


def test_esno_convention() -> None:
    # rate 1/2 QPSK carries one information bit per channel use: Es/N0 = Eb/N0
    assert esno_db(3.0, 0.5, "qpsk") == pytest.approx(3.0)
    assert esno_db(0.0, 0.5, "16qam") == pytest.approx(3.0103, abs=1e-4)


@pytest.mark.parametrize("kwargs,message", [
    ({"k": 64, "n": 1024}, "outside"), ({"k": 400, "n": 256}, "outside"), ({"k": 64, "n": 255, "modulation": "qpsk"},
                                                                           "multiple"),
    ({"k": 64, "n": 256, "modulation": "8psk"}, "modulation"), ({"k": 64, "n": 256, "channel": "bsc"}, "link channel"),
    ({"k": 64, "n": 256, "decisions": "maybe"}, "decisions"), ({"k": 64, "n": 256, "coherence": 0}, "coherence"),
])
def test_bad_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CodedLink(**kwargs)


def test_wrong_block_size_is_refused(link: CodedLink) -> None:
    with pytest.raises(ValueError, match=r"\[B, 64\]"):
        link.encode(torch.zeros(2, 63))


def test_recover_policies() -> None:
    bits = torch.ones(4, 8)
    decoded = torch.tensor([True, False, True, False])
    erased, wrong = recover(bits, decoded, "erase", "zero")
    assert torch.equal(erased[1], torch.zeros(8)) and torch.equal(erased[0], torch.ones(8)) and not wrong.any()
    kept, wrong = recover(bits, decoded, "misclassify")
    assert torch.equal(kept, bits) and torch.equal(wrong, ~decoded)
    coins, _ = recover(torch.ones(4, 4000), decoded, "erase", "random", torch.Generator().manual_seed(0))
    assert abs(coins[1].mean().item() - 0.5) < 0.03  # 4000 fair coins: std 0.0079, 0.03 is > 3.7 std
    with pytest.raises(ValueError, match="on_failure"):
        recover(bits, decoded, "retry")


def test_link_for_reads_the_manifest() -> None:
    from sjscc.common.channels.coding import link_for

    code = {"kind": "ldpc", "crc": "CRC16", "k": 256, "n": 512, "modulation": "qpsk"}
    link = link_for({"channel_code": code}, channel="rayleigh", decisions="hard")
    assert (link.k, link.n, link.symbols, link.channel, link.decisions) == (256, 512, 256, "rayleigh", "hard")
    assert link.rate == pytest.approx(272 / 512)
    with pytest.raises(ValueError, match="no LDPC channel code"):
        link_for({"codec": "cnn-q4"})
    with pytest.raises(ValueError, match="must give k, n and modulation"):
        link_for({"channel_code": {"kind": "ldpc", "k": 256}})


def test_shipped_sscc_bundle_names_its_code() -> None:
    from pathlib import Path

    from sjscc.common.bundle import load_bundle
    from sjscc.common.channels.coding import link_for

    bundle = load_bundle(Path(__file__).resolve().parents[2] / "bundles" / "sscc-cnn-q4-ldpc")
    link = link_for(bundle.manifest)
    assert bundle.manifest["codec"] == "cnn-q4" and bundle.payload_shape == [4, 4, 4, 4]
    assert (link.k, link.n, link.symbols, link.modulation) == (256, 512, 256, "qpsk")
