"""The pair rules of the Qwen-VL stage-1 recipe: one ordered list of named rules over Arrow tables.

`PIPELINE` below is the only place the order lives. Each rule is a function `(settings, batch) -> mask`
(True = the row fails), named by its reason; `FilterSettings.from_config` builds every setting from
configs/filter.yaml by keyword. To add a rule: write its function, add one `Rule(...)` line to
`PIPELINE`, and its settings to `FilterSettings` and configs/filter.yaml.

`PairRules.apply(table, layout)` takes normalised pair columns (sources.normalise) and returns them with
the cleaned `caption`, `lang`, `lang_score`, `reason` (the first rule failed, null when the row survives)
and `reasons` (every rule it fails; a `survivors_only` rule is asked only about rows that passed every
earlier rule, since it is the expensive kind). The cross-row rules `duplicate_uid` and `duplicate_url`
need every input and run in the reduce step (dedup.py, pipelines/filter_job.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .filter_settings import FilterSettings
from .sources import Layout
from .text.script import allows_printable_ascii, count_units, has_emoji, has_foreign_script
from .text.words import Words

URL_OK = r"^(?i)https?://[^\s/?#]+\S*$"


def _np(mask) -> np.ndarray:
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


@dataclass
class Batch:
    """What the rules see: the normalised table, its layout, and what earlier rules worked out."""

    settings: FilterSettings
    t: pa.Table
    layout: Layout
    alive: np.ndarray
    lang: np.ndarray = field(init=False)
    lang_score: np.ndarray = field(init=False)
    _caption: pa.Array | None = None
    _words: tuple | None = None  # (rows, Words of their captions), split once for the word rules
    _spaces: pa.Array | None = None

    def __post_init__(self):
        self.lang = np.full(self.t.num_rows, None, dtype=object)
        self.lang_score = np.full(self.t.num_rows, np.nan, dtype=np.float64)

    @property
    def spaces(self) -> pa.Array:
        """The number of " " in each cleaned caption (its words - 1), counted once for the rules."""
        if self._spaces is None:
            self._spaces = pc.count_substring(self.caption, " ")
        return self._spaces

    @property
    def caption(self) -> pa.Array:
        """The cleaned caption, made the first time a rule asks (cleaning drops nothing)."""
        if self._caption is None:
            raw = self.t["caption_raw"]
            self._caption = self.settings.cleaner(raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw)
        return self._caption


def bad_metadata(s: FilterSettings, b: Batch) -> np.ndarray:
    t = b.t
    bad = ~_np(pc.match_substring_regex(t["url"], URL_OK))
    bad |= ~_np(pc.match_substring_regex(t["caption_raw"], r"\S"))
    bad |= t["_meta_bad"].to_numpy(zero_copy_only=False)
    for side in (t["width"], t["height"]):
        v = side.to_numpy(zero_copy_only=False)  # float64, NaN where absent
        with np.errstate(invalid="ignore"):
            present = ~np.isnan(v)
            # sizes are cast to int64 later: only whole, positive, plausible numbers get that far
            bad |= present & ~((v > 0) & (v <= s.max_image_side_value) & (np.floor(v) == v))
    return bad


def _sized(b: Batch) -> np.ndarray:
    return _np(pc.and_(pc.greater(b.t["width"], 0), pc.greater(b.t["height"], 0)))


def aspect_ratio(s: FilterSettings, b: Batch):
    if s.max_aspect_ratio is None:
        return None
    w, h = b.t["width"], b.t["height"]
    ratio = pc.max_element_wise(pc.divide(w, h), pc.divide(h, w))
    return _sized(b) & _np(pc.greater(ratio, s.max_aspect_ratio))


def image_too_small(s: FilterSettings, b: Batch):
    if s.min_image_side is None:
        return None
    return _sized(b) & _np(pc.less(pc.min_element_wise(b.t["width"], b.t["height"]), s.min_image_side))


def clip_score(s: FilterSettings, b: Batch):
    """The source's own CLIP similarity, where it publishes one (threshold per source layout)."""
    if b.layout.score_threshold is None:
        return None
    return _np(pc.less(b.t["score"], b.layout.score_threshold))


def special_tags(s: FilterSettings, b: Batch):
    """On the raw caption: cleaning would erase <PERSON>."""
    if not (b.layout.special_tags and s.special_tag_pattern):
        return None
    return _np(pc.match_substring_regex(b.t["caption_raw"], s.special_tag_pattern))


def emoji(s: FilterSettings, b: Batch):
    return has_emoji(b.caption)


def script(s: FilterSettings, b: Batch):
    ascii_ok = s.cleaner.controls and s.cleaner.whitespace and allows_printable_ascii(s.script_allowed)
    return has_foreign_script(b.caption, s.script_allowed, ascii_ok)


