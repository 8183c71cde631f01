"""Characters with boxes (from a PDF text layer or the DOM) -> lines and words in reading order.

PDF (pypdfium2 `get_charbox`) and HTML (a DOM Range per character) both give characters in content
order, each with a pixel box. One grouping serves both: whitespace separates words, an explicit
newline or a character whose vertical centre leaves the current line's band (or that jumps back to
the left) starts a new line. Words follow the same token rule as synthetic pages (a CJK character is
a word of its own), so the three sources agree on what a word is.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from .layout import _CJK
from .sample import ocr_sample

_WORD = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")
_CJK_CHAR = re.compile(rf"[{_CJK}]")


def _corners(x1, y1, x2, y2) -> np.ndarray:
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64)


def _close_line(chars: list, lines: list):
    while chars and chars[-1][1] is None:
        chars.pop()  # trailing spaces
    if not chars:
        return
    text = "".join(c for c, _ in chars)
    words = []
    for m in _WORD.finditer(text):
        boxes = [b for _, b in chars[m.start() : m.end()] if b is not None]
        if boxes:
            a = np.array(boxes)
            words.append(
                {"text": m.group(), "quad": _corners(a[:, 0].min(), a[:, 1].min(), a[:, 2].max(), a[:, 3].max())}
            )
    a = np.array([b for _, b in chars if b is not None])
    lines.append(
        {"text": text, "words": words, "quad": _corners(a[:, 0].min(), a[:, 1].min(), a[:, 2].max(), a[:, 3].max())}
    )


def group_lines(chars) -> list[dict]:
    """chars: iterable of (char, x1, y1, x2, y2) in pixels, content order; whitespace boxes ignored,
    invisible (empty-box) characters dropped. Returns lines for `ocr_sample`."""
    lines: list[dict] = []
    current: list = []
    band = None  # (top, bottom) of the current line
    last_x = None
    for c, x1, y1, x2, y2 in chars:
        if c in "\r\n":
            _close_line(current, lines)
            current, band, last_x = [], None, None
            continue
        if c.isspace() or c == "\ufffe":
            if current and current[-1][1] is not None:
                current.append((" ", None))
            continue
        if not (x2 > x1 and y2 > y1):
            continue
        centre = (y1 + y2) / 2
        if band is not None and (not band[0] <= centre <= band[1] or x1 < last_x - (y2 - y1)):
            _close_line(current, lines)
            current, band = [], None
        current.append((c, (x1, y1, x2, y2)))
        band = (y1, y2) if band is None else (min(band[0], y1), max(band[1], y2))
        last_x = x2
    _close_line(current, lines)
    return lines


def page_uid(source: str, name: str) -> str:
    """A stable uid (and shard key) for a real file: its name made key-safe (no dots) plus a short
    hash of its path relative to the input folder, so equal stems in two folders never collide."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem).strip("_")[:60] or "page"
    return f"{source}-{safe}-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"


def guess_lang(text: str) -> str:
    """zh when a fifth or more of the visible characters are CJK, else en."""
    visible = sum(1 for c in text if not c.isspace())
    return "zh" if visible and len(_CJK_CHAR.findall(text)) * 5 >= visible else "en"


def real_sample(uid: str, source: str, width: int, height: int, lines: list[dict], extra: dict):
    """The OCR sample of a real page; lines not wholly inside the image are dropped by ocr_sample."""
    inside = [
        ln
        for ln in lines
        if ln["quad"][:, 0].min() >= 0
        and ln["quad"][:, 1].min() >= 0
        and ln["quad"][:, 0].max() <= width
        and ln["quad"][:, 1].max() <= height
    ]
    text = "\n".join(ln["text"] for ln in inside)
    sample, _ = ocr_sample(uid, source, guess_lang(text), width, height, inside, extra)
    return sample, text, len(lines) - len(inside)
