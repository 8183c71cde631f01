"""The filter's settings (configs/filter.yaml `filter:`), checked and built by keyword.

Every key is checked for its type and range before use, so that `languages: en` (a string, not a list) or
`min_units: -3` is a one-line UsageError naming the key instead of a silently different filter, and a
misspelled key gets a "did you mean". Keys renamed since earlier versions say what they are now.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from typing import Any

from .errors import UsageError
from .text.clean import Cleaner
from .text.junk import JunkRule
from .text.language import LanguageDecision
from .text.script import allowed_class

NUM = (int, float)
# key: (allowed types, minimum or None, maximum or None); None in the types means the key may be null
TOP = {
    "max_aspect_ratio": (NUM + (None,), 1.0, None),
    "min_image_side": (NUM + (None,), 0, None),
    "max_image_side_value": (NUM, 1, 2**53),
    "special_tag_pattern": ((str, None), None, None),
    "clean": ((dict, None), None, None),
    "script": ((dict,), None, None),
    "min_units": ((int, None), 0, None),
    "max_units": ((int, None), 1, None),
    "placeholder_text": ((dict, None), None, None),
    "languages": ((list, tuple), None, None),
    "language": ((dict,), None, None),
    "source_order": ((list, tuple), None, None),
}
LANGUAGE = {
    "model": ((str, None), None, None),
    "max_chars": ((int,), 1, 100_000),
    "min_label_score": (NUM, 0, 1),
    "min_score": (NUM, 0, 1),
    "plain_min_score": (NUM, 0, 1),
    "plain_min_score_listed": (NUM, 0, 1),
    "lexicon": ((str, None), None, None),
    "lexicon_extra": ((list, tuple), None, None),
    "lexicon_min_share": (NUM, 0, 1),
    "short_max_words": ((int,), 0, None),
    "short_min_score_alone": (NUM, 0, 1),
    "short_min_lexicon_share": (NUM, 0, 1),
    "english_share": (NUM + (None,), 0, 1),
    "english_share_min_words": ((int,), 1, None),
    "foreign_lexicon": ((list, tuple, None), None, None),
    "foreign_min_zipf": (NUM, 3, 9),
    "foreign_margin": (NUM, 0, 9),
    "foreign_min_words": ((int,), 1, None),
    "foreign_unknown": ((bool, None), None, None),
    "loan_margin": (NUM + (None,), 0, 9),
    "names_neutral": ((bool, None), None, None),
    "compound_min_part": ((int, None), 1, None),
    "foreign_rare_max_en": ((float, int, None), 0, 9),
    "share_needs_english_word": ((bool,), None, None),
    "lowercase": ((str,), None, None),
    "han_labels": ((list, tuple), None, None),
    "han_only_is_zh": ((bool,), None, None),
    "mixed_min_han": ((int,), 1, None),
    "mixed_min_han_share": (NUM, 0, 1),
    "japanese_kanji": ((list, tuple, None), None, None),
    "japanese_kanji_min": ((int,), 1, None),
    "japanese_kanji_likely": ((list, tuple, None), None, None),
    "japanese_likely_min_score": (NUM, 0, 1),
    "english_words": ((list, tuple, None), None, None),
    "foreign_words": ((list, tuple, None), None, None),
}
PLACEHOLDER = {
    "placeholders": ((list, tuple, None), None, None),
    "picture_words": ((list, tuple, None), None, None),
    "page_words": ((list, tuple, None), None, None),
    "status_words": ((list, tuple, None), None, None),
    "min_items": ((int,), 0, None),
    "max_repeat_share": (NUM, 0, 1),
    "min_tag_items": ((int,), 1, None),
    "max_tag_words": ((int,), 1, None),
    "max_unique_share": (NUM, 0, 1),
    "max_word_share": (NUM, 0, 1),
}
CLEAN = {
    k: ((bool,), None, None)
    for k in ("repair", "html_entities", "html_tags", "controls", "repeated_punctuation", "whitespace")
} | {"patterns": ((dict, None), None, None)}
RENAMED = {
    "min_lang_score": "language.min_score",
    "langid_model": "language.model",
    "langid_max_chars": "language.max_chars",
    "language_aliases": "language.han_labels",
    "batch_rows": "nothing (removed: the engines read one parquet row group per work unit)",
}


def check_re2(pattern: str, where: str) -> str:
    """A pattern the filter hands to RE2 (pyarrow.compute): invalid ones are a UsageError now, not a crash later."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.match_substring_regex(pa.array([""], pa.string()), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise UsageError(f"{where}: {pattern!r} is not a valid RE2 pattern ({str(e).splitlines()[0][:120]})") from None
    return pattern


def _type_name(types) -> str:
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true/false",
        dict: "a mapping",
        list: "a list",
        tuple: "a list",
        None: "null",
    }
    return " or ".join(dict.fromkeys(names[t] for t in types))


