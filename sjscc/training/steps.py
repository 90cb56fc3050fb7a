"""The three training steps of SNN-SC (Sec. III-D) as data: what each freezes, loads, corrupts and penalises.

1. the backbone alone with cross-entropy;
2. the codec with the backbone frozen (head and tail in eval mode, so BN keeps its running statistics):
   ``CE + (alpha - rate)^2`` for the SNN, CE alone for the CNN baseline;
3. everything jointly at a lower learning rate, same loss (``freeze_head`` keeps the device head frozen).

The learning rate, schedule and epochs of a step live in its config file (``configs/*-step<N>.yaml``); the paper's
values are recorded here for reference only. The channel a step trains through is one object built by
:func:`sjscc.common.channels.build_channel` (see :func:`build_training_channel`): a step only says whether it has one.
:class:`sjscc.training.trainer.Trainer` reads a :class:`TrainingStep` and holds no per-step branches.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from sjscc.common.channels import (
    LINK_KINDS,
    LinkSettings,
    NoiselessChannel,
    build_channel,
    gilbert_elliott_transitions,
)
from sjscc.training.config import ChannelConfig, TrainConfig


@dataclass(frozen=True)
class TrainingStep:
    """One step of the strategy. Model parts are named by their state-dict prefix: ``head``, ``codec``, ``tail``."""

    number: int
    summary: str
    has_codec: bool
    """Whether the model carries a codec (step 1 trains the backbone alone)."""
    frozen: tuple[str, ...]
    """Parts that keep their weights and stay in eval mode."""
    honours_freeze_head: bool
    """Whether ``TrainConfig.freeze_head`` adds the head to ``frozen``."""
    needs_init: bool
    """Whether the run must start from the previous step's weights (``init`` or ``init_bundle``)."""
    init_parts: tuple[str, ...] | None
    """Parts read from ``init`` (None: every tensor that fits)."""
    init_requires_codec: bool
    """Whether ``init`` must hold a trained codec (step 3 continues step 2)."""
    noisy: bool
    """Whether the batches pass through the training channel (straight-through in the backward pass)."""
    regularized: bool
    """Whether the SNN's firing-rate term ``(alpha - rate)^2`` joins the cross-entropy."""
    paper_lr: float | None
    """The papers' learning rate for this step (for reference; the config file sets the one used)."""

    def frozen_parts(self, config: TrainConfig) -> tuple[str, ...]:
        """The parts frozen in this run: the step's own, plus the head when ``freeze_head`` applies."""
        if self.honours_freeze_head and config.freeze_head and "head" not in self.frozen:
            return ("head", *self.frozen)
        return self.frozen

    def set_trainable(self, model: nn.Module, frozen: tuple[str, ...]) -> None:
        """``requires_grad`` off for the frozen parts' parameters, on for the rest."""
        prefixes = tuple(f"{part}." for part in frozen)
        for name, param in model.named_parameters():
            param.requires_grad = not name.startswith(prefixes)

    def train_mode(self, model: nn.Module, frozen: tuple[str, ...]) -> None:
        """Training mode, except the frozen parts, which keep their BN running statistics."""
        model.train()
        for part in frozen:
            getattr(model, part).eval()


STEPS: dict[int, TrainingStep] = {
    1: TrainingStep(1, "backbone with cross-entropy", has_codec=False, frozen=(), honours_freeze_head=False,
                    needs_init=False, init_parts=None, init_requires_codec=False, noisy=False, regularized=False,
                    paper_lr=None),
    2: TrainingStep(2, "codec with the backbone frozen", has_codec=True, frozen=("head", "tail"),
                    honours_freeze_head=False, needs_init=True, init_parts=("head", "tail"),
                    init_requires_codec=False, noisy=True, regularized=True, paper_lr=1e-4),
    3: TrainingStep(3, "everything jointly", has_codec=True, frozen=(), honours_freeze_head=True, needs_init=True,
                    init_parts=None, init_requires_codec=True, noisy=True, regularized=True, paper_lr=1e-5),
}


def training_step(number: int) -> TrainingStep:
    """The step of a config's ``step`` field; anything but 1, 2, 3 is refused with the choices."""
    try:
        return STEPS[number]
    except (KeyError, TypeError):
        raise ValueError(f"unknown training step {number!r}: use 1 (backbone), 2 (codec) or 3 (joint)") from None


def build_training_channel(channel: ChannelConfig) -> NoiselessChannel:
    """The channel of a config, every p it may draw checked first (GE refuses p above L/(L+1))."""
    if channel.kind in LINK_KINDS:
        return build_channel(channel.kind, link=link_settings(channel))
    if channel.kind == "ge":
        for p in (channel.p, channel.p if channel.p_max is None else channel.p_max):
            gilbert_elliott_transitions(p, channel.burst)
    return build_channel(channel.kind, channel.erasure_policy, channel.burst, channel.interleave)


def link_settings(channel: ChannelConfig) -> LinkSettings:
    """A radio link's :class:`LinkSettings` from a config's channel section (checked there)."""
    return LinkSettings(snr_db=channel.snr_db, modulation=channel.modulation, coherence=channel.coherence,
                        decisions=channel.decisions, soft_bits=channel.soft_bits, snr_db_max=channel.snr_db_max)

