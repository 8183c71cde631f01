"""Per-source and per-language CLIP-score thresholds applied to the score table (vectorised).

Lookup for a sample of source S and language L: `by_source[S][L]`, `by_source[S]` (a number),
`by_lang[L]`, `default`. A number is a cosine-similarity cut; "qP" (0 < P < 1) drops the lowest P
fraction of that (source, language) group's scores; null applies no CLIP rule. Samples that could
not be scored keep their error (`decode_error`, `no_caption`, ...) as their reason.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from qwenvl_data.errors import UsageError

_MISSING = object()


def lookup(thresholds: dict, source: str, lang: str):
    """The configured value (number, 'qP' or None) for one (source, language)."""
    by_source = thresholds.get("by_source") or {}
    if source in by_source:
        v = by_source[source]
        if not isinstance(v, dict):
            return v
        if lang in v:
            return v[lang]
    by_lang = thresholds.get("by_lang") or {}
    if lang in by_lang:
        return by_lang[lang]
    return thresholds.get("default")


def resolve(value, scores: np.ndarray, where: str) -> float | None:
    """A configured value -> the numeric cut for one group (quantiles from its own scores)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.startswith("q"):
        try:
            q = float(value[1:])
        except ValueError:
            q = -1.0
        if 0.0 < q < 1.0:
            return float(np.quantile(scores, q)) if scores.size else None
    raise UsageError(f"clip_score.thresholds for {where}: {value!r} is not a number, 'qP' (0<P<1) or null")


def apply_thresholds(scores: pa.Table, thresholds: dict) -> pa.Table:
    """Adds `threshold`, `kept` and `reason` (null when kept) to the score table."""
    groups = scores.group_by(["source", "lang"]).aggregate([]).to_pylist()
    cut = np.full(scores.num_rows, np.nan)
    src = scores["source"]
    lang = scores["lang"]
    values = scores["clip_score"].to_numpy(zero_copy_only=False).astype(np.float64)
    for g in groups:
        mask = pc.and_(pc.equal(src, g["source"]), pc.equal(lang, g["lang"])).to_numpy(zero_copy_only=False)
        group_scores = values[mask]
        t = resolve(
            lookup(thresholds, g["source"], g["lang"]),
            group_scores[~np.isnan(group_scores)],
            f"source {g['source']}, language {g['lang']}",
        )
        if t is not None:
            cut[mask] = t
    threshold = pa.array(cut, pa.float64(), mask=np.isnan(cut))
    low = pc.fill_null(pc.less(scores["clip_score"].cast(pa.float64()), threshold), False)
    reason = pc.if_else(
        pc.is_valid(scores["error"]),
        scores["error"],
        pc.if_else(low, pa.scalar("clip_score"), pa.scalar(None, pa.string())),
    )
    return (
        scores.drop_columns(["error"])
        .append_column("threshold", threshold)
        .append_column("kept", pc.is_null(reason))
        .append_column("reason", reason)
    )
