"""Boxes and quads in Qwen-VL's [0,1000) integer space (DESIGN.md: one pair of functions for all).

    n = floor(v / size * 1000) clamped to [0, 999];  back to pixels: v = n / 1000 * size

`normalise`/`denormalise` work on scalars and numpy arrays alike; `format_box`/`format_quad` write the
exact text (`<box>(x1,y1),(x2,y2)</box>`, `<quad>(x1,y1),...,(x4,y4)</quad>`), `parse_refs` reads it back.

- A box with zero width or height after binning (a 1-2 px wide box on a large image) is rejected as
  `degenerate_box`: the official grounding evaluation scores such a box as a miss, so it teaches nothing.
- `parse_refs` reads every box the official Qwen-VL parser (tokenization_qwen.py `_fetch_all_box_with_ref`)
  reads: brackets dropped, four comma-separated integers, spaces allowed (`(123, 456)`), any value
  (`1000` too); the ref text NFC-normalised and stripped as it returns it. `parse_answer` adds the
  evaluation's case: a prompt that ends in `<box>`, answered by `(x1,y1),(x2,y2)</box>`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence

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
    x1, y1, x2, y2 = clip_box(box[0], box[1], box[2], box[3], width, height)
    bins = (normalise(x1, width), normalise(y1, height), normalise(x2, width), normalise(y2, height))
    if bins[2] <= bins[0] or bins[3] <= bins[1]:
        raise BoxError(
            "degenerate_box",
            f"box {tuple(box)} in a {width}x{height} image has zero width or height after binning: {bins}",
        )
    return bins


def degenerate(bins: np.ndarray) -> np.ndarray:
    """(N, 4) box bins -> (N,) True where a box has zero width or height (box_to_bins' `degenerate_box`)."""
    bins = np.asarray(bins).reshape(-1, 4)
    return (bins[:, 2] <= bins[:, 0]) | (bins[:, 3] <= bins[:, 1])


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


_TAG_RE = re.compile(r"<(ref|box|quad)>(.*?)</\1>", re.S)
_INT_RE = re.compile(r"\s*[+-]?\d+\s*")
_EVAL_BOX_RE = re.compile(r"\((.*?)\),\((.*?)\)")  # the official grounding evaluation's pattern


def _ints(body: str, n: int) -> list[int] | None:
    """`(x1,y1),(x2,y2)` -> [x1, y1, x2, y2] as the official parser reads it: brackets dropped, split on
    commas, each an int (spaces around it allowed); None when it is not exactly n integers."""
    vals = body.replace("(", "").replace(")", "").split(",")
    if len(vals) != n or not all(_INT_RE.fullmatch(v) for v in vals):
        return None
    return [int(v) for v in vals]


def parse_refs(text: str) -> list[dict]:
    """Read `<ref>phrase</ref><box>..</box>...` / `<quad>` text back into
    [{'ref': phrase|None, 'boxes': [(x1,y1,x2,y2), ...], 'quads': [[(x,y)*4], ...]}] in bins.
    A box or quad belongs to the nearest `<ref>` before it (the official drawing keeps that ref's
    colour for it); a box that is not four integers is skipped (the official parser fails on it)."""
    out: list[dict] = []
    current: dict | None = None
    for m in _TAG_RE.finditer(text):
        tag, body = m.group(1), m.group(2)
        if tag == "ref":
            current = {"ref": unicodedata.normalize("NFC", body).strip(), "boxes": [], "quads": []}
            out.append(current)
            continue
        v = _ints(body, 4 if tag == "box" else 8)
        if v is None:
            continue
        if current is None:
            current = {"ref": None, "boxes": [], "quads": []}
            out.append(current)
        if tag == "box":
            current["boxes"].append(tuple(v))
        else:
            current["quads"].append([(v[i], v[i + 1]) for i in range(0, 8, 2)])
    return out


def parse_answer(answer: str, prompt: str = "") -> list[dict]:
    """`parse_refs` of a model's answer. When the prompt ends in `<box>` (the official grounding
    evaluation's `<img>..</img><ref>X</ref><box>`), the answer continues that box: `(x1,y1),(x2,y2)</box>`,
    or, cut short, the first `(..),(..)` in it; the box then belongs to the prompt's ref."""
    if not prompt.endswith("<box>"):
        return parse_refs(answer)
    ref = re.search(r"<ref>((?:(?!</ref>).)*)</ref><box>$", prompt, re.S)
    if "</box>" not in answer:
        m = _EVAL_BOX_RE.search(answer)
        if m:
            answer = answer[: m.end()] + "</box>" + answer[m.end() :]
    return parse_refs((ref.group(0) if ref else "<box>") + answer)