def text_length(s: FilterSettings, b: Batch):
    units = count_units(b.caption, b.spaces)
    fail = np.zeros(b.t.num_rows, dtype=bool)
    if s.min_units is not None:
        fail |= _np(pc.less(units, s.min_units))
    if s.max_units is not None:
        fail |= _np(pc.greater(units, s.max_units))
    return fail


def _alive_words(b: Batch, idx: np.ndarray) -> Words:
    """The Words of captions `idx` (rows still alive), split the first time a rule asks."""
    if b._words is None:
        b._words = (idx, Words.of(b.caption.take(pa.array(idx))))
    have, words = b._words
    if len(have) == len(idx):  # the same rows
        return words
    return words.take(np.searchsorted(have, idx))  # rows alive now were alive then


def _on_alive(b: Batch, fn) -> np.ndarray:
    fail = np.zeros(b.t.num_rows, dtype=bool)
    idx = np.flatnonzero(b.alive)
    if len(idx):
        fail[idx] = fn(idx, b.caption.take(pa.array(idx)))
    return fail


def placeholder_text(s: FilterSettings, b: Batch):
    if s.junk is None:
        return None
    return _on_alive(
        b,
        lambda idx, cap: s.junk(cap, _alive_words(b, idx), b.spaces.take(pa.array(idx)).to_numpy(zero_copy_only=False)),
    )


def language(s: FilterSettings, b: Batch):
    if s.language is None:
        return None

    def decide(idx, cap):
        lang, score, ok = s.language.decide(cap, _alive_words(b, idx))
        b.lang[idx], b.lang_score[idx] = lang, score
        return ~ok

    return _on_alive(b, decide)


@dataclass(frozen=True)
class Rule:
    name: str
    check: Callable[[FilterSettings, Batch], np.ndarray | None]
    survivors_only: bool = False


PIPELINE: tuple[Rule, ...] = (
    Rule("bad_metadata", bad_metadata),
    Rule("aspect_ratio", aspect_ratio),
    Rule("image_too_small", image_too_small),
    Rule("clip_score", clip_score),
    Rule("special_tags", special_tags),
    Rule("emoji", emoji),
    Rule("script", script),
    Rule("text_length", text_length),
    Rule("placeholder_text", placeholder_text, survivors_only=True),
    Rule("language", language, survivors_only=True),
)
MAP_RULES = tuple(r.name for r in PIPELINE)
CROSS_ROW_RULES = ("duplicate_uid", "duplicate_url")  # the reduce step's, in this order
RULES = MAP_RULES + CROSS_ROW_RULES


@dataclass(frozen=True)
class PairRules:
    settings: FilterSettings

    @classmethod
    def from_config(cls, cfg: dict) -> PairRules:
        return cls(FilterSettings.from_config(cfg))

    def warm(self) -> None:
        """Load what the rules load lazily (the language model, the lexicon), e.g. before forking workers."""
        if self.settings.language is not None:
            self.settings.language.warm()

    def apply(self, t: pa.Table, layout: Layout) -> pa.Table:
        n = t.num_rows
        b = Batch(self.settings, t, layout, np.ones(n, dtype=bool))
        fails: dict[str, np.ndarray] = {}
        for rule in PIPELINE:
            if rule.survivors_only and not b.alive.any():
                continue
            mask = rule.check(self.settings, b)
            if mask is None:
                continue
            fails[rule.name] = mask
            b.alive &= ~mask
        reason, reasons = _reasons(fails, n)
        out = t.drop_columns(["_meta_bad"])
        return (
            out.append_column("caption", b.caption)
            .append_column("lang", pa.array(b.lang, pa.string()))
            .append_column("lang_score", pa.array(b.lang_score, pa.float64(), from_pandas=True))
            .append_column("reason", reason)
            .append_column("reasons", reasons)
        )


def _reasons(fails: dict[str, np.ndarray], n: int):
    names = [r for r in MAP_RULES if r in fails]
    if not names:
        return pa.nulls(n, pa.string()), pa.array([[] for _ in range(n)], pa.list_(pa.string()))
    stack = np.stack([fails[r] for r in names])  # (rules, rows), in rule order
    rows, rule_idx = np.nonzero(stack.T)  # row-major: each row's reasons in rule order
    counts = stack.sum(axis=0)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    values = pa.array(np.array(names, dtype=object)[rule_idx] if len(rule_idx) else [], pa.string())
    reasons = pa.ListArray.from_arrays(pa.array(offsets), values)
    any_fail = counts > 0
    first = np.array(names, dtype=object)[np.argmax(stack, axis=0)]
    reason = pa.array(np.where(any_fail, first, None), pa.string())
    return reason, reasons
