"""Soft input for the codecs: decoders read hard bits exactly as before and probabilities as expectations."""

from __future__ import annotations

import pytest
import torch

from sjscc.common.channels import LinkSettings, build_channel
from sjscc.common.codecs import CodecConfig, build_codec
from sjscc.common.codecs.cnn import from_bit_planes

CONFIG = CodecConfig(in_channels=16, c1=8, c2=4, timesteps=4)


def _codec(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_codec(name, CONFIG).eval()


@pytest.mark.parametrize("name", ["snn", "snn-progressive", "cnn-q4", "cnn-q1"])
def test_every_codec_declares_bits_and_probabilities(name: str) -> None:
    assert _codec(name).received_input == ("bits", "probabilities")


@pytest.mark.parametrize("name", ["snn", "cnn-q4"])
def test_hard_link_output_decodes_bit_exactly_like_the_bits(name: str) -> None:
    """A hard radio link hands the decoder {0,1} floats: identical to decoding the same bits directly."""
    codec = _codec(name)
    feature = torch.rand(2, 16, 4, 4, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        bits = codec.encoder(feature)
        link = build_channel("awgn", link=LinkSettings(0.0, decisions="hard"))
        received = link(bits, 0.0, torch.Generator().manual_seed(2))
        assert set(received.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(codec.decoder(received), codec.decoder(received.clone().to(torch.uint8).float()))
        # and a noiseless soft posterior of exactly 0/1 is the hard path too
        assert torch.equal(codec.decoder(bits.clone()), codec.decoder(bits))


def test_cnn_reads_probabilities_as_the_expected_value() -> None:
    """The dequantiser on P(bit = 1) equals the mean of the dequantised value over independent bit draws."""
    probabilities = torch.rand(1, 4, 2, 3, 3, generator=torch.Generator().manual_seed(3))
    draws = (torch.rand(20000, 4, 2, 3, 3, generator=torch.Generator().manual_seed(4)) < probabilities).float()
    expected = from_bit_planes(draws).mean(0, keepdim=True)
    assert torch.allclose(from_bit_planes(probabilities), expected, atol=0.01)


def test_snn_reads_probabilities_as_the_expected_input_current() -> None:
    """The reconstructor's first Conv-BN (eval) is affine: on P(z = 1) it gives the mean current over draws."""
    codec = _codec("snn")
    block = codec.decoder.reconstructor.block1
    probabilities = torch.rand(3, 4, 4, 4, generator=torch.Generator().manual_seed(5))
    draws = (torch.rand(4000, 4, 4, 4, generator=torch.Generator().manual_seed(6)) < probabilities[0]).float()
    with torch.no_grad():
        assert torch.allclose(block(probabilities[:1]), block(draws).mean(0, keepdim=True), atol=0.05)


@pytest.mark.parametrize("name", ["snn", "cnn-q1"])
def test_soft_link_trains_end_to_end(name: str) -> None:
    """Soft decisions in training: probabilities reach the decoder, gradients reach the encoder (straight through)."""
    codec = _codec(name).train()
    link = build_channel("awgn", link=LinkSettings(2.0, decisions="soft"))
    out = codec(torch.rand(2, 16, 4, 4) * 3, link, 0.0, torch.Generator().manual_seed(0))
    assert ((out.received > 0) & (out.received < 1)).all()
    out.feature.sum().backward()
    first_conv = next(m for m in codec.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.weight.grad.abs().sum() > 0
