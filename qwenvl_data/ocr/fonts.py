"""Fonts for synthetic pages: where they come from, which characters they can draw.

- The default folders are the fonts shipped inside installed wheels (matplotlib's DejaVu for Latin,
  paperang-p2-fonts-cjk's WenQuanYi Micro Hei for Chinese), found through importlib so that no
  system font or download is needed; `--fonts DIR` replaces them.
- A font's coverage is its cmap (fontTools), read once per file. A line is drawn only with a font
  whose cmap holds every character of it: a missing glyph would draw a tofu box that the target
  text does not describe.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageFont

from ..errors import UsageError

FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
# Latin files from matplotlib worth drawing body text with (its STIX/cm files are math symbol sets).
_MPL_TEXT_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
)
# Characters needed to call a font usable for a language at all (cheap screening, not the line check).
_LANG_PROBE = {"en": "AaZz09", "zh": "的一是中"}


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def default_font_files() -> list[Path]:
    """Font files shipped by installed wheels: matplotlib's DejaVu family and WenQuanYi Micro Hei."""
    files: list[Path] = []
    mpl = _package_dir("matplotlib")
    if mpl is not None:
        ttf = mpl / "mpl-data" / "fonts" / "ttf"
        files += [ttf / n for n in _MPL_TEXT_FONTS if (ttf / n).is_file()]
    cjk = _package_dir("paperang_p2_fonts_cjk")
    if cjk is not None:
        files += sorted(p for p in cjk.rglob("*") if p.suffix.lower() in FONT_SUFFIXES)
    return files


def font_files(folder: str | Path | None) -> list[Path]:
    if folder is None:
        files = default_font_files()
        if not files:
            raise UsageError("no default fonts found (matplotlib / paperang-p2-fonts-cjk); pass --fonts DIR")
        return files
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"--fonts {folder}: not a directory")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in FONT_SUFFIXES)
    if not files:
        raise UsageError(f"--fonts {folder}: no .ttf/.otf/.ttc files in it")
    return files


@functools.lru_cache(maxsize=64)
def charset(path: str) -> frozenset[int]:
    """Code points the font (first face of a collection) has a glyph for."""
    from fontTools.ttLib import TTCollection, TTFont

    try:
        if path.lower().endswith(".ttc"):
            font = TTCollection(path, lazy=True).fonts[0]
        else:
            font = TTFont(path, lazy=True)
        cmap = font.getBestCmap() or {}
    except Exception as e:  # a broken file in a user's folder is a usage problem, named
        raise UsageError(f"{path}: cannot read font cmap ({type(e).__name__}: {e})") from None
    return frozenset(cmap)


@functools.lru_cache(maxsize=256)
def truetype(path: str, size: int) -> ImageFont.FreeTypeFont:
    # The basic layout engine: no raqm dependency, and it is what glyph-by-glyph widths assume.
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


def missing_chars(text: str, chars: frozenset[int]) -> str:
    """Characters of `text` the font cannot draw (whitespace counts as drawable: it has no ink)."""
    return "".join(sorted({c for c in text if ord(c) not in chars and not c.isspace()}))


@dataclass(frozen=True)
class FontSet:
    """The fonts usable for one language, in a fixed order (determinism)."""

    lang: str
    paths: tuple[str, ...]

    def covering(self, text: str, first: int) -> str | None:
        """The first font, starting at index `first` and wrapping, that can draw every char of `text`."""
        n = len(self.paths)
        for i in range(n):
            path = self.paths[(first + i) % n]
            if not missing_chars(text, charset(path)):
                return path
        return None


def fonts_for(lang: str, folder: str | Path | None = None) -> FontSet:
    probe = {ord(c) for c in _LANG_PROBE[lang]}
    paths = tuple(str(p) for p in font_files(folder) if probe <= charset(str(p)))
    if not paths:
        where = folder or "the default font folders"
        raise UsageError(f"no font in {where} can draw '{lang}' text (probe {_LANG_PROBE[lang]!r})")
    return FontSet(lang, paths)
