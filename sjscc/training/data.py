"""CIFAR-10/100 from a torchvision-style data root, read straight from the pickles.

The pickles are read directly (not through ``torchvision.datasets.CIFAR10``) so re-encoded copies whose
md5 differs from the official archive load too. Images stay in memory as uint8 ``[N, 3, 32, 32]``;
augmentation (random crop with 4 pixels of zero padding, horizontal flip) is applied to whole batches with
tensor indexing, which on 2 CPU cores is far cheaper than per-image PIL transforms in worker processes.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels",
                "batches.meta", b"label_names"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", "meta", b"fine_label_names"),
}


@dataclass
class ImageSet:
    """uint8 images ``[N, 3, H, W]``, int64 labels ``[N]``, and the class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[indices], self.labels[indices], self.classes)


class DataError(ValueError):
    """A data root that does not hold the expected CIFAR layout."""


def _read_pickle(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            data = pickle.load(handle, encoding="bytes")  # local data set files in the standard layout
    except FileNotFoundError:
        raise DataError(f"missing {path}: the data root must contain the standard CIFAR pickle layout") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DataError(f"{path} is not a CIFAR pickle: {error}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is not a CIFAR pickle: expected a dict, got {type(data).__name__}")
    return data


def load_cifar(root: str | Path, dataset: str = "cifar10", train: bool = True, download: bool = False) -> ImageSet:
    """Load the train or test split of ``dataset`` from ``root`` (the folder that contains the batches)."""
    if dataset not in LAYOUTS:
        raise DataError(f"unknown dataset {dataset!r}; known: {sorted(LAYOUTS)}")
    folder, train_files, test_files, label_key, meta_file, names_key = LAYOUTS[dataset]
    base = Path(root) / folder
    if download and not base.exists():
        import torchvision

        cls = torchvision.datasets.CIFAR10 if dataset == "cifar10" else torchvision.datasets.CIFAR100
        cls(str(root), train=train, download=True)
    if not base.is_dir():
        raise DataError(f"{base} not found: --data-root must be the folder that contains {folder}/")
    images, labels = [], []
    for name in train_files if train else test_files:
        batch = _read_pickle(base / name)
        if b"data" not in batch or label_key not in batch:
            raise DataError(f"{base / name} lacks {b'data'!r} or {label_key!r}: not a {dataset} pickle")
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(int(v) for v in batch[label_key])
    meta = _read_pickle(base / meta_file)
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key]]
    return ImageSet(torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64), classes)


def train_val_split(data: ImageSet, val_fraction: float = 0.1, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Seeded, stratified split: ``val_fraction`` of every class goes to validation.

    Both parts keep the original order (sorted indices), so ``subset(arange(n))`` of either is a stable
    prefix: training and ``sjscc eval --split val --limit n`` then see the same images.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    generator = torch.Generator().manual_seed(seed)
    val_parts, train_parts = [], []
    for label in range(len(data.classes)):
        members = torch.nonzero(data.labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_val = round(len(members) * val_fraction)
        val_parts.append(members[:n_val])
        train_parts.append(members[n_val:])
    train_idx, val_idx = torch.cat(train_parts).sort().values, torch.cat(val_parts).sort().values
    return data.subset(train_idx), data.subset(val_idx)


def load_split(root: str | Path, dataset: str, split: str, val_fraction: float = 0.1, seed: int = 0,
               download: bool = False) -> ImageSet:
    """``split`` is ``train`` (training minus validation), ``val`` or ``test``."""
    if split == "test":
        return load_cifar(root, dataset, train=False, download=download)
    if split not in ("train", "val"):
        raise DataError(f"unknown split {split!r}; use train, val or test")
    train, val = train_val_split(load_cifar(root, dataset, train=True, download=download), val_fraction, seed)
    return train if split == "train" else val


def first(data: ImageSet, limit: int) -> ImageSet:
    """The first ``limit`` images (all when ``limit`` is 0): smoke runs and quick evaluations."""
    if limit < 0:
        raise DataError(f"limit must be >= 0, got {limit}")
    return data.subset(torch.arange(min(limit, len(data)))) if limit else data


class Normalize:
    """uint8 ``[B,3,H,W]`` -> float, scaled to [0,1], then ``(x - mean) / std`` per channel."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


def augment(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip on a uint8 batch ``[B, C, H, W]``."""
    batch, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    rows = (dy[:, None] + torch.arange(height))[:, :, None]
    cols = (dx[:, None] + torch.arange(width))[:, None, :]
    flip = torch.rand(batch, generator=generator) < 0.5
    cols = torch.where(flip[:, None, None], cols.flip(-1), cols)
    index = torch.arange(batch)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2).contiguous()


def batches(
    n: int, batch_size: int, generator: torch.Generator | None = None, drop_last: bool = False
) -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)``, shuffled when a generator is given."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - (n % batch_size) if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]
