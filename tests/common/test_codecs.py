"""SNN and CNN codecs: the "first conv once" shortcut, gradients, converter order, shapes, quantizer, registry."""

from __future__ import annotations

import copy

import pytest
import torch

from sjscc.common.bitstream import payload_bits
from sjscc.common.channels import BinaryErasureChannel, BinarySymmetricChannel
from sjscc.common.codecs import CodecConfig, build_codec, parse_codec_name
from sjscc.common.codecs.cnn import dequantize, from_bit_planes, quantize, to_bit_planes
from sjscc.common.codecs.snn import Converter, SNNEncoder
from sjscc.common.firing_rate import firing_rate, firing_rate_penalty

TINY = CodecConfig(in_channels=16, c1=8, c2=4, timesteps=4)


def _feature(batch: int = 3, c: int = 16, hw: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, c, hw, hw, generator=torch.Generator().manual_seed(seed)) * 2


# --- SNN encoder --------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["train", "eval"])
def test_first_conv_once_equals_naive_repeat(mode: str) -> None:
    torch.manual_seed(0)
    encoder = SNNEncoder(16, 8, 4, timesteps=6)
    reference = copy.deepcopy(encoder)
    getattr(encoder, mode)()
    getattr(reference, mode)()
    feature = _feature()
    fast, naive = encoder(feature), reference.forward_naive(feature)
    assert fast.shape == (3, 6, 4, 4, 4)
    assert torch.equal(fast, naive)
    assert 0 < fast.mean() < 1  # not trivially all zeros or all ones
    assert set(fast.unique().tolist()) <= {0.0, 1.0}


def test_bits_are_batch_first_time_second() -> None:
    # Sample b of a batch must give the same bits as sample b alone (eval: no batch statistics).
    torch.manual_seed(1)
    encoder = SNNEncoder(16, 8, 4, timesteps=5).eval()
    feature = _feature(batch=2)
    assert torch.equal(encoder(feature)[1], encoder(feature[1:2])[0])


# --- gradients ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("neuron", ["if", "ihf-m", "ihf"])
def test_gradient_reaches_encoder_weights(neuron: str) -> None:
    """Through IF spikes (surrogate), through M alone, and both; across a BSC (straight-through)."""
    torch.manual_seed(0)
    config = CodecConfig(in_channels=16, c1=8, c2=4, timesteps=4, reconstructor_neuron=neuron)
    codec = build_codec("snn", config).train()
    out = codec(_feature(), BinarySymmetricChannel(), 0.2, torch.Generator().manual_seed(0))
    out.feature.square().sum().backward()
    for weight in (codec.encoder.block1[0].weight, codec.encoder.block2[0].weight):
        assert weight.grad is not None and torch.isfinite(weight.grad).all()
        assert weight.grad.abs().sum() > 0


def test_firing_rate_penalty_gradient_reaches_encoder() -> None:
    torch.manual_seed(0)
    encoder = SNNEncoder(16, 8, 4, timesteps=4).train()
    firing_rate_penalty(encoder(_feature())).backward()
    assert encoder.block1[0].weight.grad.abs().sum() > 0


def test_firing_rate_penalty_hand_value() -> None:
    spikes = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])  # 3 of 8 fire
    assert firing_rate(spikes).item() == 0.375
    assert firing_rate_penalty(spikes).item() == 0.015625  # (0.5 - 0.375)^2
    assert firing_rate_penalty(spikes, alpha=0.25).item() == 0.015625  # (0.25 - 0.375)^2
    assert firing_rate_penalty(torch.ones(4), alpha=0.5).item() == 0.25


# --- converter ----------------------------------------------------------------------------------------

