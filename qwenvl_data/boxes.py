"""Boxes and quads in Qwen-VL's [0,1000) integer space (DESIGN.md: one pair of functions for all).

    n = floor(v / size * 1000) clamped to [0, 999];  back to pixels: v = n / 1000 * size

`normalise`/`denormalise` work on scalars and numpy arrays alike; `format_box`/`format_quad` write the
exact text (`<box>(x1,y1),(x2,y2)</box>`, `<quad>(x1,y1),...,(x4,y4)</quad>`), `parse_refs` reads it back.
"""
from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

import numpy as np

BINS = 1000


def normalise(v, size):
    """Pixel coordinate(s) -> int(s) in [0, 999]. `size` is the image width (x) or height (y)."""
    if size <= 0:
        raise ValueError(f"image size must be positive, got {size}")
    if isinstance(v, np.ndarray):
        return np.clip(np.floor(v.astype(np.float64) / size * BINS), 0, BINS - 1).astype(np.int64)
    return int(min(max(math.floor(float(v) / size * BINS), 0), BINS - 1))


def denormalise(n, size):
    """Int(s) in [0, 999] -> pixel coordinate(s)."""
    if isinstance(n, np.ndarray):
        return n.astype(np.float64) / BINS * size
    return n / BINS * size


class BoxError(ValueError):
    """An empty or inverted box; `reason` is the snake_case reason counted in the funnel."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def clip_box(x1: float, y1: float, x2: float, y2: float, width: float, height: float):
    """Clip a pixel box [x1,y1,x2,y2] to the image; raise BoxError if inverted or empty after clipping."""
    for v in (x1, y1, x2, y2):
        if not math.isfinite(v):
            raise BoxError("invalid_box", f"box has a non-finite coordinate: {(x1, y1, x2, y2)}")
    if x2 < x1 or y2 < y1:
        raise BoxError("inverted_box", f"inverted box {(x1, y1, x2, y2)}")
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
    if cx2 <= cx1 or cy2 <= cy1:
        raise BoxError("empty_box", f"box {(x1, y1, x2, y2)} is empty inside a {width}x{height} image")
    return cx1, cy1, cx2, cy2


def box_to_bins(box: Sequence[float], width: float, height: float) -> tuple[int, int, int, int]:
    """Pixel [x1,y1,x2,y2] (clipped, validated) -> (x1,y1,x2,y2) bins."""
    x1, y1, x2, y2 = clip_box(*box, width, height)
    return (normalise(x1, width), normalise(y1, height), normalise(x2, width), normalise(y2, height))


def format_box(bins: Sequence[int]) -> str:
    x1, y1, x2, y2 = (int(b) for b in bins)
    return f"<box>({x1},{y1}),({x2},{y2})</box>"


def quad_to_bins(points: Iterable[Sequence[float]], width: float, height: float) -> list[tuple[int, int]]:
    """Four pixel points (clockwise from top-left) -> four (x, y) bin pairs."""
    pts = [(normalise(x, width), normalise(y, height)) for x, y in points]
    if len(pts) != 4:
        raise BoxError("invalid_quad", f"a quad needs 4 points, got {len(pts)}")
    return pts


def format_quad(bins: Sequence[Sequence[int]]) -> str:
    return "<quad>" + ",".join(f"({int(x)},{int(y)})" for x, y in bins) + "</quad>"


def format_ref(phrase: str) -> str:
    return f"<ref>{phrase}</ref>"


_PAIR = r"\((\d{1,3}),(\d{1,3})\)"
_TAG_RE = re.compile(r"<ref>(.*?)</ref>|<box>" + _PAIR + "," + _PAIR + r"</box>|<quad>"
                     + ",".join([_PAIR] * 4) + r"</quad>", re.S)


def parse_refs(text: str) -> list[dict]:
    """Read `<ref>phrase</ref><box>..</box>...` / `<quad>` text back into
    [{'ref': phrase|None, 'boxes': [(x1,y1,x2,y2), ...], 'quads': [[(x,y)*4], ...]}] in bins.
    A box or quad belongs to the nearest `<ref>` before it."""
    out: list[dict] = []
    current = None
    for m in _TAG_RE.finditer(text):
        if m.group(1) is not None:
            current = {"ref": m.group(1), "boxes": [], "quads": []}
            out.append(current)
            continue
        if current is None:
            current = {"ref": None, "boxes": [], "quads": []}
            out.append(current)
        if m.group(2) is not None:
            current["boxes"].append(tuple(int(m.group(i)) for i in range(2, 6)))
        else:
            v = [int(m.group(i)) for i in range(6, 14)]
            current["quads"].append([(v[i], v[i + 1]) for i in range(0, 8, 2)])
    return out
