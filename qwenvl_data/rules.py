"""The ordered pair rules of the Qwen-VL stage-1 recipe, as functions over Arrow tables.

`PairRules.apply(table, layout)` takes normalised pair columns (sources.normalise) and returns them with
the cleaned `caption`, `lang`, `lang_score`, `reason` (the first rule failed, null when the row survives)
and `reasons` (every rule among 1–9 it fails, plus `language` for rows that reach rule 10; fastText runs
only on rows that pass rules 1–9). Rule 11 (`duplicate_url`) needs all inputs and lives in dedup.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .sources import Layout
from .text import langid
from .text.clean import Cleaner
from .text.script import count_units, has_emoji, has_foreign_script

RULES = ("bad_metadata", "aspect_ratio", "image_too_small", "clip_score", "special_tags",
         "emoji", "script", "text_length", "language", "duplicate_url")
MAP_RULES = RULES[:-1]
URL_OK = r"^(?i)https?://[^\s/?#]+\S*$"


def _np(mask) -> np.ndarray:
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class PairRules:
    max_aspect_ratio: float | None
    min_image_side: float | None
    special_tag_pattern: str | None
    cleaner: Cleaner
    min_units: int | None
    max_units: int | None
    languages: tuple
    min_lang_score: float | None
    langid_model: str | None
    langid_max_chars: int
    language_aliases: dict | None = None

    @classmethod
    def from_config(cls, cfg: dict) -> "PairRules":
        return cls(cfg.get("max_aspect_ratio"), cfg.get("min_image_side"), cfg.get("special_tag_pattern"),
                   Cleaner.from_config(cfg.get("clean") or {}), cfg.get("min_units"), cfg.get("max_units"),
                   tuple(cfg.get("languages") or ()), cfg.get("min_lang_score"), cfg.get("langid_model"),
                   int(cfg.get("langid_max_chars") or 256), cfg.get("language_aliases"))

    def apply(self, t: pa.Table, layout: Layout) -> pa.Table:
        n = t.num_rows
        fails: dict[str, np.ndarray] = {}
        url, raw = t["url"], t["caption_raw"]
        w, h = t["width"], t["height"]

        # 1. bad_metadata
        bad = ~_np(pc.match_substring_regex(url, URL_OK))
        bad |= ~_np(pc.match_substring_regex(raw, r"\S"))
        bad |= t["_meta_bad"].to_numpy(zero_copy_only=False)
        for side in (w, h):
            bad |= _np(pc.less_equal(side, 0))
        fails["bad_metadata"] = bad
        sized = _np(pc.and_(pc.greater(w, 0), pc.greater(h, 0)))
        # 2. aspect_ratio and 3. image_too_small, only where both sizes are known
        if self.max_aspect_ratio is not None:
            ratio = pc.max_element_wise(pc.divide(w, h), pc.divide(h, w))
            fails["aspect_ratio"] = sized & _np(pc.greater(ratio, self.max_aspect_ratio))
        if self.min_image_side is not None:
            fails["image_too_small"] = sized & _np(pc.less(pc.min_element_wise(w, h), self.min_image_side))
        # 4. clip_score: the source's own score, where it publishes one
        if layout.score_threshold is not None:
            fails["clip_score"] = _np(pc.less(t["score"], layout.score_threshold))
        # 5. special_tags, on the raw caption (cleaning would erase <PERSON>)
        if layout.special_tags and self.special_tag_pattern:
            fails["special_tags"] = _np(pc.match_substring_regex(raw, self.special_tag_pattern))
        # 6. cleaning drops nothing
        caption = self.cleaner(raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw)
        # 7–9 on the cleaned caption
        fails["emoji"] = _np(has_emoji(caption))
        fails["script"] = _np(has_foreign_script(caption))
        units = count_units(caption)
        too_short = pc.less(units, self.min_units) if self.min_units is not None else None
        too_long = pc.greater(units, self.max_units) if self.max_units is not None else None
        length_fail = np.zeros(n, dtype=bool)
        for m in (too_short, too_long):
            if m is not None:
                length_fail |= _np(m)
        fails["text_length"] = length_fail

        # 10. language, only for rows that passed 1–9 (the expensive step runs on survivors)
        alive = np.ones(n, dtype=bool)
        for m in fails.values():
            alive &= ~m
        lang = np.full(n, None, dtype=object)
        lang_score = np.full(n, np.nan, dtype=np.float64)
        idx = np.flatnonzero(alive)
        if len(idx) and self.languages:
            langs, scores = langid.predict(caption.take(pa.array(idx)), self.langid_model,
                                           self.langid_max_chars, self.language_aliases)
            lang[idx], lang_score[idx] = langs, scores
            ok = np.isin(langs, list(self.languages))
            if self.min_lang_score is not None:
                ok &= scores >= self.min_lang_score
            lang_fail = np.zeros(n, dtype=bool)
            lang_fail[idx] = ~ok
            fails["language"] = lang_fail

        reason, reasons = _reasons(fails, n)
        out = t.drop_columns(["_meta_bad"])
        return out.append_column("caption", caption) \
            .append_column("lang", pa.array(lang, pa.string())) \
            .append_column("lang_score", pa.array(lang_score, pa.float64(), from_pandas=True)) \
            .append_column("reason", reason).append_column("reasons", reasons)


def _reasons(fails: dict[str, np.ndarray], n: int):
    names = [r for r in MAP_RULES if r in fails]
    if not names:
        return pa.nulls(n, pa.string()), pa.array([[] for _ in range(n)], pa.list_(pa.string()))
    stack = np.stack([fails[r] for r in names])            # (rules, rows), in rule order
    rows, rule_idx = np.nonzero(stack.T)                    # row-major: each row's reasons in rule order
    counts = stack.sum(axis=0)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    values = pa.array(np.array(names, dtype=object)[rule_idx] if len(rule_idx) else [], pa.string())
    reasons = pa.ListArray.from_arrays(pa.array(offsets), values)
    any_fail = counts > 0
    first = np.array(names, dtype=object)[np.argmax(stack, axis=0)]
    reason = pa.array(np.where(any_fail, first, None), pa.string())
    return reason, reasons
