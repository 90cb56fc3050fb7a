"""A training seed makes a run deterministic end to end (initialization, shuffling, augmentation, channel
noise), a different seed changes it, and a step-2 run trains over the GE burst channel with an interleaver."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_training import tiny_config

from sjscc.common.bundle import load_bundle
from sjscc.training.config import ChannelConfig
from sjscc.training.steps import build_training_channel
from sjscc.training.trainer import WEIGHTS, train


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / WEIGHTS))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_seed_makes_runs_identical(synthetic_cifar10: Path, tmp_path: Path) -> None:
    ge = ChannelConfig(kind="ge", p=0.1, burst=4, interleave=3)
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        backbone = tmp_path / name / "backbone"
        train(tiny_config(synthetic_cifar10, backbone, 1, None, epochs=1, limit=64, seed=seed))
        codec = tmp_path / name / "codec"
        train(tiny_config(synthetic_cifar10, codec, 2, "snn", init=backbone, epochs=1, limit=64, seed=seed,
                          cache_features=False, channel=ge, export=tmp_path / name / "bundle"))
        runs[name] = (_weights(backbone), _weights(codec))
    assert _same(runs["a"][0], runs["b"][0]) and _same(runs["a"][1], runs["b"][1])
    assert not _same(runs["a"][0], runs["c"][0]) and not _same(runs["a"][1], runs["c"][1])
    manifest = load_bundle(tmp_path / "a" / "bundle").manifest
    assert manifest["train_channel"]["kind"] == "ge" and manifest["train_channel"]["burst"] == 4.0
    assert manifest["train_channel"]["interleave"] == 3
    assert manifest["metrics"]["eval_args"]["burst"] == 4.0


def test_ge_training_channel_refuses_an_impossible_p() -> None:
    with pytest.raises(ValueError, match=r"at most L/\(L\+1\) = 0.5"):
        build_training_channel(ChannelConfig(kind="ge", p=0.1, p_max=0.7, burst=1))
    channel = build_training_channel(ChannelConfig(kind="ge", p=0.1, p_max=0.4, burst=1))
    assert channel.name == "ge" and channel.burst == 1.0
