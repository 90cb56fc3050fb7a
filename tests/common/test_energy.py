"""Energy per image: SpikingJelly's counts on layers small enough to count by hand, and the split estimate."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sjscc.common.energy import EnergyModel, count_operations, estimate_energy


def _conv(c_in: int, c_out: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False).eval()


def test_real_input_costs_one_mac_per_weight_use() -> None:
    conv = _conv(2, 3, 3)
    # 3 output channels x 2 input channels x 9 taps x 16 output positions (zero padding counted as in SpikingJelly)
    count = count_operations(lambda: conv(torch.randn(1, 2, 4, 4)), images=1)
    assert (count.macs, count.accumulates) == (3 * 2 * 9 * 16, 0)
    linear = nn.Linear(4, 2)
    count = count_operations(lambda: linear(torch.randn(5, 4) + 3.0), images=5)
    assert (count.macs, count.accumulates) == (5 * 4 * 2, 0)


@pytest.mark.parametrize(("row", "col", "reached"), [(1, 1, 9), (0, 0, 4), (0, 2, 6)])
def test_binary_input_costs_one_accumulate_per_spike_and_reached_output(row: int, col: int, reached: int) -> None:
    """One spike in a 4x4 map under a 3x3 kernel reaches 9 outputs inside, 4 at a corner, 6 on an edge."""
    spikes = torch.zeros(1, 2, 4, 4)
    spikes[0, 0, row, col] = 1.0
    count = count_operations(lambda: _conv(2, 3, 3)(spikes), images=1)
    assert (count.macs, count.accumulates) == (0, 3 * reached)


def test_binary_linear_input() -> None:
    spikes = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    count = count_operations(lambda: nn.Linear(4, 2)(spikes), images=1)
    assert (count.macs, count.accumulates) == (0, 3 * 2)


class _Heaviside(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).float().unsqueeze(1)  # [B, T=1, c, h, w]


class _Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = _conv(1, 2, 1)

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        return self.conv(bits[:, 0])


class _TinySplit(nn.Module):
    """head 1x1 conv 3->2, encoder 1x1 conv 2->1 + threshold (T=1), decoder 1x1 conv 1->2 on bits, tail Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.head = _conv(3, 2, 1)
        self.codec = nn.Module()
        self.codec.encoder = nn.Sequential(_conv(2, 1, 1), _Heaviside())
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([0.5, 0.0, 0.0, 0.0, 0.5, 0.0]).view(2, 3, 1, 1))
            self.codec.encoder[0].weight.fill_(0.5)  # not {0, 1}: binary weights count as ACs
        self.codec.decoder = _Decoder()
        self.tail = nn.Sequential(nn.Flatten(), nn.Linear(8, 10))


def test_split_estimate_by_hand() -> None:
    # Image 1: channel sums 1+0 -> spikes where channel 0 + channel 1 > 0: 3 of 4 positions; image 2: none.
    images = torch.zeros(2, 3, 2, 2)
    images[0, 0] = torch.tensor([[1.0, 1.0], [1.0, -5.0]])
    model = _TinySplit()
    report = estimate_energy(model, [images], EnergyModel(pj_per_ac=1.0, pj_per_mac=10.0))
    assert report["images"] == 2
    device, edge = report["device"], report["edge"]
    # per image: head 3*2*4 = 24 MACs, encoder 2*1*4 = 8 MACs
    assert device["parts"]["head"] == {"macs": 24.0, "accumulates": 0.0, "energy_uj": pytest.approx(240e-6)}
    assert device["parts"]["encoder"]["macs"] == 8.0
    assert (device["macs"], device["accumulates"]) == (32.0, 0.0)
    assert device["energy_uj"] == pytest.approx(320e-6)
    # decoder: 3 spikes x 2 outputs over 2 images = 3 ACs per image; tail 8*10 = 80 MACs
    assert edge["parts"]["decoder"] == {"macs": 0.0, "accumulates": 3.0, "energy_uj": pytest.approx(3e-6)}
    assert edge["parts"]["tail"]["macs"] == 80.0
    assert edge["energy_uj"] == pytest.approx(803e-6)
    assert report["total_energy_uj"] == pytest.approx(1123e-6)
    assert report["constants"]["pj_per_mac"] == 10.0


def test_default_constants_are_horowitz_45nm() -> None:
    model = EnergyModel()
    assert (model.pj_per_ac, model.pj_per_mac) == (0.9, 4.6)
    assert model.picojoules(macs=10, accumulates=100) == pytest.approx(136.0)
    assert "ISSCC 2014" in model.source


def test_no_images_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        estimate_energy(_TinySplit(), [])


def test_bench_energy_of_a_bundle_on_real_photos(tiny_bundle) -> None:
    from sjscc.common.energy import format_energy
    from sjscc.tools.bench import bundle_energy

    energy = bundle_energy(str(tiny_bundle.path))
    assert energy["images"] == 5 and energy["inputs"] == "scikit-image sample photos"
    assert energy["device"]["macs"] > 0 and energy["edge"]["parts"]["reconstructor"]["accumulates"] > 0
    text = format_energy(energy)
    assert text.startswith("  energy per image over 5 images") and "device" in text and "edge" in text
