"""Pictures to classify: real photos shipped with scikit-image (no download), or the user's own folder."""

from __future__ import annotations

import io
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
MAX_DEMO_IMAGES = 50


def _png(array) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def sample_images() -> list[tuple[str, bytes]]:
    """Real photos that ship inside scikit-image (no download), PNG-encoded as a user would upload them."""
    from skimage import data

    return [
        ("chelsea (a cat)", _png(data.chelsea())),
        ("astronaut", _png(data.astronaut())),
        ("coffee", _png(data.coffee())),
        ("rocket", _png(data.rocket())),
        ("motorcycle", _png(data.stereo_motorcycle()[0])),
    ]


def folder_images(folder: str | Path) -> list[tuple[str, bytes]]:
    """Every picture file in ``folder`` (sorted, at most 50); the device decides what is readable."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"--images {root}: no such folder")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"--images {root}: no picture files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [(p.name, p.read_bytes()) for p in files[:MAX_DEMO_IMAGES]]
