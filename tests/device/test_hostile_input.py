"""Hostile input without a server: every accepted image format truncated or corrupted is a 415-class error,
odd pixel modes are converted, hypothesis fuzzes the image decoder and the bit unpacker, a bundle whose class
list disagrees with its model is refused, and bad CLI/environment values are one line and exit 2."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sjscc.common import bitstream
from sjscc.common.bundle import BundleError, compute_model_id, load_bundle
from sjscc.device.pipeline import (
    ACCEPTED_FORMATS,
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
    decode_image,
    max_pixels_for,
)

ROOT = Path(__file__).resolve().parents[2]
SAVE_AS = {"JPEG": "JPEG", "PNG": "PNG", "GIF": "GIF", "WEBP": "WEBP", "BMP": "BMP", "TIFF": "TIFF", "AVIF": "AVIF"}


def picture(fmt: str, size: tuple[int, int] = (48, 40), mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ACCEPTED_FORMATS)
def test_every_accepted_format_decodes_and_its_truncation_is_not_an_image(fmt: str) -> None:
    data = picture(fmt)
    assert decode_image(data).size == (48, 40)
    for cut in (len(data) // 2, 12):
        with pytest.raises(NotAnImageError):
            decode_image(data[:cut])


@pytest.mark.parametrize("fmt", ACCEPTED_FORMATS)
def test_corrupt_bodies_of_every_format_never_escape_as_anything_but_an_image_error(fmt: str) -> None:
    data = bytearray(picture(fmt))
    rng = np.random.default_rng(2)
    for _ in range(20):
        corrupt = bytearray(data)
        positions = rng.integers(8, len(corrupt), 16)
        corrupt[positions[0]:positions[0] + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        for position in positions[1:]:
            corrupt[position] ^= 0xFF
        with contextlib.suppress(ImageError):  # some damage still decodes: fine, as long as it is RGB
            assert decode_image(bytes(corrupt)).mode == "RGB"


@pytest.mark.parametrize("fmt", ["PSD", "TGA", "PCX", "SGI", "ICO"])
def test_formats_no_camera_or_browser_produces_are_refused(fmt: str) -> None:
    mode = "RGBA" if fmt == "ICO" else "RGB"
    with pytest.raises(NotAnImageError, match="accepted format"):
        decode_image(picture(fmt, mode=mode) if fmt != "PSD" else b"8BPS\x00\x01" + b"\x00" * 64)


@pytest.mark.parametrize(("mode", "fmt"), [("L", "PNG"), ("RGBA", "PNG"), ("P", "GIF"), ("I;16", "PNG"),
                                           ("CMYK", "JPEG"), ("LA", "PNG"), ("1", "BMP")])
def test_odd_pixel_modes_are_converted(mode: str, fmt: str) -> None:
    assert decode_image(picture(fmt, mode=mode)).mode == "RGB"


def test_an_animated_gif_is_read_as_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], loop=0)
    decoded = decode_image(buffer.getvalue())
    assert decoded.getpixel((8, 8))[0] > 200 and decoded.getpixel((8, 8))[2] < 50


def test_the_pixel_cap_follows_the_models_input() -> None:
    assert max_pixels_for(32) == 4096 * 4096
    assert max_pixels_for(8) == 1024 * 1024
    assert max_pixels_for(224) == 4096 * 4096  # never more than a 16-megapixel decode
    with pytest.raises(ImageTooLargeError, match="1100x1000 = 1100000 pixels; the limit is 1048576"):
        decode_image(picture("PNG", size=(1100, 1000)), max_pixels=max_pixels_for(8))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096) | st.sampled_from([picture(f)[:n] for f in ("PNG", "JPEG", "GIF") for n in (30, 90)])
       .flatmap(lambda head: st.binary(max_size=512).map(lambda tail: head + tail)))
def test_fuzzed_uploads_decode_or_raise_an_image_error(data: bytes) -> None:
    try:
        image = decode_image(data, max_pixels=1 << 20)
    except ImageError as error:
        assert str(error) and len(str(error)) < 600
    else:
        assert image.mode == "RGB" and image.width * image.height <= 1 << 20


@settings(max_examples=400, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), data=st.data())
def test_fuzzed_payloads_unpack_exactly_or_raise_a_payload_error(shape: list[int], data: st.DataObject) -> None:
    n_bits = int(np.prod(shape))
    payload = data.draw(st.binary(min_size=0, max_size=(n_bits + 7) // 8 + 2))
    try:
        bits = bitstream.unpack(payload, shape)
    except bitstream.PayloadError:
        expected = (n_bits + 7) // 8
        padding = np.unpackbits(np.frombuffer(payload, np.uint8))[n_bits:] if len(payload) == expected else None
        assert len(payload) != expected or padding.any()
    else:
        assert tuple(bits.shape) == tuple(shape) and set(bits.unique().tolist()) <= {0.0, 1.0}
        assert bitstream.pack(bits) == payload  # exact inverse on everything it accepts


def _rewrite(bundle_path: Path, folder: Path, change) -> Path:
    import shutil

    shutil.copytree(bundle_path, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    manifest["model_id"] = compute_model_id(manifest)  # a consistent hash: only the content is wrong
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize(("change", "words"), [
    (lambda m: m["classes"].pop(), "lists 9 classes but its model has 10 outputs"),
    (lambda m: m["classes"].append("extra"), "lists 11 classes"),
    (lambda m: m["classes"].__setitem__(1, m["classes"][0]), "names a class twice"),
    (lambda m: m.__setitem__("classes", "cat,dog"), "must be a list"),
])
def test_a_class_list_that_disagrees_with_the_model_is_refused(tiny_bundle, tmp_path, change, words) -> None:
    folder = _rewrite(tiny_bundle.path, tmp_path / "bundle", change)
    with pytest.raises(BundleError, match=words):
        load_bundle(folder)


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SJSCC_")}
    environment.update(env or {}, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "sjscc.cli", *argv], capture_output=True, text=True, cwd=ROOT,
                          env=environment, timeout=120)


@pytest.mark.parametrize(("command", "env", "argv", "words"), [
    ("device", {"SJSCC_P": "abc"}, [], "argument --p: SJSCC_P='abc': expected a number"),
    ("device", {"SJSCC_P": "1.5"}, [], "SJSCC_P='1.5': expected a finite number in [0, 1]"),
    ("device", {}, ["--p", "nan"], "argument --p: 'nan'"),
    ("device", {"SJSCC_DEVICE_PORT": "80000"}, [], "argument --port: SJSCC_DEVICE_PORT='80000'"),
    ("device", {"SJSCC_CHANNEL": "wifi"}, [], "argument --channel: SJSCC_CHANNEL='wifi': expected one of none"),
    ("device", {"SJSCC_SNR_DB": "loud"}, [], "argument --snr-db: SJSCC_SNR_DB='loud'"),
    ("device", {"SJSCC_COHERENCE": "0"}, [], "argument --coherence: SJSCC_COHERENCE='0'"),
    ("device", {"SJSCC_SEED": "-3"}, [], "argument --seed: SJSCC_SEED='-3'"),
    ("device", {"SJSCC_EDGE": "no-port"}, [], "argument --edge: SJSCC_EDGE='no-port': expected HOST:PORT"),
    ("device", {"SJSCC_RPC_TIMEOUT": "0"}, [], "argument --rpc-timeout: SJSCC_RPC_TIMEOUT='0'"),
    ("device", {"SJSCC_MAX_IN_FLIGHT": "many"}, [], "argument --max-in-flight"),
    ("edge", {"SJSCC_MAX_BATCH_SIZE": "0"}, [], "argument --max-batch-size: SJSCC_MAX_BATCH_SIZE='0'"),
    ("edge", {"SJSCC_MAX_WAIT_MS": "-1"}, [], "argument --max-wait-ms"),
    ("edge", {}, ["--max-queue", "x"], "argument --max-queue: 'x'"),
    ("edge", {"SJSCC_TLS_CERT": "/nonexistent/cert.pem"}, [], "give both --tls-cert and --tls-key"),
    ("edge", {"SJSCC_TLS_CERT": "/nonexistent/c.pem", "SJSCC_TLS_KEY": "/nonexistent/k.pem"}, [],
     "cannot read the TLS private key /nonexistent/k.pem"),
    ("device", {"SJSCC_TLS_CERT": "/x.pem", "SJSCC_TLS_KEY": "/y.pem"}, [], "needs --edge-ca"),
    ("edge", {"SJSCC_BUNDLE": "/nonexistent/bundle"}, [], "bundle folder /nonexistent/bundle does not exist"),
])
def test_a_bad_option_or_variable_is_one_line_naming_it_and_exit_2(command, env, argv, words) -> None:
    result = run_cli(command, *argv, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert words in result.stderr, result.stderr


@pytest.mark.parametrize("command", ["device", "edge", "demo"])
def test_help_works_whatever_the_environment_holds(command: str) -> None:
    env = {"SJSCC_P": "abc", "SJSCC_EDGE_PORT": "x", "SJSCC_DEVICE_PORT": "y", "SJSCC_MAX_BATCH_SIZE": "?",
           "SJSCC_RPC_TIMEOUT": "soon", "SJSCC_CHANNEL": "wifi", "SJSCC_SEED": "z"}
    result = run_cli(command, "--help", env=env)
    assert result.returncode == 0, result.stderr
    assert f"usage: sjscc {command}" in result.stdout


def test_no_pickle_is_loaded_by_the_services() -> None:
    """Only training's data loader (the CIFAR files' own format) may unpickle; nothing on the serving path."""
    offenders = []
    for path in (ROOT / "sjscc").rglob("*.py"):
        if "training" in path.parts:
            continue
        text = path.read_text()
        if "pickle" in text.replace("never a pickle", "").replace("never pickles", "") and "import pickle" in text:
            offenders.append(str(path))
        if "torch.load(" in text:
            offenders.append(str(path))
    assert not offenders, offenders
    assert torch.__version__  # torch is the one that could unpickle (torch.load); it is never called there
