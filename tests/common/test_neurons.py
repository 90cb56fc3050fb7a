"""IF, IHF and IHF-m against hand-computed membrane traces (SNN-SC Eq. 8, soft reset, V_th = 1, S = [m >= V_th])."""

from __future__ import annotations

import pytest
import torch

from sjscc.common.neurons import IF, IHF, MEMBRANE, SPIKE, IHFm, build_neuron

# Inputs chosen as binary fractions so every sum below is exact in float32.
CURRENT = [0.5, 0.75, 1.5, -0.25, 1.0, 0.0, 2.75, 0.25]
# Hand computation, m_0 = 0:
#   t  m_{t-1} + I_t          S_t   M_t = m_t - S_t
#   1  0    + 0.5   = 0.5      0    0.5
#   2  0.5  + 0.75  = 1.25     1    0.25
#   3  0.25 + 1.5   = 1.75     1    0.75
#   4  0.75 - 0.25  = 0.5      0    0.5
#   5  0.5  + 1.0   = 1.5      1    0.5
#   6  0.5  + 0.0   = 0.5      0    0.5
#   7  0.5  + 2.75  = 3.25     1    2.25   (one spike per step: soft reset removes only V_th)
#   8  2.25 + 0.25  = 2.5      1    1.5
EXPECTED_S = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0]
EXPECTED_M = [0.5, 0.25, 0.75, 0.5, 0.5, 0.5, 2.25, 1.5]


def _sequence(batch_shape: tuple[int, ...] = (1,)) -> torch.Tensor:
    """``[T, *batch_shape]`` with the same trace in every element."""
    return torch.tensor(CURRENT).view(-1, *([1] * len(batch_shape))).expand(-1, *batch_shape).clone()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_ihf_spikes_and_post_reset_membrane(mode: str) -> None:
    neuron = getattr(IHF(), mode)()
    spikes, membrane = neuron(_sequence((2, 3)))
    assert spikes.shape == membrane.shape == (8, 2, 3)
    for b in range(2):
        for c in range(3):
            assert spikes[:, b, c].tolist() == EXPECTED_S
            assert membrane[:, b, c].tolist() == EXPECTED_M


def test_if_outputs_spikes_only() -> None:
    outputs = IF()(_sequence())
    assert len(outputs) == 1
    assert outputs[0].flatten().tolist() == EXPECTED_S


def test_ihf_m_outputs_membrane_only() -> None:
    outputs = IHFm()(_sequence())
    assert len(outputs) == 1
    assert outputs[0].flatten().tolist() == EXPECTED_M


def test_threshold_is_inclusive_and_reset_is_soft() -> None:
    # m = 1.0 exactly fires (DESIGN.md: S = [m >= V_th]) and leaves 0; then 0.5, then 1.0 again fires.
    spikes, membrane = IHF()(torch.tensor([[1.0], [0.5], [0.5]]))
    assert spikes.flatten().tolist() == [1.0, 0.0, 1.0]
    assert membrane.flatten().tolist() == [0.0, 0.5, 0.0]


def test_other_threshold() -> None:
    # V_th = 2: m = 1.5 (no spike); 1.5 + 1.5 = 3.0 -> S = 1, M = 1.0; 1.0 + 1.25 = 2.25 -> S = 1, M = 0.25
    spikes, membrane = IHF(v_threshold=2.0)(torch.tensor([[1.5], [1.5], [1.25]]))
    assert spikes.flatten().tolist() == [0.0, 1.0, 1.0]
    assert membrane.flatten().tolist() == [1.5, 1.0, 0.25]


def test_state_does_not_leak_between_calls() -> None:
    neuron = IHF()
    neuron(torch.full((4, 1), 0.9))  # leaves a charged membrane if state leaked
    spikes, membrane = neuron(_sequence())
    assert spikes.flatten().tolist() == EXPECTED_S
    assert membrane.flatten().tolist() == EXPECTED_M


def test_surrogate_gradient_reaches_input_through_spikes_and_membrane() -> None:
    current = _sequence().requires_grad_(True)
    (spikes,) = IF()(current)
    spikes.sum().backward()
    assert current.grad is not None and current.grad.abs().sum() > 0  # the Heaviside alone has zero gradient

    current = _sequence().requires_grad_(True)
    (membrane,) = IHFm()(current)
    membrane[-1].sum().backward()
    assert current.grad is not None and torch.isfinite(current.grad).all() and current.grad.abs().sum() > 0


def test_outputs_and_registry() -> None:
    assert IHF.outputs == (SPIKE, MEMBRANE)
    assert IF.outputs == (SPIKE,)
    assert IHFm.outputs == (MEMBRANE,)
    assert isinstance(build_neuron("ihf-m"), IHFm)
    with pytest.raises(ValueError, match=r"unknown neuron 'lif'"):
        build_neuron("lif")
