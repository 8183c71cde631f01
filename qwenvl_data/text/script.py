"""Character-level caption checks: emoji, script, length in units, and the script counts the language
decision starts from. All RE2, vectorised.

The script rule's allowed set is configured (configs/filter.yaml `script.allowed`, named ranges of code
points): it is what English and Chinese text are written with, GB2312's symbol rows included, so that
℃ ① Ⅱ ■ ™ ─ ・ and tone-marked pinyin keep their caption while kana, hangul, Cyrillic, Arabic, Thai, ...
still drop it.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError

# Emoji: Emoji_Presentation and pictograph blocks, regional-indicator flags, keycaps' U+20E3, VS-16
# (U+FE0F). Carved out of Misc Symbols / Dingbats: the text symbols of GB2312 row 1 and Chinese lists
# (★ ☆ U+2605-2606, ♀ ♂ U+2640/2642, ❶-➓ U+2776-2793), which have no emoji presentation by default.
EMOJI = (
    r"[\x{1F000}-\x{1FAFF}\x{2600}-\x{2604}\x{2607}-\x{263F}\x{2641}\x{2643}-\x{2775}\x{2794}-\x{27BF}"
    r"\x{2B00}-\x{2BFF}\x{2300}-\x{23FF}\x{1F1E6}-\x{1F1FF}"
    r"\x{FE0F}\x{20E3}\x{E0020}-\x{E007F}\x{3030}\x{303D}\x{3297}\x{3299}]"
)

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


@functools.lru_cache(maxsize=4)
def charset_only_class(charset: str, not_in: tuple) -> str:
    """The CJK Unified ideographs (U+4E00-U+9FFF) that `charset` encodes and none of `not_in` does, as the
    body of an RE2 character class (runs of code points as ranges). With shift_jis and the Chinese standard
    sets (gb2312, big5hkscs): the kanji only Japanese writes (桜 満 産 歩 黒), which tell a caption
    without kana from Chinese."""
    import codecs

    def encodes(ch: str, enc: str) -> bool:
        try:
            ch.encode(enc)
            return True
        except UnicodeEncodeError:
            return False

    for enc in (charset, *not_in):
        try:
            codecs.lookup(enc)
        except LookupError:
            raise UsageError(f"unknown character set {enc!r}") from None
    cps = [c for c in range(0x4E00, 0xA000) if encodes(chr(c), charset) and not any(encodes(chr(c), e) for e in not_in)]
    parts, start = [], None
    for i, c in enumerate(cps):
        if start is None:
            start = c
        if i + 1 == len(cps) or cps[i + 1] != c + 1:
            parts.append(rf"\x{{{start:04X}}}" + (rf"-\x{{{c:04X}}}" if c != start else ""))
            start = None
    return "".join(parts)


def allowed_class(ranges: dict) -> str:
    """{name: "U+XXXX-U+YYYY" or [..]} from the config -> the body of an RE2 character class."""
    parts = []
    for name, spec in (ranges or {}).items():
        for item in [spec] if isinstance(spec, str) else (spec or []):
            m = _RANGE.match(str(item).strip())
            if not m:
                raise UsageError(
                    f"filter.script.allowed.{name}: {item!r} is not a code point range like 'U+0020-U+007E' or 'U+30FB'"
                )
            lo, hi = m.group(1), m.group(2) or m.group(1)
            if int(lo, 16) > int(hi, 16):
                raise UsageError(f"filter.script.allowed.{name}: {item!r} runs backwards")
            parts.append(rf"\x{{{lo}}}-\x{{{hi}}}")
    if not parts:
        raise UsageError("filter.script.allowed must name at least one range")
    return "".join(parts)


def _non_ascii(s: pa.Array, regex: str) -> np.ndarray:
    """match_substring_regex, run only on the rows that are not pure ASCII (a fast byte check): emoji,
    foreign scripts and ideographs are never ASCII. The allowed set always holds printable ASCII."""
    out = np.zeros(len(s), dtype=bool)
    rows = np.flatnonzero(~pc.fill_null(pc.string_is_ascii(s), True).to_numpy(zero_copy_only=False))
    if len(rows):
        out[rows] = pc.fill_null(pc.match_substring_regex(s.take(pa.array(rows)), regex), False).to_numpy(
            zero_copy_only=False
        )
    return out


def has_emoji(s: pa.Array) -> np.ndarray:
    return _non_ascii(s, EMOJI)


def has_foreign_script(s: pa.Array, allowed: str, ascii_is_allowed: bool = False) -> np.ndarray:
    """True where a caption holds a character outside the allowed class body `allowed`.
    `ascii_is_allowed`: no ASCII character can fail (the set holds printable ASCII and cleaning turned
    every ASCII control character into a space), so pure-ASCII rows are not searched."""
    if ascii_is_allowed:
        return _non_ascii(s, f"[^{allowed}]")
    return pc.fill_null(pc.match_substring_regex(s, f"[^{allowed}]"), False).to_numpy(zero_copy_only=False)


@functools.lru_cache(maxsize=8)
def allows_printable_ascii(allowed: str) -> bool:
    return not pc.match_substring_regex(pa.array(["".join(map(chr, range(0x20, 0x7F)))]), f"[^{allowed}]")[0].as_py()


def count_units(s: pa.Array, spaces: pa.Array | None = None) -> pa.Array:
    """Units: each CJK ideograph counts one; each whitespace-separated run of other text counts one.
    Captions are cleaned (single spaces, trimmed), so a caption without ideographs has spaces + 1 units
    (`spaces`: the count of " " per caption, when the caller has it). Captions holding ideographs: the
    ideographs are counted by length (removing them all is one match per run, not one per character), the
    rest of the text by its words."""
    if isinstance(s, pa.ChunkedArray):
        s = s.combine_chunks()
    spaces = pc.count_substring(s, " ") if spaces is None else spaces
    units = pc.add(spaces, pc.if_else(pc.greater(pc.binary_length(s), 0), 1, 0))
    cjk = _non_ascii(s, CJK_IDEOGRAPH)
    if cjk.any():
        sub = s.filter(pa.array(cjk))
        ideographs = pc.subtract(pc.utf8_length(sub), pc.utf8_length(pc.replace_substring_regex(sub, f"[{HAN}]+", "")))
        rest = pc.utf8_trim_whitespace(pc.replace_substring_regex(sub, f"[{HAN}]+", " "))
        # split on whitespace runs: an empty string still gives one (empty) piece
        words = pc.if_else(pc.equal(pc.binary_length(rest), 0), 0, pc.list_value_length(pc.utf8_split_whitespace(rest)))
        units = pc.replace_with_mask(units, pa.array(cjk), pc.add(ideographs, words).cast(units.type))
    return pc.fill_null(units, 0)
