"""Backgrounds, paper and the camera: one homography moves pixels and points alike.

Everything that changes geometry (scale, rotation, perspective, placement on the background) is
folded into a single 3x3 matrix. The paper is warped once with it (cv2.warpPerspective), and every
word and line corner goes through the same matrix, so quads enclose their ink by construction.
Photometric effects (shadow, blur, noise, JPEG) never move anything.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

cv2.setNumThreads(1)  # one page per core: the process pool is the parallelism

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def texture_background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A procedural stand-in for a natural photo: colours blended by smooth noise, made on a small
    grid and blown up (a full-resolution blend would cost more than the whole page's text)."""
    cells = int(rng.integers(3, 12))
    sw, sh = max(2, cells * w // max(h, 1)), cells
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = rng.random((sh, sw, 1))
    small = np.clip(a * (1 - t) + b * t, 0, 255).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def photo_background(source: str | Path | bytes, w: int, h: int, rng: np.random.Generator) -> np.ndarray | None:
    """A natural image (a file, or encoded bytes) cropped to the canvas aspect and resized; None if
    it cannot be decoded."""
    if isinstance(source, bytes):
        img = cv2.imdecode(np.frombuffer(source, np.uint8), cv2.IMREAD_COLOR)
    else:
        img = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if img is None or img.shape[0] < 16 or img.shape[1] < 16:
        return None
    ih, iw = img.shape[:2]
    scale = max(w / iw, h / ih)
    cw, ch = min(iw, int(np.ceil(w / scale))), min(ih, int(np.ceil(h / scale)))
    x, y = int(rng.integers(0, iw - cw + 1)), int(rng.integers(0, ih - ch + 1))
    crop = img[y : y + ch, x : x + cw]
    return cv2.cvtColor(cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def paper(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A light paper with a faint grain, uint8 RGB (h, w, 3); the grain is drawn at 1/8 size."""
    base = rng.integers(215, 256, 3).astype(np.float32)
    amp = rng.uniform(4, 18)
    small = np.clip(base + (rng.random((h // 8 + 1, w // 8 + 1, 1), dtype=np.float32) - 0.5) * amp, 0, 255)
    return cv2.resize(small.astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)


def camera(
    rng: np.random.Generator,
    paper_w: int,
    paper_h: int,
    out_w: int,
    out_h: int,
    rotate_deg: float,
    perspective: float,
    fill: tuple[float, float],
) -> np.ndarray:
    """Homography paper -> image: rotate about the centre, tilt the corners by up to `perspective`
    of the paper size, then scale and move so the whole paper lands inside the image."""
    corners = np.array([[0, 0], [paper_w, 0], [paper_w, paper_h], [0, paper_h]], np.float32)
    jitter = rng.uniform(-perspective, perspective, (4, 2)) * [paper_w, paper_h]
    tilted = (corners + jitter).astype(np.float32)
    theta = np.deg2rad(rng.uniform(-rotate_deg, rotate_deg))
    c, s = np.cos(theta), np.sin(theta)
    centre = tilted.mean(0)
    turned = (tilted - centre) @ np.array([[c, s], [-s, c]], np.float32) + centre
    lo, hi = turned.min(0), turned.max(0)
    scale = min(out_w / (hi[0] - lo[0]), out_h / (hi[1] - lo[1])) * rng.uniform(*fill)
    placed = (turned - lo) * scale
    span = placed.max(0)
    offset = np.array([rng.uniform(0, max(out_w - span[0], 0)), rng.uniform(0, max(out_h - span[1], 0))])
    return cv2.getPerspectiveTransform(corners, (placed + offset).astype(np.float32))


def warp_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a homography to points of shape (..., 2)."""
    flat = points.reshape(-1, 2).astype(np.float64)
    if not len(flat):  # a page with no lines: OpenCV returns None for an empty point set
        return points.astype(np.float64)
    out = cv2.perspectiveTransform(flat[None], matrix.astype(np.float64))[0]
    return out.reshape(points.shape)


def warp_paper(page: np.ndarray, matrix: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Paste the warped paper onto (a copy of) the background; outside the paper stays background."""
    out = background.copy()
    h, w = background.shape[:2]
    cv2.warpPerspective(page, matrix, (w, h), dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    return out


def shadow(rng: np.random.Generator, img: np.ndarray, strength: float) -> np.ndarray:
    """A soft linear shade across the image (a hand or a page fold)."""
    h, w = img.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:16, 0:16].astype(np.float32) / 15
    ramp = np.clip((np.cos(angle) * xs + np.sin(angle) * ys) * 1.5 - rng.uniform(0, 1), 0, 1)
    shade = cv2.resize(1 - strength * ramp, (w, h), interpolation=cv2.INTER_LINEAR)
    return (img * shade[..., None]).astype(np.uint8)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma)


_NOISE_TILES: dict[int, np.ndarray] = {}


def _noise_tile(side: int) -> np.ndarray:
    """A fixed N(0,1) field, made once per worker; pages cut it at a random offset. Drawing fresh
    normals for every page cost more than the whole warp."""
    if side not in _NOISE_TILES:
        _NOISE_TILES[side] = np.random.default_rng(0).standard_normal((side, side), dtype=np.float32)
    return _NOISE_TILES[side]


def noise(rng: np.random.Generator, img: np.ndarray, sigma: float) -> np.ndarray:
    """Gray sensor noise, added with saturation."""
    h, w = img.shape[:2]
    side = (max(h, w) // 256 + 2) * 256
    y, x = (int(v) for v in rng.integers(0, side - max(h, w) + 1, 2))
    n = cv2.multiply(_noise_tile(side)[y : y + h, x : x + w], float(sigma))  # type: ignore[call-overload]
    return cv2.add(img, cv2.merge([n, n, n]), dtype=cv2.CV_8U)


def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()