def test_converter_input_order_is_s1_m1_s2_m2() -> None:
    T, B, c, h, w = 3, 2, 5, 2, 2
    gen = torch.Generator().manual_seed(0)
    spikes = (torch.rand(T, B, c, h, w, generator=gen) < 0.5).float()
    membrane = torch.randn(T, B, c, h, w, generator=gen)
    converter = Converter(T, ("spike", "mem"))
    assert converter.linear.in_features == 2 * T
    expected_order = [spikes[0], membrane[0], spikes[1], membrane[1], spikes[2], membrane[2]]
    with torch.no_grad():
        converter.linear.bias.zero_()
        for j, expected in enumerate(expected_order):
            converter.linear.weight.zero_()
            converter.linear.weight[0, j] = 1.0
            out = converter((spikes, membrane))
            assert out.shape == (B, c, h, w)
            assert torch.allclose(out, torch.sigmoid(expected), atol=1e-6, rtol=0), f"input {j} is not S/M as expected"


def test_converter_weighted_sum_and_single_output_width() -> None:
    T = 2
    spikes = torch.tensor([1.0, 0.0]).view(T, 1, 1, 1, 1)
    membrane = torch.tensor([0.25, 0.75]).view(T, 1, 1, 1, 1)
    converter = Converter(T)
    with torch.no_grad():
        converter.linear.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
        converter.linear.bias.fill_(-1.0)
    # 1*1 + 2*0.25 + 3*0 + 4*0.75 - 1 = 3.5
    assert converter((spikes, membrane)).item() == pytest.approx(torch.sigmoid(torch.tensor(3.5)).item(), abs=1e-7)
    assert Converter(8, ("spike",)).linear.in_features == 8
    assert Converter(8, ("mem",)).linear.in_features == 8


@pytest.mark.parametrize(("neuron", "width"), [("ihf", 8), ("if", 4), ("ihf-m", 4)])
def test_converter_width_follows_reconstructor_neuron(neuron: str, width: int) -> None:
    codec = build_codec("snn", CodecConfig(16, 8, 4, timesteps=4, reconstructor_neuron=neuron))
    assert codec.decoder.converter.linear.in_features == width


# --- shapes -------------------------------------------------------------------------------------------

def test_paper_resnet50_codec_shapes() -> None:
    """(2048,4,4) -> bits (B, T, 32, 4, 4) = 512 bits per step -> (2048, 4, 4)."""
    torch.manual_seed(0)
    codec = build_codec("snn", CodecConfig()).eval()  # defaults are the paper's ResNet50 geometry
    with torch.no_grad():
        out = codec(torch.randn(2, 2048, 4, 4))
    assert out.bits.shape == (2, 8, 32, 4, 4)
    assert out.feature.shape == (2, 2048, 4, 4)
    assert payload_bits(out.bits.shape[1:]) == 4096
    assert codec.decoder.converter.linear.in_features == 16  # 2T


def test_paper_vgg16_codec_shapes() -> None:
    codec = build_codec("snn", CodecConfig(in_channels=512, c1=64, c2=8, timesteps=8)).eval()
    with torch.no_grad():
        out = codec(torch.randn(1, 512, 2, 2))
    assert out.bits.shape == (1, 8, 8, 2, 2)
    assert out.feature.shape == (1, 512, 2, 2)


def test_codec_forward_reports_firing_rate_of_sent_bits() -> None:
    codec = build_codec("snn", TINY).eval()
    out = codec(_feature(), BinaryErasureChannel("zero"), 0.5, torch.Generator().manual_seed(0))
    assert out.firing_rate.item() == pytest.approx(out.bits.mean().item())
    assert out.received.sum() <= out.bits.sum()  # zero-fill erasures only remove ones


# --- CNN baseline and quantizer ------------------------------------------------------------------------

@pytest.mark.parametrize("n_bits", [1, 2, 4, 8])
def test_quantizer_error_bound(n_bits: int) -> None:
    x = torch.rand(100_000, generator=torch.Generator().manual_seed(n_bits))
    x[:3] = torch.tensor([0.0, 1.0, 0.5])
    error = (dequantize(quantize(x, n_bits), n_bits) - x).abs().max().item()
    assert error <= 1 / (2 * (2**n_bits - 1)) + 1e-7


