"""Page layout: paragraphs wrapped into columns of lines, each word with its ink box on the paper.

Text is cut into tokens that carry their leading space: a CJK character is a token of its own, a run
of other non-space characters is one token. The same rule wraps English on spaces and Chinese between
any two characters, and a line's text is exactly the concatenation of its tokens, so what is drawn,
what is measured and what lands in the target are one string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from .fonts import FontSet, truetype

_CJK = "\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
_TOKEN = re.compile(rf"\s*(?:[{_CJK}]|[^\s{_CJK}]+)")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


@dataclass
class Word:
    text: str
    box: tuple[float, float, float, float]  # paper pixels, x1 y1 x2 y2


@dataclass
class Line:
    text: str
    x: float  # pen position (left) and baseline where the line is drawn
    baseline: float
    font: str  # font file path
    size: int
    color: tuple[int, int, int]
    box: tuple[float, float, float, float]
    words: list[Word] = field(default_factory=list)


class Measure:
    """Advances and ink extents for one (font, size), measured per character and cached: a language
    has few distinct characters, so after a page or two every measurement is a dict lookup. PIL's
    basic layout applies no kerning, so a token's advance is the sum of its characters' advances
    (checked against whole-line getlength in the tests)."""

    def __init__(self, path: str, size: int):
        self.font = truetype(path, size)
        self._chars: dict[str, tuple[float, float, float, float, float]] = {}
        self._tokens: dict[str, tuple[float, float, float, float, float]] = {}
        self._glyphs: dict[str, tuple[np.ndarray, int, int] | None] = {}

    def char(self, c: str) -> tuple[float, float, float, float, float]:
        """(advance, ink left, top, right, bottom) of one character relative to pen and baseline."""
        got = self._chars.get(c)
        if got is None:
            left, top, right, bottom = (0, 0, 0, 0) if c.isspace() else self.font.getbbox(c, anchor="ls")
            got = (self.font.getlength(c), left, top, right, bottom)
            self._chars[c] = got
        return got

    def glyph(self, c: str) -> tuple[np.ndarray, int, int] | None:
        """(coverage bitmap, left, top) of one character, rasterised once by FreeType; None if inkless.
        Blitting cached glyphs is several times faster than letting PIL rasterise every line."""
        if c in self._glyphs:
            return self._glyphs[c]
        _, left, top, right, bottom = self.char(c)
        got = None
        if right > left and bottom > top:
            img = Image.new("L", (int(right - left), int(bottom - top)), 0)
            ImageDraw.Draw(img).text((-left, -top), c, font=self.font, fill=255, anchor="ls")
            got = (np.asarray(img), int(left), int(top))
        self._glyphs[c] = got
        return got

    def token(self, tok: str) -> tuple[float, float, float, float, float]:
        """(advance, ink left, top, right, bottom) of a token, relative to its pen position."""
        got = self._tokens.get(tok)
        if got is None:
            got = self._tokens[tok] = self._token(tok)
        return got

    def _token(self, tok: str) -> tuple[float, float, float, float, float]:
        pen, left, top, right, bottom = 0.0, float("inf"), 0.0, float("-inf"), 0.0
        for c in tok:
            adv, lft, t, r, b = self.char(c)
            if r > lft:
                left, right = min(left, pen + lft), max(right, pen + r)
                top, bottom = min(top, t), max(bottom, b)
            pen += adv
        if right < left:
            left = right = 0.0
        return pen, left, top, right, bottom


_MEASURES: dict[tuple[str, int], Measure] = {}


def measure(path: str, size: int) -> Measure:
    key = (path, size)
    if key not in _MEASURES:
        _MEASURES[key] = Measure(path, size)
    return _MEASURES[key]


def wrap(paragraph: str, m: Measure, width: float) -> list[list[str]] | None:
    """Greedy wrap of a paragraph's tokens into lines no wider than `width`; None when one token
    alone is wider (a long URL): it would run off the paper, outside the ink its quad claims."""
    lines: list[list[str]] = []
    current: list[str] = []
    used = 0.0
    for tok in tokens(paragraph):
        if not current:
            tok = tok.lstrip()
        adv = m.token(tok)[0]
        if current and used + adv > width:
            lines.append(current)
            tok = tok.lstrip()
            current, used = [], 0.0
            adv = m.token(tok)[0]
        if adv > width:
            return None
        if tok:
            current.append(tok)
            used += adv
    if current:
        lines.append(current)
    return lines


def place_line(
    toks: list[str], m: Measure, x: float, baseline: float, font: str, size: int, color, pad: float
) -> Line | None:
    """Word ink boxes of one line drawn with pen at (x, baseline); the line box is their union."""
    text = "".join(toks)
    spans, pen = [], x
    for tok in toks:
        adv, left, top, right, bottom = m.token(tok)
        if right > left:
            spans.append((tok.strip(), pen + left, right - left, top, bottom))
        pen += adv
    if not spans:
        return None
    # Words share the line's ink extent vertically: one band per line reads better than ragged boxes.
    top, bottom = min(s[3] for s in spans), max(s[4] for s in spans)
    words = [
        Word(t, (x0 - pad, baseline + top - pad, x0 + wd + pad, baseline + bottom + pad)) for t, x0, wd, _, _ in spans
    ]
    box = (min(w.box[0] for w in words), baseline + top - pad, max(w.box[2] for w in words), baseline + bottom + pad)
    return Line(text, x, baseline, font, size, color, box, words)


@dataclass
class LayoutStyle:
    """Knobs of one page's layout (sizes in paper pixels)."""

    sizes: tuple[int, ...]
    line_spacing: tuple[float, float]  # baseline pitch as a multiple of the font size
    margin: float  # fraction of the paper width
    max_lines: int
    pad: float = 1.5


