"""The paper's filters for real (PDF, HTML) pages, each a snake_case reason counted in the funnel.

Order matters only for which reason a page that fails several is counted under: the first failing.
"""

from __future__ import annotations

import re

# Code point ranges a page must not contain (Qwen-VL keeps English and Chinese pages only).
RANGES = {
    "latin_extended_a": "\u0100-\u017f",
    "latin_extended_b": "\u0180-\u024f",
    "latin_extended_additional": "\u1e00-\u1eff",
    "latin_extended_cde": "\u2c60-\u2c7f\ua720-\ua7ff\uab30-\uab6f",
    "private_use_area": "\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd",
}


def compile_ranges(names) -> list[tuple[str, re.Pattern]]:
    return [(n, re.compile(f"[{RANGES[n]}]")) for n in names]


_MARKUP = re.compile(r"[<>]")


def page_reason(text: str, width: int, height: int, cfg: dict, ranges) -> str | None:
    """None when the page is kept, else the reason: image_too_small, too_few_chars, too_many_chars,
    the name of a forbidden character range, or markup_chars (a '<' or '>' in the text would read as
    a tag in the target; dropping just that line would teach the model to skip visible text)."""
    if min(width, height) < cfg["min_side"]:
        return "image_too_small"
    n = sum(1 for c in text if not c.isspace())
    if cfg.get("min_chars") is not None and n < cfg["min_chars"]:
        return "too_few_chars"
    if cfg.get("max_chars") is not None and n > cfg["max_chars"]:
        return "too_many_chars"
    for name, pattern in ranges:
        if pattern.search(text):
            return name
    if _MARKUP.search(text):
        return "markup_chars"
    return None
