"""Safe image checks on downloaded bytes: pixel limit before decoding, a real decode, real sizes.

A URL list is untrusted input and so are the bytes behind it: a 50,000 x 50,000 PNG is a few KB on
the wire and 7.5 GB decoded. `inspect_image` reads only the header to get the size, refuses it over
`max_pixels`, then decodes the image fully (a truncated or corrupt file fails here), and checks the
real sizes against the minimum side and the aspect ratio (metadata sizes can lie). Each refusal is
an `ImageRejected` whose `reason` is a snake_case failure reason.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# We enforce our own limit before decoding; Pillow's own bomb check would raise on open with a
# message we cannot map to a reason, so it is lifted here and replaced by `max_pixels`.
Image.MAX_IMAGE_PIXELS = None


class ImageRejected(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int | None = 40_000_000  # refused before decoding (decompression bombs)
    min_side: int | None = 200  # min(width, height) of the real image
    max_aspect_ratio: float | None = 3.0  # max(w/h, h/w) of the real image


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    mode: str


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def geometry_reason(width: int, height: int, limits: ImageLimits) -> str | None:
    """The reason real sizes fail the limits, or None."""
    # Aspect first: a 10000x10 strip is better described as a strip than as small.
    if limits.max_aspect_ratio is not None and max(width, height) > limits.max_aspect_ratio * min(width, height):
        return "aspect_ratio"
    if limits.min_side is not None and min(width, height) < limits.min_side:
        return "image_too_small"
    return None


def open_checked(data: bytes, max_pixels: int | None) -> Image.Image:
    """Open (header only) and refuse an image over the pixel limit; nothing is decoded yet."""
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        head = data[:15].lstrip().lower()
        kind = "HTML" if head.startswith((b"<!doctype", b"<html")) else f"{len(data)} bytes"
        raise ImageRejected("not_an_image", f"not a known image format ({kind})") from None
    except Exception as e:  # noqa: BLE001 - a broken header is a bad image, whatever Pillow raises
        raise ImageRejected("decode_error", f"{type(e).__name__}: {e}") from None
    w, h = img.size
    if w < 1 or h < 1:
        raise ImageRejected("decode_error", f"invalid size {w}x{h}")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageRejected("too_many_pixels", f"{w}x{h} is over the limit of {max_pixels} pixels")
    return img


def decode_fully(img: Image.Image) -> None:
    """Decode every byte of the image data so truncation and corruption show up as errors.

    JPEGs are decoded in draft mode (libjpeg's DCT scaling to 1/8): the whole entropy-coded stream is
    still read and checked, at a fraction of the cost of a full-size decode.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Pillow warns instead of failing on some corrupt EXIF/PNG
            if img.format == "JPEG":
                img.draft(img.mode, (max(1, img.size[0] // 8), max(1, img.size[1] // 8)))
            img.load()
    except Exception as e:  # noqa: BLE001
        raise ImageRejected("decode_error", f"{type(e).__name__}: {e}") from None


def inspect_image(data: bytes, limits: ImageLimits) -> ImageInfo:
    """Checks a downloaded image's bytes; returns its real size or raises ImageRejected."""
    img = open_checked(data, limits.max_pixels)
    info = ImageInfo(img.size[0], img.size[1], img.format or "", img.mode)
    decode_fully(img)
    reason = geometry_reason(info.width, info.height, limits)
    if reason:
        raise ImageRejected(reason, f"real size {info.width}x{info.height}")
    return info


def decode_rgb(data: bytes, max_pixels: int | None) -> Image.Image:
    """A fully decoded RGB image (alpha composited on white, CMYK converted), for scoring."""
    img = open_checked(data, max_pixels)
    try:
        img.load()
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return img.convert("RGB")
    except Exception as e:  # noqa: BLE001
        raise ImageRejected("decode_error", f"{type(e).__name__}: {e}") from None
