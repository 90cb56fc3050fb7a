"""The device pipeline without a web server: untrusted uploads refused with a reason, pictures of any mode
made RGB, center-cropped and normalized as in training, and the payload exactly the encoder's spikes."""

from __future__ import annotations

import io
import struct
import threading
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from sjscc.common import bitstream
from sjscc.device.pipeline import (
    DevicePipeline,
    EmptyImageError,
    ImageTooLargeError,
    NotAnImageError,
    decode_image,
    preprocess,
)


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header is rewritten to claim ``width`` x ``height`` (a decompression bomb's shape)."""
    data = bytearray(encode(Image.new("RGB", (1, 1))))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


@pytest.fixture(scope="module")
def device(tiny_bundle) -> DevicePipeline:
    return DevicePipeline(tiny_bundle, max_image_bytes=1_000_000, max_image_pixels=4_000_000)


def test_bad_uploads_are_refused_with_a_reason() -> None:
    with pytest.raises(EmptyImageError, match="empty"):
        decode_image(b"")
    with pytest.raises(NotAnImageError, match="not an image"):
        decode_image(b"this is a text file, not a picture")
    with pytest.raises(ImageTooLargeError, match="1001 bytes; the limit is 1000"):
        decode_image(b"\x00" * 1001, max_bytes=1000)
    with pytest.raises(ImageTooLargeError, match="10000x5000 = 50000000 pixels; the limit is 40000000"):
        decode_image(png_claiming_size(10_000, 5_000), max_pixels=40_000_000)
    with pytest.raises(ImageTooLargeError, match="too many pixels"):  # Pillow's own bomb guard, also caught
        decode_image(png_claiming_size(30_000, 30_000), max_pixels=10**12)
    truncated = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(NotAnImageError, match="could not be decoded|not a readable image"):
        decode_image(truncated[: len(truncated) // 2])


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "1", "I;16", "CMYK", "LA"])
def test_any_mode_becomes_rgb(mode: str) -> None:
    image = Image.new("RGB", (40, 30), (200, 100, 50)).convert(mode)
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    decoded = decode_image(encode(image, fmt))
    assert decoded.mode == "RGB" and decoded.size == (40, 30)


def test_transparent_pixels_are_composited_on_white() -> None:
    decoded = decode_image(encode(Image.new("RGBA", (8, 8), (0, 0, 0, 0))))
    assert decoded.getpixel((3, 3)) == (255, 255, 255)


def test_preprocess_center_crops_and_normalizes() -> None:
    # Three 32x32 squares side by side: the centered square is exactly the green one.
    strip = Image.new("RGB", (96, 32), (255, 0, 0))
    strip.paste((0, 255, 0), (32, 0, 64, 32))
    strip.paste((0, 0, 255), (64, 0, 96, 32))
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    tensor = preprocess(strip, 32, mean, std)
    assert tensor.shape == (3, 32, 32)
    expected = [(0 - 0.5) / 0.2, (1 - 0.4) / 0.25, (0 - 0.3) / 0.5]
    for channel, value in enumerate(expected):
        assert tensor[channel, 8:24, 8:24] == pytest.approx(torch.full((16, 16), value), abs=1e-5)
    big = preprocess(Image.new("RGB", (640, 427), (10, 20, 30)), 32, mean, std)
    assert big.shape == (3, 32, 32)
    assert big[0].mean().item() == pytest.approx((10 / 255 - 0.5) / 0.2, abs=1e-5)


def test_payload_is_the_encoders_spikes_packed(tiny_bundle, device) -> None:
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 451, 3), dtype=np.uint8))
    encoded = device.encode_image(encode(photo))
    assert encoded.payload_shape == (4, 2, 8, 8) and encoded.payload_bits == 512
    assert len(encoded.payload) == bitstream.payload_bytes(encoded.payload_shape) == 64
    reference = preprocess(photo, 32, tiny_bundle.spec.mean, tiny_bundle.spec.std).unsqueeze(0)
    model = tiny_bundle.build(halves=("device",))
    with torch.inference_mode():
        spikes = model.codec.encoder(model.head(reference))[0]
    assert torch.equal(bitstream.unpack(encoded.payload, encoded.payload_shape), spikes)
    assert encoded.firing_rate == pytest.approx(float(spikes.mean()))
    assert encoded.device_compute_ms > 0 and encoded.pack_ms > 0
    assert set(encoded.stages_ms) == {"decode", "preprocess", "head_encoder"}


def test_pipeline_limits_apply(device) -> None:
    with pytest.raises(ImageTooLargeError, match="limit is 1000000 bytes"):
        device.encode_image(b"\x89PNG" + b"\x00" * 1_000_000)
    with pytest.raises(ImageTooLargeError, match="pixels"):
        device.encode_image(png_claiming_size(3000, 2000))


def test_concurrent_requests_get_the_same_payload_as_sequential_ones(device) -> None:
    rng = np.random.default_rng(2)
    uploads = [encode(Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))) for _ in range(6)]
    sequential = [device.encode_image(u).payload for u in uploads]
    concurrent: list[bytes | None] = [None] * len(uploads)

    def work(i: int) -> None:
        concurrent[i] = device.encode_image(uploads[i]).payload

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(uploads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert concurrent == sequential
