"""Opening an image file: the one function every stage decodes images through.

Why: a file's header may declare any size (a 100000 x 100000 PNG is a few hundred bytes that
decode to 30 GB), and PIL signals this and every other decode problem with a different exception
type (`DecompressionBombError`, `UnidentifiedImageError`, `OSError`, `SyntaxError`, ...). Here the
declared size is checked against a pixel limit BEFORE decoding, and every failure becomes one
`ImageError` whose message says what is wrong with which file, so a caller turns it into a bad row
(named with its file and row) or skips it, and never shows a traceback.

The limit is `max_pixels` where given, else `$FAIRFORGE_MAX_PIXELS`, else `DEFAULT_MAX_PIXELS`
(64 megapixels: four times an 8K frame, far above any face crop).
"""

from __future__ import annotations

import io
import os
import warnings

from PIL import Image

from .errors import FairforgeError

DEFAULT_MAX_PIXELS = 64_000_000
MAX_PIXELS_ENV = "FAIRFORGE_MAX_PIXELS"


class ImageError(FairforgeError, ValueError):
    """An image file cannot be used: missing, not an image, truncated, or larger than the limit."""


def max_pixels_limit(max_pixels: int | None = None) -> int:
    """The decoded-pixel limit in force (argument, environment, default)."""
    if max_pixels is not None:
        return int(max_pixels)
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        raise ImageError(f"{MAX_PIXELS_ENV}: expected a number of pixels, got {text!r}") from None
    if value <= 0:
        raise ImageError(f"{MAX_PIXELS_ENV}: expected a positive number of pixels, got {text!r}")
    return value


def _opened(source, limit: int, name: object) -> Image.Image:  # type: ignore[no-untyped-def]
    """`Image.open` on a path or a file object, then the declared size checked against `limit`.

    PIL's own check (a warning above `Image.MAX_IMAGE_PIXELS`, an error at twice that) runs inside
    `open`; its warning is raised as an error here so it never prints.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(source)
    width, height = image.size
    if width * height > limit:
        image.close()
        raise ImageError(
            f"{name}: declares {width}x{height} = {width * height} pixels, above the limit of {limit} "
            f"({MAX_PIXELS_ENV} raises it)"
        )
    return image


def _failure(path: str | os.PathLike[str], exc: BaseException) -> ImageError:
    if isinstance(exc, FileNotFoundError):
        return ImageError(f"{path}: image file not found (FileNotFoundError)")
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return ImageError(f"{path}: too many pixels to decode safely ({exc})")
    return ImageError(f"{path}: not a readable image ({type(exc).__name__}: {exc})")


_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError, Image.DecompressionBombWarning)


def image_size(path: str | os.PathLike[str], max_pixels: int | None = None) -> tuple[int, int]:
    """Width and height from the header (nothing decoded), checked against the pixel limit."""
    limit = max_pixels_limit(max_pixels)
    try:
        with _opened(path, limit, path) as image:
            return image.size
    except ImageError:
        raise
    except _ERRORS as exc:
        raise _failure(path, exc) from None


def open_image(path: str | os.PathLike[str], mode: str | None = "RGB", max_pixels: int | None = None) -> Image.Image:
    """The decoded image (converted to `mode`; None keeps the file's own), or an `ImageError`."""
    return _decode(path, path, mode, max_pixels)


def decode_image_bytes(data: bytes, name: str, mode: str | None = "RGB", max_pixels: int | None = None) -> Image.Image:
    """`data` (an encoded image file) decoded, or an `ImageError` naming `name`."""
    return _decode(io.BytesIO(data), name, mode, max_pixels)


def _decode(
    source: str | os.PathLike[str] | io.BytesIO, name: str | os.PathLike[str], mode: str | None, max_pixels: int | None
) -> Image.Image:
    """Decode `source` under the pixel limit; every failure becomes an `ImageError` naming `name`."""
    limit = max_pixels_limit(max_pixels)
    try:
        with _opened(source, limit, name) as image:
            image.load()
            return image.convert(mode) if mode is not None and image.mode != mode else image.copy()
    except ImageError:
        raise
    except _ERRORS as exc:
        raise _failure(name, exc) from None


def check_image_bytes(data: bytes, name: str, max_pixels: int | None = None) -> tuple[int, int]:
    """Decode `data` fully (so it is an image, whole, within the limit); its width and height."""
    return decode_image_bytes(data, name, None, max_pixels).size


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "ImageError",
    "check_image_bytes",
    "decode_image_bytes",
    "image_size",
    "max_pixels_limit",
    "open_image",
]
