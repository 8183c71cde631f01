"""Junk alt text (`placeholder_text`): placeholder captions and keyword-stuffed SEO lists, English and Chinese.

- Placeholders: the whole cleaned caption is one of the configured phrases (`Image not found`,
  `点击查看大图`, `暂无图片`, ...), give or take case, punctuation, spaces and a trailing number; or it is
  made only of words about the picture as an object on a page (`page_words`: click, enlarge, of, loading,
  商品, 上传中, ...), numbers and punctuation, with at least one word for a picture (`picture_words`:
  image, screenshot, 图片, 主图, ...) or a word of a loading status (`status_words`: loading, failed, error,
  加载, 失败, 暂无, ...): `Image 1 of 5`, `Screenshot 2023-05-12 at 10.41.33`, `产品主图`, `Failed to load`,
  `加载失败`, `正在加载，请稍候`. A sentence that merely holds such a word (`码头正在加载货物`) has other words.
  The configured phrases also cover a device's date-time name (`WhatsApp Image 2021-07-09 at 21.44.10`) and
  a credit line alone (`新华社记者 摄`, `Photo by Jane Doe`).
- Keyword lists: at least `min_items` items split by commas, pipes, slashes, Chinese enumeration commas or
  spaces (Chinese), and either (a) the items repeat words: one word (a Han bigram for Chinese) occurs in
  at least `max_repeat_share` of the items; or (b) the caption is only a tag list: `min_tag_items`+
  separated items, none longer than `max_tag_words` words, and no English function word or Chinese
  particle that a sentence would hold; or (c) 12+ words of which fewer than `max_unique_share` differ,
  or 8+ words of which one content word makes `max_word_share`.
Placeholders are one RE2 match; the keyword test runs in Python on the rows a vectorised count flags.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .script import CJK_IDEOGRAPH
from .words import Words

_SEP = r"[,，、|｜/;；]"
_SEP_RE = re.compile(r"\s*(?:[,，、|｜/;；]|\s[-–—·•]\s)\s*")
_HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_WORD_RE = re.compile(r"[A-Za-z0-9']+|[\u3400-\u4dbf\u4e00-\u9fff]")
_SENTENCE_EN = re.compile(r"(?i)\b(?:the|with|of|is|are|on|in|at|and|a|an|to|for|from|by)\b")
_FUNCTION_ARR = pa.array("the and with of for from to in on at by an is are or your our this that".split())
_SENTENCE_ZH = re.compile(r"[的了在是和与着把被]")


# English inflections stripped from words of 5+ letters when repeats are counted by stem (roofing, roofers -> roof)
_ENDING = r"^([a-z]{3,}?)(?:ings|ing|ers|er|es|s)$"


def _han_bigrams(item: str) -> set[str]:
    han = re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff]+", item)
    return {run[i : i + 2] for run in han for i in range(max(len(run) - 1, 0))}


@dataclass(frozen=True)
class JunkRule:
    placeholders: tuple = ()
    picture_words: tuple = ()
    page_words: tuple = ()
    status_words: tuple = ()
    min_items: int = 5
    max_repeat_share: float = 0.5
    min_tag_items: int = 8
    max_tag_words: int = 3
    max_unique_share: float = 0.6
    max_word_share: float = 0.35

    @classmethod
    def from_config(cls, cfg: dict) -> JunkRule:
        phrases = tuple(str(p) for p in (cfg.get("placeholders") or ()))
        pictures = tuple(str(p) for p in (cfg.get("picture_words") or ()))
        page = tuple(str(p) for p in (cfg.get("page_words") or ()))
        status = tuple(str(p) for p in (cfg.get("status_words") or ()))
        kw = {
            k: cfg[k]
            for k in (
                "min_items",
                "max_repeat_share",
                "min_tag_items",
                "max_tag_words",
                "max_unique_share",
                "max_word_share",
            )
            if k in cfg
        }
        return cls(placeholders=phrases, picture_words=pictures, page_words=page, status_words=status, **kw)

    def placeholder_regex(self) -> str | None:
        """One RE2 pattern for both placeholder tests: a configured phrase, or page words around a picture word
        or a status word."""
        alts = [f"(?:{p})" for p in self.placeholders]
        if self.picture_words or self.status_words:
            pic = "|".join(self.picture_words + self.status_words)
            any_ = "|".join(self.picture_words + self.status_words + self.page_words)
            sep = r"[\p{P}\s\d]*"
            alts.append(f"(?:(?:{any_}){sep})*(?:{pic})(?:{sep}(?:{any_}))*")
        if not alts:
            return None
        return rf"(?i)^[\p{{P}}\s]*(?:{'|'.join(alts)})[\p{{P}}\s\d]*$"

    def __call__(self, s: pa.Array, words: Words | None = None, spaces: np.ndarray | None = None) -> np.ndarray:
        """True for each junk caption of `s`; `words`, `spaces`: its Words and " " counts, when a caller
        has them already."""
        n = len(s)
        junk = np.zeros(n, dtype=bool)
        regex = self.placeholder_regex()
        if regex:
            junk |= pc.fill_null(pc.match_substring_regex(s, regex), False).to_numpy(zero_copy_only=False)
        if not self.min_items:
            return junk
        if spaces is None:
            spaces = pc.count_substring(s, " ").to_numpy(zero_copy_only=False)
        wordy = np.flatnonzero(~junk & (spaces >= 7))
        if len(wordy):
            junk[wordy] = self._stuffed((words or Words.of(s)).take(wordy))
        seps = pc.count_substring_regex(s, _SEP).to_numpy(zero_copy_only=False)
        han = np.zeros(n, dtype=bool)
        ascii_ = pc.fill_null(pc.string_is_ascii(s), True).to_numpy(zero_copy_only=False)  # no ideographs there
        maybe = np.flatnonzero(~junk & ~ascii_ & (seps + 1 < self.min_items) & (spaces + 1 >= self.min_items))
        if len(maybe):  # Chinese keywords separated by spaces
            han[maybe] = pc.fill_null(pc.match_substring_regex(s.take(pa.array(maybe)), CJK_IDEOGRAPH), False).to_numpy(
                zero_copy_only=False
            )
        listy = np.flatnonzero(~junk & ((seps + 1 >= self.min_items) | han))
        if len(listy):
            junk[listy] = [self._keyword_list(t) for t in s.take(pa.array(listy)).to_pylist()]
        return junk

    def _stuffed(self, w: Words) -> np.ndarray:
        """(c), vectorised: 12+ words with few different ones, or 8+ words one content word dominates
        (words of 2+ characters, numbers left out). A word is counted over its English forms (roof, roofing,
        roofs: one stem), in one pass over (caption, stem) pairs."""
        stems = pc.dictionary_encode(pc.replace_substring_regex(w.vocab, _ENDING, r"\1"))
        v = stems.dictionary
        w = Words(v, stems.indices.to_numpy(zero_copy_only=False).astype(np.int64)[w.code], w.row, w.n)
        real = pc.and_(pc.greater_equal(pc.utf8_length(v), 2), pc.invert(pc.match_substring_regex(v, r"^[0-9]+$")))
        real_np = real.to_numpy(zero_copy_only=False)
        content = real_np & ~pc.is_in(v, value_set=_FUNCTION_ARR).to_numpy(zero_copy_only=False)
        total, distinct, top = w.repeats(real_np, content)
        return ((total >= 12) & (distinct < self.max_unique_share * total)) | (
            (total >= 8) & (top >= 3) & (top >= self.max_word_share * total)
        )

    def _keyword_list(self, t: str) -> bool:
        items = [i for i in _SEP_RE.split(t) if i.strip()]
        if len(items) < self.min_items:
            if not _HAN_RE.search(t):
                return False
            items = [i for i in t.split(" ") if i]  # Chinese keywords separated by spaces
            if len(items) < self.min_items:
                return False
            return self._repeats(items)
        if self._repeats(items):
            return True
        if len(items) < self.min_tag_items:
            return False
        short = all(len(i.split()) <= self.max_tag_words and len(i) <= 4 * self.max_tag_words + 8 for i in items)
        return short and not _SENTENCE_EN.search(t) and not _SENTENCE_ZH.search(t)

    def _repeats(self, items: list[str]) -> bool:
        """One word (a Han bigram for Chinese) in at least `max_repeat_share` of the items, and in 3+."""
        counts: Counter = Counter()
        for item in items:
            keys = {w.lower() for w in _WORD_RE.findall(item) if not w.isdigit() and len(w) > 1}
            counts.update(keys | _han_bigrams(item))
        top = counts.most_common(1)[0][1] if counts else 0
        return top >= 3 and top >= self.max_repeat_share * len(items)
