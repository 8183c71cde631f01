"""Safe image checks (qwenvl_data/images.py) and the failure-reason mapping, on bytes made here."""

import io
import struct
import zlib

import pytest
from PIL import Image

from qwenvl_data.images import ImageLimits, ImageRejected, decode_rgb, geometry_reason, inspect_image, sha256
from qwenvl_data.pipelines.download import failure_reason

LIMITS = ImageLimits(max_pixels=1_000_000, min_side=20, max_aspect_ratio=3.0)


def encode(img, fmt="JPEG"):
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def png_header_only(w, h):
    """A PNG whose header claims w x h but which holds no pixel data: decoding it would fail."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def reason(data):
    with pytest.raises(ImageRejected) as e:
        inspect_image(data, LIMITS)
    return e.value.reason


def test_good_images_report_real_size():
    info = inspect_image(encode(Image.new("RGB", (64, 48), "red")), LIMITS)
    assert (info.width, info.height, info.format) == (64, 48, "JPEG")
    assert inspect_image(encode(Image.new("RGBA", (30, 40)), "PNG"), LIMITS).mode == "RGBA"


def test_pixel_limit_is_checked_before_decoding():
    # The header claims 30000 x 30000; a decode would fail with decode_error, so too_many_pixels
    # proves the limit was applied on the header alone.
    assert reason(png_header_only(30000, 30000)) == "too_many_pixels"
    assert reason(png_header_only(100, 100)) == "decode_error"


def test_truncated_html_and_geometry():
    jpeg = encode(Image.effect_noise((200, 150), 60).convert("RGB"))
    assert reason(jpeg[: len(jpeg) // 2]) == "decode_error"
    assert reason(b"<!DOCTYPE html><html>nope</html>") == "not_an_image"
    assert reason(encode(Image.new("RGB", (10, 10)))) == "image_too_small"
    assert reason(encode(Image.new("RGB", (400, 100)), "PNG")) == "aspect_ratio"
    assert geometry_reason(300, 100, LIMITS) is None and geometry_reason(301, 100, LIMITS) == "aspect_ratio"


def test_decode_rgb_flattens_alpha_and_cmyk():
    transparent = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    assert decode_rgb(encode(transparent, "PNG"), None).getpixel((5, 5)) == (255, 255, 255)
    cmyk = Image.new("CMYK", (20, 20), (0, 255, 255, 0))  # pure red in CMYK
    r, g, b = decode_rgb(encode(cmyk), None).getpixel((5, 5))
    assert r > 200 and g < 60 and b < 60
    assert sha256(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize(
    "message,expected",
    [
        ("HTTP Error 404: Not Found", "http_404"),
        ("HTTP Error 503: Service Unavailable", "http_503"),
        ("timed out", "timeout"),
        ("<urlopen error timed out>", "timeout"),
        ("Use of image disallowed by X-Robots-Tag directive", "opted_out"),
        ("<urlopen error <urlopen error refused_address: h resolves to 10.0.0.1>>", "refused_address"),
        ("<urlopen error bad_scheme: only http and https>", "bad_scheme"),
        ("decode_error: OSError: image file is truncated", "decode_error"),
        ("<urlopen error [Errno 111] Connection refused>", "connection_error"),
        ("something new", "download_error"),
    ],
)
def test_failure_reason(message, expected):
    assert failure_reason(message) == expected
