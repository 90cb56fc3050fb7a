"""The three training steps as data (sjscc.training.steps): what each freezes and trains, and refusals."""

from __future__ import annotations

import pytest
from torch import nn

from sjscc.training.config import TrainConfig
from sjscc.training.steps import STEPS, training_step


class Parts(nn.Module):
    """A stand-in with the split model's three part names."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
        self.codec = nn.Linear(2, 2)
        self.tail = nn.Sequential(nn.BatchNorm1d(2), nn.Linear(2, 2))


def trained(step: int, freeze_head: bool = False) -> tuple[set[str], set[str]]:
    """(parts with trainable parameters, parts in training mode) after the step's set-up."""
    spec, model = training_step(step), Parts()
    frozen = spec.frozen_parts(TrainConfig(step=step, freeze_head=freeze_head))
    spec.set_trainable(model, frozen)
    spec.train_mode(model, frozen)
    parts = {name: getattr(model, name) for name in ("head", "codec", "tail")}
    return ({n for n, m in parts.items() if all(p.requires_grad for p in m.parameters())},
            {n for n, m in parts.items() if m.training})


@pytest.mark.parametrize(("step", "freeze_head", "expected"), [
    (1, False, {"head", "codec", "tail"}),
    (1, True, {"head", "codec", "tail"}),  # freeze_head is a step-3 setting
    (2, False, {"codec"}),
    (2, True, {"codec"}),
    (3, False, {"head", "codec", "tail"}),
    (3, True, {"codec", "tail"}),
])
def test_each_step_trains_what_the_paper_says(step: int, freeze_head: bool, expected: set[str]) -> None:
    assert trained(step, freeze_head) == (expected, expected)


def test_what_each_step_needs() -> None:
    assert [s.number for s in STEPS.values()] == [1, 2, 3]
    assert [(s.has_codec, s.needs_init, s.noisy, s.regularized) for s in STEPS.values()] == [
        (False, False, False, False), (True, True, True, True), (True, True, True, True)]
    assert STEPS[2].init_parts == ("head", "tail") and STEPS[3].init_parts is None
    assert STEPS[3].init_requires_codec and not STEPS[2].init_requires_codec
    assert (STEPS[2].paper_lr, STEPS[3].paper_lr) == (1e-4, 1e-5)


@pytest.mark.parametrize("number", [0, 4, "2"])
def test_unknown_steps_are_refused(number: object) -> None:
    with pytest.raises(ValueError, match=r"unknown training step .*use 1 \(backbone\), 2 \(codec\) or 3 \(joint\)"):
        training_step(number)  # type: ignore[arg-type]
