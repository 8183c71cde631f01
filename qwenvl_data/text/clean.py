"""Caption cleaning: repair what can be repaired, remove markup and noise, keep every word of text.

Steps, in order (each can be switched off in configs/filter.yaml `clean:`):
1. `repair`: mojibake (UTF-8 read as cp1252/latin-1) and C1 control bytes (`Children\\x92s` ->
   `Children’s`) fixed with ftfy, only on rows that show the signs of it.
2. `html_entities`: entities decoded until stable (`&amp;amp;` -> `&`), *before* tags are stripped, so
   that an escaped tag (`&lt;p&gt;`) is removed as a tag instead of being left in the caption.
3. `html_tags`: tags and comments -> a space.
4. `controls`: C0/C1 control characters -> space; zero-width, bidi-override and soft-hyphen characters
   removed (they are invisible and would split words).
5. `patterns`: named RE2 patterns from the config (URL, e-mail, image file names, ...); a pattern's
   `hint` (an RE2 pattern that matches wherever the pattern could) limits it to the rows that need it.
6. `repeated_punctuation`: a run of 3+ of the same punctuation mark (ASCII, or one Chinese text repeats)
   collapses to one.
7. `whitespace`: every Unicode space (U+00A0, U+2000-U+200A, U+202F, U+205F, U+3000, ...) and
   whitespace run -> one space, trimmed.

Vectorised with pyarrow.compute (RE2). What RE2 cannot do (entities, ftfy, same-character runs) runs in
Python on just the rows a vectorised pre-filter flags, a small minority of real captions.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..vocab import IMAGE_EXTS

HTML_TAG = r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>|<!--.*?-->"
ENTITY = r"&(?:#[0-9]{1,7};?|#[xX][0-9a-fA-F]{1,6};?|[A-Za-z][A-Za-z0-9]{1,31};|(?:amp|lt|gt|quot|nbsp)\b)"
# Signs of mojibake: a UTF-8 lead byte read as cp1252/latin-1 followed by a continuation byte read the same
# way, or any C1 control character (cp1252 punctuation decoded as latin-1).
_CP1252_CONT = (
    r"\x{80}-\x{BF}\x{20AC}\x{201A}\x{0192}\x{201E}\x{2026}\x{2020}\x{2021}\x{02C6}\x{2030}\x{0160}"
    r"\x{2039}\x{0152}\x{017D}\x{2018}\x{2019}\x{201C}\x{201D}\x{2022}\x{2013}\x{2014}\x{02DC}"
    r"\x{2122}\x{0161}\x{203A}\x{0153}\x{017E}\x{0178}"
)
MOJIBAKE_PREFILTER = rf"[\x{{C2}}-\x{{F4}}][{_CP1252_CONT}]|[\x{{80}}-\x{{9F}}]"
# Control characters -> space; invisible format characters -> nothing.
CONTROLS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x{80}-\x{9F}]"
INVISIBLE = r"[\x{00AD}\x{200B}-\x{200D}\x{2060}\x{FEFF}\x{202A}-\x{202E}\x{2066}-\x{2069}\x{200E}\x{200F}]"
# Runs of 2+ whitespace, or a single non-ASCII-space whitespace; a lone " " is left alone, which makes
# this pass ~8x faster than replacing every whitespace run (most of them are already a single space).
_WS = r"\s\x{00A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{0085}"
WHITESPACE_RUN = (
    rf"[{_WS}]{{2,}}|[\t\n\r\x0b\x0c\x{{00A0}}\x{{1680}}\x{{2000}}-\x{{200A}}\x{{2028}}\x{{2029}}"
    rf"\x{{202F}}\x{{205F}}\x{{3000}}\x{{0085}}]"
)
# One pass finds the rows steps 1-4 could change (markup, entities, controls, invisible characters,
# mojibake signs); those steps then run on just these rows.
ODD = (
    rf"[<&\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x{{80}}-\x{{9F}}\x{{AD}}\x{{200B}}-\x{{200F}}\x{{202A}}-\x{{202E}}"
    rf"\x{{2060}}-\x{{2069}}\x{{FEFF}}]|{MOJIBAKE_PREFILTER}"
)
# The rows whose whitespace needs work: a run, a space other than " ", or a space at either end.
WHITESPACE_ODD = rf"{WHITESPACE_RUN}|^[{_WS}]|[{_WS}]$"
# Three of the same punctuation mark (RE2 has no backreference, so each mark is spelled out): ASCII
# punctuation and symbols, and the marks Chinese text repeats. Python then collapses the runs.
_MARKS = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" + "。！？，、；：…—～·・※★☆●○■□◆◇"
PUNCT_RUN_PREFILTER = "|".join(re.escape(c) * 3 for c in _MARKS)
_SAME_PUNCT_RUN = re.compile(r"([^\w\s])\1{2,}")
# `{IMAGE_EXTS}` in a configured pattern stands for the shared list of image extensions (vocab.py).
_PLACEHOLDERS = {"{IMAGE_EXTS}": "|".join(IMAGE_EXTS)}


def _unescape_all(t: str) -> str:
    for _ in range(4):  # &amp;amp;lt; needs three rounds; stop when nothing changes
        u = html.unescape(t)
        if u == t:
            break
        t = u
    return t


_COMMON = (
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&quot;", '"'),
    ("&#39;", "'"),
    ("&#039;", "'"),
    ("&apos;", "'"),
    ("&nbsp;", "\u00a0"),
    ("&amp;", "&"),
)


def _common_entities(s: pa.Array) -> pa.Array:
    """The entities alt text is full of, decoded with literal replacements until none is left (at most
    4 rounds: `&amp;amp;lt;` takes three)."""
    for _ in range(4):
        before = s
        for entity, char in _COMMON:
            s = pc.replace_substring(s, entity, char)
        if s.equals(before):
            break
    return s


def _ftfy_fix(t: str) -> str:
    import ftfy

    return (
        ftfy.fix_text(
            t,
            uncurl_quotes=False,
            fix_line_breaks=False,
            normalization="NFC",
            fix_latin_ligatures=False,
            fix_character_width=False,
            explain=False,
        )
        if hasattr(ftfy, "fix_text")
        else t
    )


@dataclass(frozen=True)
class Cleaner:
    repair: bool = True
    html_entities: bool = True
    html_tags: bool = True
    controls: bool = True
    patterns: tuple = ()  # ((name, regex, replacement, hint or None), ...)
    repeated_punctuation: bool = True
    whitespace: bool = True

    @classmethod
    def from_config(cls, cfg: dict) -> Cleaner:
        pats = []
        for name, p in (cfg.get("patterns") or {}).items():
            if p is None:
                continue
            regex = str(p["regex"])
            for k, v in _PLACEHOLDERS.items():
                regex = regex.replace(k, v)
            hint = p.get("hint")
            for k, v in _PLACEHOLDERS.items():
                hint = hint.replace(k, v) if hint else hint
            pats.append((name, regex, str(p.get("replace", " ")), hint))
        flags = {
            k: bool(cfg.get(k, True))
            for k in ("repair", "html_entities", "html_tags", "controls", "repeated_punctuation", "whitespace")
        }
        return cls(patterns=tuple(pats), **flags)

    def __call__(self, captions: pa.Array) -> pa.Array:
        """Every step on the rows one combined pre-filter flags (most captions need no cleaning at all);
        every step on every row when a configured pattern has no `hint`."""
        if all(hint for _, _, _, hint in self.patterns):
            alternatives = [ODD, WHITESPACE_ODD, PUNCT_RUN_PREFILTER] + [h for _, _, _, h in self.patterns]
            return _on_rows(captions, "|".join(f"(?:{a})" for a in alternatives), self._steps)
        return self._steps(captions)

    def _steps(self, captions: pa.Array) -> pa.Array:
        s = captions
        if self.repair or self.html_entities or self.html_tags or self.controls:
            s = _on_rows(s, ODD, self._markup)
        for regex, repl, hint in _merged(self.patterns):
            s = (
                _on_rows(s, hint, lambda x, r=regex, p=repl: pc.replace_substring_regex(x, r, p))
                if hint
                else pc.replace_substring_regex(s, regex, repl)
            )
        if self.repeated_punctuation:
            s = _python_fix(s, PUNCT_RUN_PREFILTER, lambda t: _SAME_PUNCT_RUN.sub(r"\1", t))
        if self.whitespace:
            s = _on_rows(s, WHITESPACE_ODD, _fold_whitespace)
        return s

    def _markup(self, s: pa.Array) -> pa.Array:
        """Steps 1-4 (repair, entities, tags, controls) on the rows that need them."""
        if self.repair:
            s = _python_fix(s, MOJIBAKE_PREFILTER, _ftfy_fix)
        if self.html_entities:
            s = _on_rows(s, ENTITY, _common_entities)  # the usual few, vectorised ...
            s = _python_fix(s, ENTITY, _unescape_all)  # ... and whatever is left, in Python
        if self.html_tags:
            s = pc.replace_substring_regex(s, HTML_TAG, " ")
        if self.controls:
            s = pc.replace_substring_regex(s, INVISIBLE, "")
            s = pc.replace_substring_regex(s, CONTROLS, " ")
        return s


def _fold_whitespace(s: pa.Array) -> pa.Array:
    s = pc.utf8_trim_whitespace(pc.replace_substring_regex(s, WHITESPACE_RUN, " "))
    return pc.utf8_trim(s, " ")  # utf8_trim_whitespace keeps U+3000 and friends at the ends


def _on_rows(s: pa.Array, prefilter: str, fn) -> pa.Array:
    """Apply the Arrow function `fn` only to the rows matching RE2 `prefilter`."""
    hit = pc.fill_null(pc.match_substring_regex(s, prefilter), False)
    n_hit = pc.sum(hit).as_py() or 0
    if n_hit == 0:
        return s
    if n_hit > len(s) // 2:
        return fn(s)
    return pc.replace_with_mask(s, hit, fn(s.filter(hit)))


def _merged(patterns) -> list[tuple[str, str, str | None]]:
    """Neighbouring patterns with the same replacement become one alternation: one pass instead of several.
    Their hints merge too (a pattern without a hint makes the merged pass run on every row)."""
    out: list[tuple[str, str, str | None]] = []
    for _name, regex, repl, hint in patterns:
        if out and out[-1][1] == repl:
            r, _, h = out[-1]
            out[-1] = (f"{r}|(?:{regex})", repl, f"{h}|(?:{hint})" if h and hint else None)
        else:
            out.append((f"(?:{regex})", repl, f"(?:{hint})" if hint else None))
    return out


def _python_fix(s: pa.Array, prefilter: str, fn) -> pa.Array:
    """Apply `fn` in Python only to the rows matching RE2 `prefilter`."""
    hit = pc.fill_null(pc.match_substring_regex(s, prefilter), False)
    idx = np.flatnonzero(hit.to_numpy(zero_copy_only=False))
    if len(idx) == 0:
        return s
    fixed = [fn(t) for t in s.take(pa.array(idx)).to_pylist()]
    out = s.to_pylist() if len(idx) > len(s) // 2 else None
    if out is not None:
        for i, t in zip(idx, fixed):
            out[i] = t
        return pa.array(out, pa.string())
    return pc.replace_with_mask(s, hit, pa.array(fixed, pa.string()))
