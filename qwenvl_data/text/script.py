"""Character-level caption checks (rules 7–9): emoji, script, length in units. All RE2, vectorised."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# Emoji: Emoji_Presentation and pictograph blocks, regional-indicator flags, keycaps' U+20E3, VS-16 (U+FE0F).
EMOJI = (r"[\x{1F000}-\x{1FAFF}\x{2600}-\x{27BF}\x{2B00}-\x{2BFF}\x{2300}-\x{23FF}\x{1F1E6}-\x{1F1FF}"
         r"\x{FE0F}\x{20E3}\x{E0020}-\x{E007F}\x{3030}\x{303D}\x{3297}\x{3299}]")

# Allowed: ASCII printable, Latin-1 Supplement (printable part), General Punctuation, CJK Symbols and
# Punctuation, CJK Unified Ideographs and Extension A, Halfwidth and Fullwidth Forms.
ALLOWED = (r"\x{0020}-\x{007E}\x{00A0}-\x{00FF}\x{2000}-\x{206F}\x{3000}-\x{303F}"
           r"\x{3400}-\x{4DBF}\x{4E00}-\x{9FFF}\x{FF00}-\x{FFEF}")
NOT_ALLOWED = f"[^{ALLOWED}]"

CJK_IDEOGRAPH = r"[\x{3400}-\x{4DBF}\x{4E00}-\x{9FFF}]"
# One match per unit: a single ideograph, or a run of anything that is neither whitespace nor ideograph.
UNIT = r"[\x{3400}-\x{4DBF}\x{4E00}-\x{9FFF}]|[^\s\x{3400}-\x{4DBF}\x{4E00}-\x{9FFF}]+"


def has_emoji(s: pa.Array) -> pa.Array:
    return pc.fill_null(pc.match_substring_regex(s, EMOJI), False)


def has_foreign_script(s: pa.Array) -> pa.Array:
    return pc.fill_null(pc.match_substring_regex(s, NOT_ALLOWED), False)


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
