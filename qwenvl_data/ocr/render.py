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
from PIL import Image, ImageDraw

from . import effects
from .corpus import faker_corpus, load_corpus
from .fonts import FontSet, fonts_for, truetype
from .layout import LayoutStyle, layout_page
from .sample import ocr_sample

LANG_IDS = {"en": 1, "zh": 2}
INKS = [(10, 10, 10), (30, 30, 40), (20, 30, 90), (90, 20, 20), (50, 50, 50), (0, 60, 30)]


@dataclass
class Resources:
    """What every page of one language draws from; built once per worker."""

    lang: str
    fonts: FontSet
    corpus: list[str]
    backgrounds: list[str]


def load_resources(lang: str, cfg: dict, corpus: str | None = None, fonts: str | None = None,
                   backgrounds: str | None = None) -> Resources:
    text = load_corpus(corpus, lang) if corpus else faker_corpus(lang, cfg["corpus_size"], cfg["corpus_seed"])
    bgs: list[str] = []
    if backgrounds:
        root = Path(backgrounds)
        bgs = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in effects.IMAGE_SUFFIXES)
    return Resources(lang, fonts_for(lang, fonts), text, bgs)


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
    img = Image.fromarray(page)
    draw = ImageDraw.Draw(img)
    for line in lines:
        draw.text((line.x, line.baseline), line.text, font=truetype(line.font, line.size),
                  fill=line.color, anchor="ls")
    return np.asarray(img)


def _corners(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) x1 y1 x2 y2 -> (N, 4, 2) clockwise from top-left."""
    x1, y1, x2, y2 = boxes.T
    return np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1),
                     np.stack([x2, y2], 1), np.stack([x1, y2], 1)], 1)


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
        records.append({"text": ln.text, "quad": line_q[i], "words": words,
                        "font": os.path.basename(ln.font), "font_size": ln.size})
    source = f"synthdog-{lang}"
    uid = f"{source}-s{seed}-{page_no:09d}"
    sample, dropped = ocr_sample(uid, source, lang, w, h, records, {"seed": int(seed), "page": int(page_no)})
    return jpeg, sample, {"paragraphs_without_font": skipped, "lines_outside_image": dropped}