def check_section(cfg, spec: dict, where: str) -> dict:
    """`cfg` checked against `spec`; returns it (a dict). Raises UsageError on the first bad key."""
    if not isinstance(cfg, dict):
        raise UsageError(f"{where} must be a mapping, got {type(cfg).__name__}")
    for key, value in cfg.items():
        if key not in spec:
            if where == "filter" and key in RENAMED:
                raise UsageError(f"filter.{key} is now filter.{RENAMED[key]}")
            close = difflib.get_close_matches(str(key), list(spec), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(spec))})"
            raise UsageError(f"{where}.{key}: unknown setting{hint}")
        types, lo, hi = spec[key]
        ok = (value is None and None in types) or any(
            t is not None and isinstance(value, t) and not (t in (int, float) and isinstance(value, bool))
            for t in types
        )
        if not ok:
            raise UsageError(f"{where}.{key} must be {_type_name(types)}, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value != value or (lo is not None and value < lo) or (hi is not None and value > hi):
                raise UsageError(
                    f"{where}.{key} = {value!r} is out of range "
                    f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
                )
        if isinstance(value, (list, tuple)) and not all(isinstance(v, str) for v in value):
            raise UsageError(f"{where}.{key} must be a list of strings, got {value!r}")
    return cfg


@dataclass(frozen=True)
class FilterSettings:
    max_aspect_ratio: float | None
    min_image_side: float | None
    max_image_side_value: float
    special_tag_pattern: str | None
    cleaner: Cleaner
    script_allowed: str
    min_units: int | None
    max_units: int | None
    junk: JunkRule | None
    language: LanguageDecision | None
    source_order: tuple

    @classmethod
    def from_config(cls, cfg: dict) -> FilterSettings:
        check_section(cfg, TOP, "filter")
        clean = check_section(cfg.get("clean") or {}, CLEAN, "filter.clean")
        for name, p in (clean.get("patterns") or {}).items():
            if p is not None and not (
                isinstance(p, dict)
                and isinstance(p.get("regex"), str)
                and isinstance(p.get("replace", " "), str)
                and isinstance(p.get("hint", ""), (str, type(None)))
                and not set(p) - {"regex", "replace", "hint"}
            ):
                raise UsageError(
                    f"filter.clean.patterns.{name} must be {{regex: ..., replace: ..., hint: ...}} or null, got {p!r}"
                )
        cleaner = Cleaner.from_config(clean)
        for name, regex, _, hint in cleaner.patterns:
            check_re2(regex, f"filter.clean.patterns.{name}")
            if hint:
                check_re2(hint, f"filter.clean.patterns.{name}.hint")
        if cfg.get("special_tag_pattern"):
            check_re2(cfg["special_tag_pattern"], "filter.special_tag_pattern")
        script = cfg.get("script") or {}
        if set(script) - {"allowed"}:
            raise UsageError(f"filter.script: unknown settings {sorted(set(script) - {'allowed'})} (known: allowed)")
        junk_cfg = cfg.get("placeholder_text")
        junk = (
            JunkRule.from_config(check_section(junk_cfg, PLACEHOLDER, "filter.placeholder_text"))
            if junk_cfg is not None
            else None
        )
        for p in junk.placeholders if junk else ():
            check_re2(p, "filter.placeholder_text.placeholders")
        for p in (junk.picture_words + junk.status_words + junk.page_words) if junk else ():
            check_re2(p, "filter.placeholder_text.picture_words/status_words/page_words")
        lang_cfg = check_section(cfg.get("language") or {}, LANGUAGE, "filter.language")
        if lang_cfg.get("lowercase", "mostly_upper") not in ("mostly_upper", "always", "never"):
            raise UsageError(
                f"filter.language.lowercase must be mostly_upper, always or never, got {lang_cfg['lowercase']!r}"
            )
        likely = lang_cfg.get("japanese_kanji_likely")
        if likely is not None and (len(likely) < 2 or not all(isinstance(x, str) for x in likely)):
            raise UsageError(
                "filter.language.japanese_kanji_likely must name at least two character sets (Japanese's, then "
                f"the Chinese ones: [shift_jis, gb2312, cp950]), got {likely!r}"
            )
        languages = tuple(cfg.get("languages") or ())
        known = {f.name for f in fields(LanguageDecision)}
        lang_kw: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in lang_cfg.items() if k in known}
        language = LanguageDecision(languages=languages, **lang_kw) if languages else None
        if (
            cfg.get("min_units") is not None
            and cfg.get("max_units") is not None
            and cfg["min_units"] > cfg["max_units"]
        ):
            raise UsageError(f"filter.min_units ({cfg['min_units']}) is above filter.max_units ({cfg['max_units']})")
        return cls(
            max_aspect_ratio=cfg.get("max_aspect_ratio"),
            min_image_side=cfg.get("min_image_side"),
            max_image_side_value=float(cfg.get("max_image_side_value", 1_000_000)),
            special_tag_pattern=cfg.get("special_tag_pattern"),
            cleaner=cleaner,
            script_allowed=allowed_class(script.get("allowed") or {}),
            min_units=cfg.get("min_units"),
            max_units=cfg.get("max_units"),
            junk=junk,
            language=language,
            source_order=tuple(cfg.get("source_order") or ()),
        )
