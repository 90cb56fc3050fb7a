"""Model bundles: ``manifest.json`` + ``device.safetensors`` + ``edge.safetensors`` (never a pickle).

``model_id`` is a content hash: SHA-256 over the manifest's architecture fields and both weight files, so
two processes agree on a model exactly when they hold the same weights for the same architecture. Loading
re-hashes every file and refuses a bundle whose files are missing or altered.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sjscc.common import bitstream
from sjscc.common.codecs import is_progressive
from sjscc.common.config import ConfigError
from sjscc.common.model import ModelSpec, SplitModel, build_split_model

FORMAT = "sjscc-bundle/1"
DEVICE_FILE = "device.safetensors"
EDGE_FILE = "edge.safetensors"
MANIFEST = "manifest.json"
HALVES = {"device": DEVICE_FILE, "edge": EDGE_FILE}
# Manifest fields that describe the model itself and therefore enter the model id.
IDENTITY_FIELDS = ("format", "backbone", "split", "codec", "timesteps", "latent_shape", "feature_shape", "classes",
                   "spec", "files")


class BundleError(ValueError):
    """A bundle folder that is missing, incomplete, altered or inconsistent."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def compute_model_id(manifest: dict[str, Any]) -> str:
    identity = {key: manifest.get(key) for key in IDENTITY_FIELDS}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Bundle:
    path: Path
    manifest: dict[str, Any]
    spec: ModelSpec

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def latent_shape(self) -> list[int]:
        return list(self.manifest["latent_shape"])

    @property
    def timesteps(self) -> int:
        return int(self.manifest["timesteps"])

    @property
    def progressive(self) -> bool:
        """Whether the edge half decodes any prefix of the T steps (``snn-progressive``; manifest ``progressive``)."""
        return bool(self.manifest.get("progressive"))

    @property
    def payload_shape(self) -> list[int]:
        """``[T, c2, h2, w2]``: the shape of one image's bits on the wire."""
        return [self.timesteps, *self.latent_shape]

    def build(self, halves: tuple[str, ...] = ("device", "edge"), device: str | torch.device = "cpu") -> SplitModel:
        """Rebuild the model and load the requested halves' weights (the others stay unloaded)."""
        model = build_split_model(self.spec)
        for half in halves:
            if half not in HALVES:
                raise BundleError(f"unknown half {half!r}; use 'device' or 'edge'")
            try:
                state = load_file(self.path / HALVES[half])
            except (SafetensorError, OSError) as error:
                raise BundleError(f"{self.path / HALVES[half]} is not a readable safetensors file: {error}") from None
            expected = model.device_state() if half == "device" else model.edge_state()
            if set(state) != set(expected):
                missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
                raise BundleError(
                    f"{HALVES[half]} does not match the manifest: missing {missing[:3]}, extra {extra[:3]}"
                )
            try:
                model.load_state_dict(state, strict=False)
            except RuntimeError as error:  # same names, different shapes: spec and weights disagree
                raise BundleError(f"{HALVES[half]} does not fit the manifest's spec: {error}") from None
        return model.to(device).eval()


class BundleHalf:
    """What the device and the edge half of one bundle must agree on: the model's identity and the wire format.

    Both pipelines check requests against these, so they read them from the manifest in one place.
    """

    def __init__(self, bundle: Bundle) -> None:
        self.model_id = bundle.model_id
        self.codec = bundle.manifest["codec"]
        self.classes = bundle.classes
        self.timesteps = bundle.timesteps
        self.latent_shape = tuple(bundle.latent_shape)
        self.payload_shape = tuple(bundle.payload_shape)
        self.payload_bits = bitstream.payload_bits(self.payload_shape)
        self.progressive = bundle.progressive
        self.bits_per_step = bitstream.payload_bits(self.latent_shape)


def save_bundle(
    model: SplitModel,
    spec: ModelSpec,
    path: str | Path,
    classes: list[str],
    train_channel: dict[str, Any],
    metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Bundle:
    """Write a bundle folder for a model with a codec; returns it as loaded back (hashes checked)."""
    if model.codec is None or spec.codec is None:
        raise BundleError("only a model with a codec can be bundled")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    cpu = lambda state: {k: v.detach().cpu().contiguous() for k, v in state.items()}  # noqa: E731
    save_file(cpu(model.device_state()), folder / DEVICE_FILE)
    save_file(cpu(model.edge_state()), folder / EDGE_FILE)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "backbone": spec.backbone.name,
        "split": spec.backbone.split_at,
        "codec": model.codec.name,
        "timesteps": model.codec.timesteps,
        "latent_shape": model.latent_shape,
        "feature_shape": list(model.feature_shape),
        "payload_bits": model.codec.timesteps * int(torch.tensor(model.latent_shape).prod()),
        "classes": list(classes),
        "train_channel": train_channel,
        "metrics": metrics,
        "spec": spec.to_dict(),
        "files": {name: _sha256(folder / name) for name in (DEVICE_FILE, EDGE_FILE)},
        **(extra or {}),
    }
    if is_progressive(model.codec):  # the edge decodes any prefix t of the T steps, t * bits_per_step bits
        manifest["progressive"] = {"prefixes": list(range(1, model.codec.timesteps + 1)),
                                   "bits_per_step": int(torch.tensor(model.latent_shape).prod())}
    manifest["model_id"] = compute_model_id(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return load_bundle(folder)


def load_bundle(path: str | Path) -> Bundle:
    """Read and verify a bundle folder; every problem is a :class:`BundleError` that names it."""
    folder = Path(path)
    if not folder.is_dir():
        raise BundleError(f"bundle folder {folder} does not exist")
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{folder} has no {MANIFEST}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{manifest_path} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{manifest_path} is not a {FORMAT} manifest")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BundleError(f"{manifest_path} has no 'files' table of SHA-256 hashes")
    for name in (DEVICE_FILE, EDGE_FILE):
        file = folder / name
        if not file.is_file():
            raise BundleError(f"bundle {folder} is missing {name}")
        expected = files.get(name)
        if _sha256(file) != expected:
            raise BundleError(f"{file} was altered: its SHA-256 does not match the manifest")
    if compute_model_id(manifest) != manifest.get("model_id"):
        raise BundleError(f"{manifest_path} was altered: model_id does not match its content")
    try:
        spec = ModelSpec.from_dict(manifest["spec"])
    except (ConfigError, KeyError, TypeError) as error:
        raise BundleError(f"{manifest_path} has an invalid spec: {error}") from None
    _check_classes(manifest_path, manifest.get("classes"), spec.backbone.num_classes)
    return Bundle(folder, manifest, spec)


def _check_classes(manifest_path: Path, classes: object, num_classes: int) -> None:
    """The class list names every output of the classifier, once: a shorter or longer one would mislabel."""
    if not isinstance(classes, list) or not all(isinstance(name, str) and name for name in classes):
        raise BundleError(f"{manifest_path}: 'classes' must be a list of non-empty names")
    if len(classes) != num_classes:
        raise BundleError(f"{manifest_path} lists {len(classes)} classes but its model has {num_classes} outputs")
    if len(set(classes)) != len(classes):
        raise BundleError(f"{manifest_path}: 'classes' names a class twice")
