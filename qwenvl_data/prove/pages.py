"""OCR inputs of `make prove`: a corpus of a few large words per page, and the synth-ocr settings.

`synth-ocr` draws the pages itself (its own renderer, quads and targets); this module only writes
what a user would hand it: a parquet corpus with `text` and `lang` columns (one or two words of a
small English vocabulary, one to three common Chinese characters, by default) and a YAML `synth_ocr:` section for
small, clean pages with at most two large lines, so a tiny model can learn to read them on a CPU.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from qwenvl_data.errors import UsageError
from qwenvl_data.ocr.fonts import default_font_files

EN_WORDS = (
    "cat",
    "dog",
    "sun",
    "map",
    "box",
    "tree",
    "fish",
    "bird",
    "car",
    "book",
    "moon",
    "star",
    "rain",
    "hat",
    "cup",
    "pen",
    "key",
    "bus",
    "egg",
    "red",
)
ZH_CHARS = "山水火木人口日月大小中天土田王石米花鸟马"

# Clean 224-px pages, one or two big lines: what a model trained for minutes on a CPU can learn to read.
SYNTH_SETTINGS = {
    "long_side": 224,
    "aspect": [0.95, 1.0],
    "landscape_p": 0.5,
    "paper_fill": [0.9, 0.98],
    "font_sizes": [30, 36],
    "line_spacing": [1.5, 2.0],
    "margin": 0.06,
    "max_lines": 2,
    "rotate_deg": 2,
    "perspective": 0.01,
    "shadow_p": 0.0,
    "blur_p": 0.0,
    "noise_p": 0.2,
    "noise_sigma": [2.0, 4.0],
    "jpeg_quality": [85, 95],
    "shard_size": 500,
}


# Units per corpus row (English words, Chinese characters): each row draws its count from these, uniformly.
LINE_UNITS = {"en": (1, 1, 2), "zh": (1, 2, 3)}


def corpus_rows(seed: int = 0, per_lang: int = 400, units: dict | None = None) -> list[dict]:
    """`per_lang` rows of each language; `units` ({lang: counts to draw from}, both languages) replaces LINE_UNITS."""
    rng = random.Random(seed)
    counts = check_units(units or LINE_UNITS)
    rows = []
    for _ in range(per_lang):
        rows.append({"text": " ".join(rng.choice(EN_WORDS) for _ in range(rng.choice(counts["en"]))), "lang": "en"})
        rows.append({"text": "".join(rng.choice(ZH_CHARS) for _ in range(rng.choice(counts["zh"]))), "lang": "zh"})
    return rows


def check_units(units) -> dict:
    """{lang: counts} for en and zh, each a non-empty list of counts from 1 to 12, or a UsageError naming it."""
    if not isinstance(units, dict) or set(units) != {"en", "zh"}:
        raise UsageError(f"plan: ocr_line_units maps en and zh to lists of counts, got {units!r}")
    for lang, v in units.items():
        if not (
            isinstance(v, (list, tuple))
            and v
            and all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 12 for n in v)
        ):
            raise UsageError(f"plan: ocr_line_units[{lang}] must be a list of counts from 1 to 12, got {v!r}")
    return {lang: tuple(v) for lang, v in units.items()}


def write_inputs(
    out_dir: str | Path, seed: int = 0, settings: dict | None = None, units: dict | None = None
) -> tuple[Path, Path]:
    """-> (corpus parquet, synth-ocr config YAML) under out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = out / "corpus.parquet"
    pq.write_table(pa.Table.from_pylist(corpus_rows(seed, units=units)), corpus)
    config = out / "synth_ocr.yaml"
    config.write_text(yaml.safe_dump({"synth_ocr": {**SYNTH_SETTINGS, **(settings or {})}}, sort_keys=True))
    return corpus, config


def font_folder(out_dir: str | Path, names) -> Path:
    """A folder of links to the named shipped fonts (`synth-ocr --fonts`); an unknown name is a UsageError."""
    shipped = {p.name: p for p in default_font_files()}
    unknown = [n for n in names if n not in shipped]
    if unknown:
        raise UsageError(f"plan: ocr_fonts {unknown} not among the shipped fonts {sorted(shipped)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for n in names:
        link = out / n
        link.unlink(missing_ok=True)  # a link from an earlier run, perhaps to a venv since removed
        link.symlink_to(shipped[n])
    return out