@pytest.mark.parametrize("n_bits", [1, 3, 8])
def test_bit_planes_reconstruct_quantized_value(n_bits: int) -> None:
    x = torch.rand(4, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    planes = to_bit_planes(x, n_bits)
    assert planes.shape == (4, n_bits, 3, 2, 2)
    assert set(planes.unique().tolist()) <= {0.0, 1.0}
    levels = torch.round(x * (2**n_bits - 1)).to(torch.int64)
    place = 2 ** torch.arange(n_bits - 1, -1, -1).view(1, -1, 1, 1, 1)
    assert torch.equal((planes.to(torch.int64) * place).sum(1), levels)  # MSB first, exact integers
    assert torch.allclose(from_bit_planes(planes), dequantize(levels.float(), n_bits), atol=1e-6, rtol=0)


def test_bit_planes_msb_first() -> None:
    # 4/7 with 3 bits is level 4 = 0b100
    assert to_bit_planes(torch.full((1, 1, 1, 1), 4 / 7), 3).flatten().tolist() == [1.0, 0.0, 0.0]


def test_quantizer_straight_through_gradient_is_identity() -> None:
    x = torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    from_bit_planes(to_bit_planes(x, 4)).sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x), atol=1e-6, rtol=0)
    x.grad = None
    dequantize(quantize(x, 4), 4).sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("n_bits", [4, 8])
def test_cnn_q_n_sends_as_many_bits_as_snn_with_t_n(n_bits: int) -> None:
    cnn = build_codec(f"cnn-q{n_bits}", TINY).eval()  # TINY has T = 4; cnn-q8 must override it
    snn = build_codec("snn", CodecConfig(16, 8, 4, timesteps=n_bits)).eval()
    with torch.no_grad():
        cnn_bits, snn_bits = cnn.encoder(_feature()), snn.encoder(_feature())
    assert cnn.timesteps == n_bits and cnn.name == f"cnn-q{n_bits}"
    assert cnn_bits.shape == snn_bits.shape == (3, n_bits, 4, 4, 4)
    assert payload_bits(cnn_bits.shape[1:]) == payload_bits(snn_bits.shape[1:]) == n_bits * 4 * 4 * 4
    with torch.no_grad():
        assert cnn(_feature()).feature.shape == (3, 16, 4, 4)


def test_cnn_gradient_reaches_encoder_through_channel() -> None:
    codec = build_codec("cnn-q4", TINY).train()
    out = codec(_feature(), BinarySymmetricChannel(), 0.1, torch.Generator().manual_seed(0))
    out.feature.sum().backward()
    assert codec.encoder.layers[0].weight.grad.abs().sum() > 0


# --- registry -----------------------------------------------------------------------------------------

def test_parse_codec_name() -> None:
    assert parse_codec_name("snn") == ("snn", None)
    assert parse_codec_name("cnn-q8") == ("cnn", 8)
    assert parse_codec_name("cnn-q16") == ("cnn", 16)


@pytest.mark.parametrize("name", ["SNN", "cnn", "cnn-q", "cnn-8", "snn-q8", "jpeg", ""])
def test_unknown_codec_name(name: str) -> None:
    with pytest.raises(ValueError, match="unknown codec"):
        build_codec(name, TINY)


@pytest.mark.parametrize("name", ["cnn-q0", "cnn-q17", "cnn-q64"])
def test_cnn_bit_count_out_of_range(name: str) -> None:
    with pytest.raises(ValueError, match="1 to 16 bits"):
        parse_codec_name(name)


def test_unknown_reconstructor_neuron() -> None:
    with pytest.raises(ValueError, match="unknown neuron 'relu'"):
        build_codec("snn", CodecConfig(16, 8, 4, reconstructor_neuron="relu"))
