"""Shared fixtures: a tiny model spec and bundle (random weights, for plumbing tests only) and a synthetic
CIFAR data root in the standard pickle layout."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from sjscc.common.backbones import BackboneConfig
from sjscc.common.codecs import CodecConfig
from sjscc.common.model import ModelSpec, build_split_model

torch.set_num_threads(1)


def tiny_spec(codec: str = "snn", timesteps: int = 4, neuron: str = "ihf") -> ModelSpec:
    """ResNet-20 at width 8 split at layer3.0 -> F = (32, 8, 8); codec 32 -> 8 -> 2, i.e. 128 bits per step."""
    return ModelSpec(
        backbone=BackboneConfig(name="cifar_resnet20", split="layer3.0", num_classes=10, kwargs={"width": 8}),
        codec=codec,
        codec_config=CodecConfig(in_channels=32, c1=8, c2=2, timesteps=timesteps, reconstructor_neuron=neuron),
    )


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory):
    """An SNN bundle with random weights: exercises the bundle format and the services, claims no accuracy."""
    from sjscc.common.bundle import save_bundle

    torch.manual_seed(0)
    spec = tiny_spec()
    model = build_split_model(spec).eval()
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    return save_bundle(model, spec, tmp_path_factory.mktemp("bundle") / "tiny", classes,
                       train_channel={"kind": "bsc", "p": 0.15}, metrics={"note": "random weights, untrained"})


def write_synthetic_cifar(root: Path, dataset: str = "cifar10", n_train: int = 200, n_test: int = 50,
                          seed: int = 0) -> Path:
    """Write a small data set in the standard CIFAR pickle layout; images carry a class-dependent colour so a
    model can learn something from them."""
    rng = np.random.default_rng(seed)
    n_classes = 10 if dataset == "cifar10" else 100

    def batch(n: int) -> tuple[np.ndarray, list[int]]:
        labels = rng.integers(0, n_classes, n)
        base = (labels[:, None] * 97 % 256).astype(np.float64)
        data = np.clip(base + rng.normal(0, 30, (n, 3072)), 0, 255).astype(np.uint8)
        return data, labels.tolist()

    def dump(path: Path, obj: dict) -> None:
        with path.open("wb") as handle:
            pickle.dump(obj, handle)

    if dataset == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        per = n_train // 5
        for i in range(1, 6):
            data, labels = batch(per)
            dump(folder / f"data_batch_{i}", {b"data": data, b"labels": labels, b"batch_label": b"train"})
        data, labels = batch(n_test)
        dump(folder / "test_batch", {b"data": data, b"labels": labels, b"batch_label": b"test"})
        dump(folder / "batches.meta", {b"label_names": [f"class{i}".encode() for i in range(10)]})
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True, exist_ok=True)
        for name, n in (("train", n_train), ("test", n_test)):
            data, labels = batch(n)
            dump(folder / name, {b"data": data, b"fine_labels": labels, b"coarse_labels": [0] * n})
        dump(folder / "meta", {b"fine_label_names": [f"class{i}".encode() for i in range(100)]})
    return root


@pytest.fixture(scope="session")
def synthetic_cifar10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_cifar(tmp_path_factory.mktemp("data"), "cifar10")


@pytest.fixture(scope="session")
def synthetic_cifar100(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_cifar(tmp_path_factory.mktemp("data100"), "cifar100")
