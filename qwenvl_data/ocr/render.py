"""A synthetic document page: background, paper, text blocks, one camera, photometric effects.

`render_page(cfg, resources, lang, seed, page_no)` depends only on its arguments: the page's random
generator is seeded from (seed, language, page number), so any worker, in any order, draws the same
bytes for the same page. Speed comes from drawing each line once with PIL on the flat paper, moving
pixels with one cv2 warp, and moving quads with the same matrix (no per-glyph rendering, no
re-rendering after effects).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import effects
from .corpus import faker_corpus, load_corpus
from .fonts import FontSet, fonts_for
from .layout import LayoutStyle, layout_page, measure
from .sample import ocr_sample

LANG_IDS = {"en": 1, "zh": 2}
INKS = [(10, 10, 10), (30, 30, 40), (20, 30, 90), (90, 20, 20), (50, 50, 50), (0, 60, 30)]


@dataclass
class Resources:
    """What every page of one language draws from; built once per worker."""

    lang: str
    fonts: FontSet
    corpus: list[str]
    backgrounds: list  # image file paths, or encoded image bytes read from pair shards


def load_resources(
    lang: str, cfg: dict, corpus: str | None = None, fonts: str | None = None, backgrounds: str | None = None
) -> Resources:
    text = load_corpus(corpus, lang) if corpus else faker_corpus(lang, cfg["corpus_size"], cfg["corpus_seed"])
    return Resources(lang, fonts_for(lang, fonts), text, background_sources(backgrounds, cfg))


def background_sources(folder: str | None, cfg: dict) -> list:
    """Image files under `folder`, plus the images of any pair shards (`*.tar`) there, read into
    memory up to `max_shard_backgrounds` (the download stage's shards serve as natural photos)."""
    if not folder:
        return []
    from ..shards import iter_tar_samples

    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    out: list = [str(p) for p in files if p.suffix.lower() in effects.IMAGE_SUFFIXES]
    budget = int(cfg["max_shard_backgrounds"])
    for tar in (p for p in files if p.suffix == ".tar"):
        for _, members in iter_tar_samples(tar):
            if budget <= 0:
                return out
            image = next(
                (members[e] for e in sorted(members) if "." + e.rsplit(".", 1)[-1] in effects.IMAGE_SUFFIXES), None
            )
            if image is not None:
                out.append(image)
                budget -= 1
    return out


def page_rng(seed: int, lang: str, page_no: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), LANG_IDS[lang], int(page_no)])


def _canvas_size(rng, cfg) -> tuple[int, int]:
    long_side = int(cfg["long_side"])
    short = int(long_side * rng.uniform(*cfg["aspect"]))
    return (long_side, short) if rng.random() < cfg["landscape_p"] else (short, long_side)


def _background(rng, res: Resources, w: int, h: int) -> np.ndarray:
    if res.backgrounds:
        got = effects.photo_background(res.backgrounds[int(rng.integers(len(res.backgrounds)))], w, h, rng)
        if got is not None:
            return got
    return effects.texture_background(rng, w, h)


def draw_lines(page: np.ndarray, lines) -> np.ndarray:
    """Draw each line's glyphs (cached bitmaps, pens advanced exactly as the layout measured them)
    into a coverage buffer the size of the line's box, then blend the ink colour into the paper."""
    page = page.copy()
    ph, pw = page.shape[:2]
    for line in lines:
        m = measure(line.font, line.size)
        x0, y0 = max(int(line.box[0]) - 2, 0), max(int(line.box[1]) - 2, 0)
        x1, y1 = min(int(line.box[2]) + 3, pw), min(int(line.box[3]) + 3, ph)
        if x1 <= x0 or y1 <= y0:
            continue
        cover = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pen, base = line.x, int(round(line.baseline))
        for c in line.text:
            g = m.glyph(c)
            if g is not None:
                mask, left, top = g
                gx, gy = int(round(pen)) + left - x0, base + top - y0
                cx0, cy0 = max(gx, 0), max(gy, 0)
                cx1, cy1 = min(gx + mask.shape[1], x1 - x0), min(gy + mask.shape[0], y1 - y0)
                if cx1 > cx0 and cy1 > cy0:
                    sub = cover[cy0:cy1, cx0:cx1]
                    np.maximum(sub, mask[cy0 - gy : cy1 - gy, cx0 - gx : cx1 - gx], out=sub)
            pen += m.char(c)[0]
        alpha = cover[..., None].astype(np.uint16)
        region = page[y0:y1, x0:x1]
        ink = np.array(line.color, np.uint16)
        page[y0:y1, x0:x1] = ((region * (255 - alpha) + ink * alpha + 127) // 255).astype(np.uint8)
    return page


def _corners(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) x1 y1 x2 y2 -> (N, 4, 2) clockwise from top-left."""
    x1, y1, x2, y2 = boxes.T
    return np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x2, y2], 1), np.stack([x1, y2], 1)], 1)


def render_page(cfg: dict, res: Resources, seed: int, page_no: int) -> tuple[bytes, dict, dict]:
    """(JPEG bytes, OCR sample json, counters) of one synthetic page."""
    lang = res.lang
    rng = page_rng(seed, lang, page_no)
    w, h = _canvas_size(rng, cfg)
    pw, ph = int(w * rng.uniform(0.85, 1.0)), int(h * rng.uniform(0.85, 1.0))
    style = LayoutStyle(tuple(cfg["font_sizes"]), tuple(cfg["line_spacing"]), cfg["margin"], cfg["max_lines"])
    lines, skipped = layout_page(rng, pw, ph, res.corpus, res.fonts, style, INKS)
    sheet = draw_lines(effects.paper(rng, pw, ph), lines)
    matrix = effects.camera(rng, pw, ph, w, h, cfg["rotate_deg"], cfg["perspective"], tuple(cfg["paper_fill"]))
    img = effects.warp_paper(sheet, matrix, _background(rng, res, w, h))
    if rng.random() < cfg["shadow_p"]:
        img = effects.shadow(rng, img, rng.uniform(*cfg["shadow_strength"]))
    if rng.random() < cfg["blur_p"]:
        img = effects.blur(img, rng.uniform(*cfg["blur_sigma"]))
    if rng.random() < cfg["noise_p"]:
        img = effects.noise(rng, img, rng.uniform(*cfg["noise_sigma"]))
    jpeg = effects.encode_jpeg(img, int(rng.integers(cfg["jpeg_quality"][0], cfg["jpeg_quality"][1] + 1)))

    # Lines and words go through the very matrix the pixels went through.
    line_q = effects.warp_points(matrix, _corners(np.array([ln.box for ln in lines], np.float64).reshape(-1, 4)))
    word_boxes = np.array([wd.box for ln in lines for wd in ln.words], np.float64).reshape(-1, 4)
    word_q = effects.warp_points(matrix, _corners(word_boxes))
    records, k = [], 0
    for i, ln in enumerate(lines):
        words = [{"text": wd.text, "quad": word_q[k + j]} for j, wd in enumerate(ln.words)]
        k += len(ln.words)
        records.append(
            {
                "text": ln.text,
                "quad": line_q[i],
                "words": words,
                "font": os.path.basename(ln.font),
                "font_size": ln.size,
            }
        )
    source = f"synthdog-{lang}"
    uid = f"{source}-s{seed}-{page_no:09d}"
    sample, dropped = ocr_sample(uid, source, lang, w, h, records, {"seed": int(seed), "page": int(page_no)})
    return jpeg, sample, {"paragraphs_skipped": skipped, **dropped}
