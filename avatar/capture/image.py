"""Reading photos: any format PIL knows (JPEG, PNG, PPM/PGM, BMP, TIFF, WebP, ...).

The result is always ``[H, W, 3] uint8 RGB`` in the orientation a viewer shows:

- the EXIF orientation tag is applied (a phone photo taken upright comes back upright);
- grey (``L``, ``I;16``, ``1``), palette and CMYK images are converted to RGB;
- transparency (``RGBA``, ``LA``, palette with transparency) is composited over **white**
  (transparent background pixels become white, not black, so a cut-out face keeps a
  neutral background for landmark detection).

Errors are :class:`~avatar.capture.errors.CaptureError` (a ``ValueError``), except a
missing file, which is a ``FileNotFoundError``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from avatar.capture.errors import CaptureError


def read_image(path: str | os.PathLike) -> np.ndarray:  # [H, W, 3] uint8
    """Read a photo as RGB, EXIF orientation applied, alpha composited over white.

    Args:
        path: an image file in any format PIL reads.

    Returns:
        ``[H, W, 3]`` uint8 RGB array.

    Raises:
        FileNotFoundError: the file does not exist.
        CaptureError: the file is empty, not an image, or truncated/corrupt.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image {path} does not exist: check the path")
    if path.is_dir():
        raise CaptureError(f"{path} is a folder, not an image: pass the path of a photo file")
    if path.stat().st_size == 0:
        raise CaptureError(f"image {path} is empty (0 bytes): re-export or re-download the photo")
    # A full load() raises on truncated data unless PIL's process-global
    # LOAD_TRUNCATED_IMAGES is set (by another library: we never set it), in which case
    # PIL fills the missing part silently; then we check the JPEG's end marker ourselves
    # rather than flip a global that other threads may rely on.
    try:
        with Image.open(path) as im:
            im.load()  # decode everything now: truncation shows up here, not later
            img = ImageOps.exif_transpose(im)
    except UnidentifiedImageError:
        raise CaptureError(
            f"{path} is not an image PIL can read: convert it to JPEG or PNG"
        ) from None
    except (OSError, SyntaxError, ValueError) as err:
        # OSError: "image file is truncated", "broken data stream"; SyntaxError: bad headers.
        raise CaptureError(
            f"image {path} is truncated or corrupt ({err}): re-export or re-download it"
        ) from err
    if ImageFile.LOAD_TRUNCATED_IMAGES and _looks_truncated(path):
        raise CaptureError(
            f"image {path} is truncated or corrupt (it ends before the image data does): "
            "re-export or re-download it"
        )
    return _to_rgb(img)


def _looks_truncated(path: Path) -> bool:
    """A JPEG whose last scan has no end-of-image marker after it.

    Only used when PIL is set to accept truncated files. Entropy-coded data never holds
    the bytes ``FF D9`` (EOI) or ``FF DA`` (SOS), so a complete file has an EOI after its
    last SOS, even with a maker's trailer after the image.
    """
    data = path.read_bytes()
    if not data.startswith(b"\xff\xd8"):
        return False
    return data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda")


def _to_rgb(img: Image.Image) -> np.ndarray:  # [H, W, 3] uint8
    """Any PIL mode to RGB; transparency composited over white."""
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grey: scale to 8 bits instead of PIL's clipping convert("L").
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        grey = np.clip(a * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    out = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(out)
