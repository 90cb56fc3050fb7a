"""CIFAR loading from the pickle layout, the seeded stratified validation split, augmentation, clear errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from conftest import write_synthetic_cifar

from sjscc.training.data import (
    DataError,
    ImageSet,
    Normalize,
    augment,
    batches,
    first,
    load_cifar,
    load_split,
    train_val_split,
)


def test_cifar10_loads_train_and_test(synthetic_cifar10: Path) -> None:
    train = load_cifar(synthetic_cifar10, "cifar10", train=True)
    test = load_cifar(synthetic_cifar10, "cifar10", train=False)
    assert train.images.shape == (200, 3, 32, 32) and train.images.dtype == torch.uint8
    assert len(test) == 50 and test.labels.dtype == torch.int64
    assert train.classes == [f"class{i}" for i in range(10)]
    assert int(train.labels.min()) >= 0 and int(train.labels.max()) <= 9


def test_cifar100_loads_fine_labels(synthetic_cifar100: Path) -> None:
    train = load_cifar(synthetic_cifar100, "cifar100", train=True)
    test = load_cifar(synthetic_cifar100, "cifar100", train=False)
    assert len(train.classes) == 100 and train.classes[42] == "class42"
    assert len(train) == 200 and len(test) == 50
    raw = pickle.loads((synthetic_cifar100 / "cifar-100-python" / "train").read_bytes())
    assert train.labels.tolist() == list(raw[b"fine_labels"])
    first_row = torch.tensor(list(raw[b"data"][0]), dtype=torch.uint8)
    assert torch.equal(train.images[0].flatten(), first_row)  # CHW rows, as in the official files


def test_val_split_is_stratified_seeded_and_disjoint(tmp_path: Path) -> None:
    root = write_synthetic_cifar(tmp_path, "cifar10", n_train=1000, n_test=10)
    data = load_cifar(root, "cifar10")
    train, val = train_val_split(data, 0.2, seed=3)
    per_class = torch.bincount(data.labels, minlength=10)
    val_per_class = torch.bincount(val.labels, minlength=10)
    assert val_per_class.tolist() == [round(int(n) * 0.2) for n in per_class]
    assert len(train) + len(val) == len(data)
    # disjoint: every image index lands in exactly one part (images are distinct with overwhelming probability)
    keys = lambda s: {bytes(img.flatten().tolist()) for img in s.images}  # noqa: E731
    assert not keys(train) & keys(val)
    again_train, again_val = train_val_split(data, 0.2, seed=3)
    assert torch.equal(again_val.images, val.images) and torch.equal(again_train.labels, train.labels)
    _, other = train_val_split(data, 0.2, seed=4)
    assert not torch.equal(other.images, val.images)
    assert torch.equal(load_split(root, "cifar10", "val", 0.2, 3).images, val.images)


def test_first_and_batches() -> None:
    data = ImageSet(torch.zeros(10, 3, 32, 32, dtype=torch.uint8), torch.arange(10), ["a"])
    assert len(first(data, 4)) == 4 and len(first(data, 0)) == 10 and len(first(data, 99)) == 10
    assert [len(b) for b in batches(10, 4)] == [4, 4, 2]
    assert [len(b) for b in batches(10, 4, drop_last=True)] == [4, 4]
    shuffled = torch.cat(list(batches(10, 3, torch.Generator().manual_seed(0))))
    assert sorted(shuffled.tolist()) == list(range(10)) and shuffled.tolist() != list(range(10))


def test_augment_crops_and_flips_deterministically() -> None:
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    out = augment(images, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(out, augment(images, torch.Generator().manual_seed(1)))
    flipped_only = augment(images, torch.Generator().manual_seed(2), padding=0)
    for original, seen in zip(images, flipped_only, strict=True):
        assert torch.equal(seen, original) or torch.equal(seen, original.flip(-1))
    assert not torch.equal(flipped_only, images)  # 16 fair coins: some image was flipped


def test_normalize() -> None:
    out = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8))
    assert torch.allclose(out, torch.full((1, 3, 2, 2), 2.0))


def test_clear_errors(tmp_path: Path, synthetic_cifar10: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        load_cifar(synthetic_cifar10, "mnist")
    with pytest.raises(DataError, match="contains cifar-10-batches-py"):
        load_cifar(tmp_path / "nowhere", "cifar10")
    with pytest.raises(DataError, match="cifar-100-python"):
        load_cifar(synthetic_cifar10, "cifar100")
    with pytest.raises(DataError, match="unknown split"):
        load_split(synthetic_cifar10, "cifar10", "holdout")
    with pytest.raises(DataError, match="val_fraction"):
        train_val_split(load_cifar(synthetic_cifar10), 1.0)
    broken = write_synthetic_cifar(tmp_path / "broken", "cifar10", n_train=20, n_test=5)
    (broken / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_3 is not a CIFAR pickle"):
        load_cifar(broken, "cifar10")
    (broken / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match="missing .*test_batch"):
        load_cifar(broken, "cifar10", train=False)
