"""The device's half of the road, without a web server.

image bytes -> checked RGB picture -> resize + center crop to the model's input size -> normalize with the
bundle's mean/std -> head -> SNN encoder -> spikes ``[T, c2, h2, w2]`` -> packed payload bytes.

Uploads are untrusted: :func:`decode_image` reads the header before any pixel is decoded, so an empty
upload, a non-image, too many bytes or a decompression bomb is refused with an :class:`ImageError` that
names the problem, before it costs memory.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageOps

from sjscc.common import bitstream
from sjscc.common.bundle import Bundle, BundleHalf
from sjscc.common.devices import select_device

DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000  # a 40-megapixel photo decodes to ~120 MB of RGB
# Pillow formats that need external programs (EPS runs Ghostscript) are never opened.
_REFUSED_FORMATS = {"EPS"}


class ImageError(ValueError):
    """An upload that cannot be classified; the message says why."""


class EmptyImageError(ImageError):
    pass


class ImageTooLargeError(ImageError):
    """Too many bytes or too many pixels."""


class NotAnImageError(ImageError):
    pass


def _readable_formats() -> list[str]:
    Image.init()
    return sorted(set(Image.OPEN) - _REFUSED_FORMATS)


def decode_image(data: bytes, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                 max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, draft_size: int | None = None) -> Image.Image:
    """Decode an upload into an RGB picture (first frame, EXIF orientation applied, alpha over white).

    ``draft_size`` lets JPEG decode at a reduced scale when the model needs far fewer pixels than the photo
    has (Pillow's DCT scaling keeps every side at least ``draft_size``).
    """
    if not data:
        raise EmptyImageError("the uploaded image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"the uploaded image is {len(data)} bytes; the limit is {max_bytes} bytes")
    try:
        image = Image.open(io.BytesIO(data), formats=_readable_formats())
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"the image has too many pixels: {error}") from None
    except Image.UnidentifiedImageError:
        raise NotAnImageError(f"the upload ({len(data)} bytes, starting {data[:8]!r}) is not an image in any "
                              f"format Pillow reads") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise NotAnImageError(f"the upload ({len(data)} bytes) is not a readable image: {error}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise NotAnImageError(f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels"
        )
    try:
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", (draft_size, draft_size))
        image.load()
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise NotAnImageError(f"the {image.format or 'image'} data could not be decoded: {error}") from None
    return _to_rgb(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit and float grey: scale to 8 bits instead of clipping.
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        return Image.fromarray(scaled.astype(np.uint8), mode="L").convert("RGB")
    return image.convert("RGB")


def preprocess(image: Image.Image, image_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``[3, S, S]``: the largest centered square, resized to S (what the model saw in training), normalized."""
    square = ImageOps.fit(image, (image_size, image_size), method=Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.asarray(square, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return (pixels - mean_t) / std_t


@dataclass(frozen=True)
class EncodedImage:
    """One image's payload and what it cost: ``device_compute_ms`` is decode + preprocess + head + encoder."""

    payload: bytes
    payload_shape: tuple[int, ...]
    payload_bits: int
    device_compute_ms: float
    pack_ms: float
    firing_rate: float
    stages_ms: dict[str, float] = field(default_factory=dict)


class DevicePipeline(BundleHalf):
    """The device half of one bundle: backbone head and SNN encoder.

    The spiking neurons keep state during a forward pass, so concurrent requests (FastAPI runs this in a
    thread pool) take turns on the model; image decoding runs outside the lock.
    """

    def __init__(self, bundle: Bundle, device: str = "cpu", max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                 max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
        super().__init__(bundle)
        self.device = select_device(device)
        model = bundle.build(halves=("device",), device=self.device)
        self.head = model.head
        self.encoder = model.codec.encoder
        self.image_size = bundle.spec.image_size
        self.mean = tuple(bundle.spec.mean)
        self.std = tuple(bundle.spec.std)
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self._model_lock = threading.Lock()

    def warmup(self) -> None:
        """One forward pass on zeros, so the first real request does not pay for lazy initialisation."""
        self.encode_tensor(torch.zeros(1, 3, self.image_size, self.image_size))

    @torch.inference_mode()
    def encode_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """Spikes ``[B, T, c2, h2, w2]`` in {0, 1} for normalized images ``[B, 3, S, S]``."""
        with self._model_lock:
            bits = self.encoder(self.head(images.to(self.device)))
        if tuple(bits.shape[1:]) != self.payload_shape:
            raise RuntimeError(f"encoder produced {list(bits.shape[1:])}, bundle says {list(self.payload_shape)}")
        return bits.cpu()

    def encode_image(self, data: bytes) -> EncodedImage:
        """Upload bytes -> payload bytes, timed stage by stage."""
        start = time.perf_counter()
        image = decode_image(data, self.max_image_bytes, self.max_image_pixels, draft_size=self.image_size)
        decoded = time.perf_counter()
        tensor = preprocess(image, self.image_size, self.mean, self.std)
        preprocessed = time.perf_counter()
        bits = self.encode_tensor(tensor.unsqueeze(0))[0]
        encoded = time.perf_counter()
        payload = bitstream.pack(bits)
        packed = time.perf_counter()
        return EncodedImage(
            payload=payload,
            payload_shape=self.payload_shape,
            payload_bits=bits.numel(),
            device_compute_ms=(encoded - start) * 1e3,
            pack_ms=(packed - encoded) * 1e3,
            firing_rate=float(bits.mean()),
            stages_ms={"decode": (decoded - start) * 1e3, "preprocess": (preprocessed - decoded) * 1e3,
                       "head_encoder": (encoded - preprocessed) * 1e3},
        )


def split_steps(encoded: EncodedImage) -> list[bytes]:
    """One packed payload per time step (``[c2, h2, w2]`` bits each) for progressive transmission.

    The encoder computes all T steps in one pass (its first Conv-BN is shared by the steps and the head costs
    far more than the spiking layers), so the device has every step ready and the stream only decides how many
    of them leave the device; splitting the packed payload keeps :meth:`DevicePipeline.encode_image` the one
    place that runs the model.
    """
    bits = bitstream.unpack(encoded.payload, encoded.payload_shape)
    return [bitstream.pack(step) for step in bits]