def layout_page(
    rng: np.random.Generator,
    width: int,
    height: int,
    corpus: list[str],
    fonts: FontSet,
    style: LayoutStyle,
    inks: list[tuple[int, int, int]],
) -> tuple[list[Line], int]:
    """Fill 1 or 2 columns with paragraph blocks; returns lines in reading order (column by column,
    top to bottom) and the number of paragraphs skipped because no font covers them or a word is
    wider than the column."""
    margin = style.margin * width
    columns = 2 if (width > 600 and rng.random() < 0.35) else 1
    gutter = margin * 0.6
    col_w = (width - 2 * margin - (columns - 1) * gutter) / columns
    lines: list[Line] = []
    skipped = 0
    for col in range(columns):
        x0 = margin + col * (col_w + gutter)
        y = margin
        first_block = col == 0
        while len(lines) < style.max_lines:
            size = int(style.sizes[rng.integers(len(style.sizes))])
            if first_block and rng.random() < 0.5:
                size = int(size * 1.5)  # a heading
            paragraph = corpus[int(rng.integers(len(corpus)))]
            font = fonts.covering(paragraph, int(rng.integers(len(fonts.paths))))
            if font is None:
                skipped += 1
                if skipped > 50:
                    break
                continue
            m = measure(font, size)
            wrapped = wrap(paragraph, m, col_w)
            if wrapped is None:
                skipped += 1
                if skipped > 50:
                    break
                continue
            pitch = size * rng.uniform(*style.line_spacing)
            ink = inks[int(rng.integers(len(inks)))]
            placed_any = False
            for toks in wrapped:
                if y + pitch > height - margin or len(lines) >= style.max_lines:
                    break
                y += pitch
                line = place_line(toks, m, x0, y, font, size, ink, style.pad)
                if line is not None:
                    lines.append(line)
                    placed_any = True
            if not placed_any:
                break
            y += pitch * rng.uniform(0.3, 1.0)  # paragraph gap
            first_block = False
    return lines, skipped
