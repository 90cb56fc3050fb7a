"""Model bundles: save -> load gives the same numbers on both halves; every missing or altered piece is refused."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import tiny_spec
from safetensors.torch import save_file

from sjscc.common.bundle import (
    DEVICE_FILE,
    EDGE_FILE,
    MANIFEST,
    Bundle,
    BundleError,
    BundleHalf,
    compute_model_id,
    load_bundle,
    save_bundle,
)
from sjscc.common.model import SplitModel, build_split_model

CLASSES = [f"class{i}" for i in range(10)]


def _trained_looking_model(seed: int = 0) -> SplitModel:
    """Random weights *and* non-default BN statistics, so a lost buffer would show in the outputs."""
    torch.manual_seed(seed)
    model = build_split_model(tiny_spec())
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _save(model: SplitModel, folder: Path) -> Bundle:
    return save_bundle(model, tiny_spec(), folder, CLASSES, train_channel={"kind": "bsc", "p": 0.15},
                       metrics={"accuracy": 0.5})


def _copy(bundle: Bundle, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle.path, tmp_path / "copy"))


def _rewrite_manifest(folder: Path, change, rehash: bool = False) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    if rehash:
        manifest["model_id"] = compute_model_id(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


# --- round trip ---------------------------------------------------------------------------------------

def test_save_load_gives_identical_outputs(tmp_path: Path) -> None:
    model = _trained_looking_model()
    bundle = _save(model, tmp_path / "b")
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        bits = model.codec.encoder(model.head(images))
        logits = model.tail(model.codec.decoder(bits))

        device_half = load_bundle(bundle.path).build(("device",))
        assert torch.equal(device_half.codec.encoder(device_half.head(images)), bits)

        edge_half = load_bundle(bundle.path).build(("edge",))
        assert torch.equal(edge_half.tail(edge_half.codec.decoder(bits)), logits)

        both, _ = load_bundle(bundle.path).build()(images)
        assert torch.equal(both, model(images)[0])
    assert 0 < bits.mean() < 1


def test_manifest_contents(tiny_bundle: Bundle) -> None:
    manifest = json.loads((tiny_bundle.path / MANIFEST).read_text())
    for key in ("model_id", "backbone", "split", "codec", "timesteps", "latent_shape", "classes", "train_channel",
                "metrics"):
        assert key in manifest, key
    assert manifest["backbone"] == "cifar_resnet20" and manifest["split"] == "layer3.0"
    assert manifest["codec"] == "snn" and manifest["timesteps"] == 4
    assert manifest["latent_shape"] == [2, 8, 8]
    assert manifest["payload_bits"] == 4 * 2 * 8 * 8
    assert manifest["train_channel"] == {"kind": "bsc", "p": 0.15}
    assert tiny_bundle.payload_shape == [4, 2, 8, 8]
    assert len(tiny_bundle.model_id) == 16 and int(tiny_bundle.model_id, 16) >= 0


def test_both_halves_read_the_same_wire_format(tiny_bundle: Bundle) -> None:
    from sjscc.device.pipeline import DevicePipeline
    from sjscc.edge.pipeline import EdgePipeline

    half = BundleHalf(tiny_bundle)
    assert (half.model_id, half.codec, half.timesteps) == (tiny_bundle.model_id, "snn", 4)
    assert half.latent_shape == (2, 8, 8) and half.payload_shape == (4, 2, 8, 8)
    assert half.payload_bits == 4 * 2 * 8 * 8 and half.classes[3] == "cat"
    fields = ("model_id", "codec", "classes", "timesteps", "latent_shape", "payload_shape", "payload_bits")
    device, edge = DevicePipeline(tiny_bundle), EdgePipeline(tiny_bundle, device="cpu")
    assert [getattr(device, f) for f in fields] == [getattr(edge, f) for f in fields] == [getattr(half, f)
                                                                                          for f in fields]


def test_weights_are_safetensors_not_pickles(tiny_bundle: Bundle) -> None:
    for name in (DEVICE_FILE, EDGE_FILE):
        raw = (tiny_bundle.path / name).read_bytes()
        header_length = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + header_length])
        assert header and not raw.startswith(b"\x80")  # a pickle starts with the PROTO opcode 0x80
    device_keys = load_bundle(tiny_bundle.path).build(("device",)).device_state()
    assert all(k.startswith(("head.", "codec.encoder.")) for k in device_keys)


def test_model_id_is_a_content_hash(tmp_path: Path) -> None:
    first = _save(_trained_looking_model(0), tmp_path / "a")
    again = _save(_trained_looking_model(0), tmp_path / "b")
    other = _save(_trained_looking_model(1), tmp_path / "c")
    assert first.model_id == again.model_id
    assert first.model_id != other.model_id


# --- bad bundles --------------------------------------------------------------------------------------

def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")


@pytest.mark.parametrize("name", [MANIFEST, DEVICE_FILE, EDGE_FILE])
def test_missing_file(tiny_bundle: Bundle, tmp_path: Path, name: str) -> None:
    folder = _copy(tiny_bundle, tmp_path)
    (folder / name).unlink()
    with pytest.raises(BundleError, match=rf"(missing|has no) {name}"):
        load_bundle(folder)


@pytest.mark.parametrize("name", [DEVICE_FILE, EDGE_FILE])
def test_altered_weight_file(tiny_bundle: Bundle, tmp_path: Path, name: str) -> None:
    folder = _copy(tiny_bundle, tmp_path)
    raw = bytearray((folder / name).read_bytes())
    raw[-3] ^= 0x01  # one bit of one weight
    (folder / name).write_bytes(bytes(raw))
    with pytest.raises(BundleError, match=rf"{name} was altered"):
        load_bundle(folder)


@pytest.mark.parametrize(("key", "value"), [("timesteps", 8), ("latent_shape", [4, 8, 8]), ("classes", ["a"] * 10),
                                            ("split", "layer2.0"), ("codec", "cnn-q4")])
def test_altered_manifest(tiny_bundle: Bundle, tmp_path: Path, key: str, value: object) -> None:
    folder = _copy(tiny_bundle, tmp_path)
    _rewrite_manifest(folder, lambda m: m.__setitem__(key, value))
    with pytest.raises(BundleError, match="model_id does not match"):
        load_bundle(folder)


def test_manifest_pointing_at_other_weights(tiny_bundle: Bundle, tmp_path: Path) -> None:
    folder = _copy(tiny_bundle, tmp_path)
    _rewrite_manifest(folder, lambda m: m["files"].__setitem__(DEVICE_FILE, "0" * 64), rehash=True)
    with pytest.raises(BundleError, match=f"{DEVICE_FILE} was altered"):
        load_bundle(folder)


def test_invalid_json(tiny_bundle: Bundle, tmp_path: Path) -> None:
    folder = _copy(tiny_bundle, tmp_path)
    (folder / MANIFEST).write_text('{"format": "sjscc-bundle/1", ')
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(folder)


@pytest.mark.parametrize("content", ["[1, 2]", '{"format": "other/9"}', '"text"'])
def test_not_a_bundle_manifest(tiny_bundle: Bundle, tmp_path: Path, content: str) -> None:
    folder = _copy(tiny_bundle, tmp_path)
    (folder / MANIFEST).write_text(content)
    with pytest.raises(BundleError, match="is not a sjscc-bundle/1 manifest"):
        load_bundle(folder)


def test_manifest_without_files_table(tiny_bundle: Bundle, tmp_path: Path) -> None:
    folder = _copy(tiny_bundle, tmp_path)
    _rewrite_manifest(folder, lambda m: m.__setitem__("files", ["device.safetensors"]))
    with pytest.raises(BundleError, match="no 'files' table"):
        load_bundle(folder)


def test_invalid_spec_with_consistent_hash(tiny_bundle: Bundle, tmp_path: Path) -> None:
    folder = _copy(tiny_bundle, tmp_path)
    _rewrite_manifest(folder, lambda m: m["spec"].__setitem__("colour", "red"), rehash=True)
    with pytest.raises(BundleError, match=r"invalid spec.*unknown key\(s\) \['colour'\]"):
        load_bundle(folder)


def test_weights_that_do_not_fit_the_spec(tiny_bundle: Bundle, tmp_path: Path) -> None:
    """A self-consistent bundle whose edge file holds other tensors: refused when the model is built."""
    folder = _copy(tiny_bundle, tmp_path)
    save_file({"tail.fc.weight": torch.zeros(3, 3)}, folder / EDGE_FILE)
    digest = hashlib.sha256((folder / EDGE_FILE).read_bytes()).hexdigest()
    _rewrite_manifest(folder, lambda m: m["files"].__setitem__(EDGE_FILE, digest), rehash=True)
    bundle = load_bundle(folder)
    with pytest.raises(BundleError, match=f"{EDGE_FILE} does not match the manifest: missing"):
        bundle.build(("edge",))
    bundle.build(("device",))  # the untouched half still loads


def test_unknown_half(tiny_bundle: Bundle) -> None:
    with pytest.raises(BundleError, match="unknown half 'cloud'"):
        tiny_bundle.build(("cloud",))
