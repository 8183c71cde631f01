"""Character-level caption checks: emoji, script, length in units, and the script counts the language
decision starts from. All RE2, vectorised.

The script rule's allowed set is configured (configs/filter.yaml `script.allowed`, named ranges of code
points): it is what English and Chinese text are written with, GB2312's symbol rows included, so that
℃ ① Ⅱ ■ ™ ─ ・ and tone-marked pinyin keep their caption while kana, hangul, Cyrillic, Arabic, Thai, ...
still drop it.
"""
from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError

# Emoji: Emoji_Presentation and pictograph blocks, regional-indicator flags, keycaps' U+20E3, VS-16
# (U+FE0F). Carved out of Misc Symbols / Dingbats: the text symbols of GB2312 row 1 and Chinese lists
# (★ ☆ U+2605-2606, ♀ ♂ U+2640/2642, ❶-➓ U+2776-2793), which have no emoji presentation by default.
EMOJI = (r"[\x{1F000}-\x{1FAFF}\x{2600}-\x{2604}\x{2607}-\x{263F}\x{2641}\x{2643}-\x{2775}\x{2794}-\x{27BF}"
         r"\x{2B00}-\x{2BFF}\x{2300}-\x{23FF}\x{1F1E6}-\x{1F1FF}"
         r"\x{FE0F}\x{20E3}\x{E0020}-\x{E007F}\x{3030}\x{303D}\x{3297}\x{3299}]")

# Han ideographs (Unified, Ext. A, compatibility ideographs, Ext. B-H) and the radicals that PDF/web
# extraction sometimes puts in their place.
HAN = r"\x{2E80}-\x{2FDF}\x{3400}-\x{4DBF}\x{4E00}-\x{9FFF}\x{F900}-\x{FAFF}\x{20000}-\x{3134F}"
CJK_IDEOGRAPH = f"[{HAN}]"
# Latin letters: ASCII, Latin-1 letters, Latin Extended-A/B (pinyin tone marks live there).
LATIN = r"A-Za-z\x{00C0}-\x{00D6}\x{00D8}-\x{00F6}\x{00F8}-\x{024F}"
LATIN_LETTER = f"[{LATIN}]"
# Letters of any script other than Latin and Han (Greek in a Latin caption, say): the language model decides.
OTHER_LETTER = rf"[^\P{{L}}{LATIN}{HAN}]"
# One match per unit: a single ideograph, or a run of anything that is neither whitespace nor ideograph.
UNIT = f"[{HAN}]|[^\\s{HAN}]+"

_RANGE = re.compile(r"^U\+([0-9A-Fa-f]{4,6})(?:-U\+([0-9A-Fa-f]{4,6}))?$")


def allowed_class(ranges: dict) -> str:
    """{name: "U+XXXX-U+YYYY" or [..]} from the config -> the body of an RE2 character class."""
    parts = []
    for name, spec in (ranges or {}).items():
        for item in [spec] if isinstance(spec, str) else (spec or []):
            m = _RANGE.match(str(item).strip())
            if not m:
                raise UsageError(f"filter.script.allowed.{name}: {item!r} is not a code point range "
                                 f"like 'U+0020-U+007E' or 'U+30FB'")
            lo, hi = m.group(1), m.group(2) or m.group(1)
            if int(lo, 16) > int(hi, 16):
                raise UsageError(f"filter.script.allowed.{name}: {item!r} runs backwards")
            parts.append(rf"\x{{{lo}}}-\x{{{hi}}}")
    if not parts:
        raise UsageError("filter.script.allowed must name at least one range")
    return "".join(parts)


def has_emoji(s: pa.Array) -> pa.Array:
    return pc.fill_null(pc.match_substring_regex(s, EMOJI), False)


def has_foreign_script(s: pa.Array, allowed: str) -> pa.Array:
    """True where a caption holds a character outside the allowed class body `allowed`."""
    return pc.fill_null(pc.match_substring_regex(s, f"[^{allowed}]"), False)


def count_units(s: pa.Array) -> pa.Array:
    """Units: each CJK ideograph counts one; each whitespace-separated run of other text counts one.
    Captions are cleaned (single spaces, trimmed), so a caption without ideographs has spaces + 1 units;
    only captions holding ideographs pay for the regex count."""
    if isinstance(s, pa.ChunkedArray):
        s = s.combine_chunks()
    units = pc.add(pc.count_substring(s, " "), pc.if_else(pc.greater(pc.utf8_length(s), 0), 1, 0))
    cjk = pc.fill_null(pc.match_substring_regex(s, CJK_IDEOGRAPH), False)
    idx = pc.indices_nonzero(cjk)
    if len(idx):
        exact = pc.count_substring_regex(s.take(idx), UNIT)
        units = pc.replace_with_mask(units, cjk, exact.cast(units.type))
    return pc.fill_null(units, 0)
