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
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageOps

from sjscc.common import bitstream
from sjscc.common.bundle import Bundle, BundleHalf
from sjscc.common.devices import select_device

DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
# A 4096 x 4096 picture (a 12-megapixel phone photo fits) decodes to at most 48 MB of RGB. The model sees
# image_size^2 pixels (32 x 32 for CIFAR), so more than 128x downscaling per side gives it nothing.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
# Only what cameras and browsers produce: every other Pillow plugin (EPS runs Ghostscript; PSD, TGA, FITS,
# ... are rarely used and large attack surface) is never opened. JPEG covers MPO (multi-picture JPEG).
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")


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
    return [name for name in ACCEPTED_FORMATS if name in Image.OPEN]


def max_pixels_for(image_size: int) -> int:
    """The default pixel cap for a model whose input is ``image_size`` square: 128x per side, at most 4096^2."""
    return min(DEFAULT_MAX_IMAGE_PIXELS, (128 * image_size) ** 2)


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
        raise NotAnImageError(f"the upload ({len(data)} bytes, starting {data[:8]!r}) is not an image in an "
                              f"accepted format ({', '.join(ACCEPTED_FORMATS)})") from None
    except Exception as error:  # noqa: BLE001 - any decoder failure on untrusted bytes is the upload's fault
        raise NotAnImageError(f"the upload ({len(data)} bytes) is not a readable image: {_brief(error)}") from None
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
        if image.width * image.height > max_pixels:  # a header can lie about the size (e.g. EXIF rotation)
            raise ImageTooLargeError(f"the decoded image is {image.width}x{image.height} pixels; the limit is "
                                     f"{max_pixels} pixels")
        return _to_rgb(image)
    except ImageTooLargeError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"the image has too many pixels: {error}") from None
    except Exception as error:  # noqa: BLE001 - truncated/corrupt data raises anything from any plugin
        raise NotAnImageError(f"the {image.format or 'image'} data could not be decoded: {_brief(error)}") from None


def _brief(error: Exception, limit: int = 200) -> str:
    """A decoder's message, bounded: it may quote bytes of the upload."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= limit else text[:limit] + "..."


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


class EncoderBatcher:
    """Head + encoder for concurrent requests in one forward pass (the device's micro-batching).

    Request threads (FastAPI's thread pool) call :meth:`encode` with one preprocessed image and block; a single
    worker thread stacks whatever is queued when it becomes free (at most ``max_batch_size``) and runs
    ``encode_batch`` once. It never waits for a batch to fill: a lone request runs at once, and under load the
    requests that arrived during one forward pass share the next. Samples do not interact in eval mode, so a
    request gets the spikes it would get alone (up to float32 rounding at the firing threshold: identical for
    the random images of tests/tools/test_perf.py and for 8 scikit-image photos checked once by hand).
    """

    def __init__(self, encode_batch: Callable[[torch.Tensor], torch.Tensor], max_batch_size: int = 32) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.encode_batch = encode_batch
        self.max_batch_size = max_batch_size
        self._pending: list[tuple[torch.Tensor, Future]] = []
        self._wake = threading.Condition()
        self._worker: threading.Thread | None = None
        self.batch_sizes: list[int] = []  # recent batch sizes, for tests and the bench (bounded below)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Spikes ``[T, c2, h2, w2]`` for one normalized image ``[3, S, S]``; exceptions of the model re-raised."""
        future: Future = Future()
        with self._wake:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="device-encoder", daemon=True)
                self._worker.start()
            self._pending.append((image, future))
            self._wake.notify()
        return future.result()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                batch, self._pending = self._pending[: self.max_batch_size], self._pending[self.max_batch_size:]
            self.batch_sizes = [*self.batch_sizes[-999:], len(batch)]
            try:
                bits = self.encode_batch(torch.stack([image for image, _ in batch]))
            except Exception as error:  # noqa: BLE001 - handed to every caller of this batch
                for _, future in batch:
                    future.set_exception(error)
                continue
            for (_, future), sample in zip(batch, bits, strict=True):
                future.set_result(sample)


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
    thread pool) take turns on the model; image decoding runs outside the lock. With ``max_batch_size`` > 1
    concurrent requests share forward passes through an :class:`EncoderBatcher`.
    """

    def __init__(self, bundle: Bundle, device: str = "cpu", max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                 max_image_pixels: int | None = None, max_batch_size: int = 32) -> None:
        super().__init__(bundle)
        self.device = select_device(device)
        model = bundle.build(halves=("device",), device=self.device)
        self.head = model.head
        self.encoder = model.codec.encoder
        self.image_size = bundle.spec.image_size
        self.mean = tuple(bundle.spec.mean)
        self.std = tuple(bundle.spec.std)
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels or max_pixels_for(self.image_size)
        self._model_lock = threading.Lock()
        self.batcher = EncoderBatcher(self.encode_tensor, max_batch_size) if max_batch_size > 1 else None

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
        bits = self.batcher.encode(tensor) if self.batcher is not None else self.encode_tensor(tensor.unsqueeze(0))[0]
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
