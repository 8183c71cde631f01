"""The language decision for English + Chinese captions: script evidence first, fastText where needed.

A caption reaching this rule has passed the script rule, so it is written in Latin and/or Han (plus
symbols, and possibly Greek). Each caption takes one path (all settings: configs/filter.yaml `language:`):

- **Han only** (ideographs, no letters of another script): Chinese, decided by the script, score 1.0.
  lid.176 scatters short Chinese over zh/ja/wuu/yue; after the script rule removed every caption with
  kana there is nothing left for it to tell.
- **Mixed Han + Latin** (`iPhone 13 Pro Max 手机壳 透明 防摔`): Chinese when the ideographs are at least
  `mixed_min_han` and `mixed_min_han_share` of the units (ideographs + Latin words), score 1.0; otherwise
  the Latin part alone is judged as below (an English sentence quoting one character stays English).
- **Latin, clear English**: ASCII letters, at least one English function word (`english_words`) and none
  of the common function words of other Latin-script languages (`foreign_words`): English, score 1.0.
- **Latin, the rest**: fastText lid.176, top `k` labels, on the text lower-cased when it is mostly
  upper case (ALL-CAPS titles otherwise come out as zh/ja/it). Labels lid.176 gives Han text are
  ignored (the caption has none). English is accepted with p >= `min_score` on top. A *plain* caption
  (ASCII letters, none of `foreign_words`: short product titles and names, where lid.176 is unsure) that
  holds a word of the English caption lexicon (`lexicon` + `lexicon_extra`) needs less: English on top
  at p >= `plain_min_score`, or among the top k at p >= `plain_min_score_in_top_k` while no label
  reaches `min_score`, or among the top k at all when `lexicon_min_share` of its words are in the
  lexicon. A plain caption of at most `short_max_words` words without such a word needs
  `short_min_score_alone` (lid.176 calls short Italian or Turkish titles English at 0.5). Otherwise the
  top label is the caption's language (dropped unless listed).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import langid
from .script import CJK_IDEOGRAPH, HAN, LATIN, OTHER_LETTER

_LATIN_WORD = f"[{LATIN}]+"
_NON_ASCII_LETTER = r"[\x{00C0}-\x{00D6}\x{00D8}-\x{00F6}\x{00F8}-\x{024F}]"


def _word_regex(words) -> str:
    return r"(?i)(?:^|[^A-Za-z'])(?:" + "|".join(sorted(set(words))) + r")(?:$|[^A-Za-z'])"


def _extra_words(name: str) -> list[str]:
    if name == "faker:en_US":   # faker (a dependency) ships ~1,000 common English words
        try:
            from faker.providers.lorem.en_US import Provider
        except ImportError:
            return []
        return list(Provider.word_list)
    from ..errors import UsageError
    raise UsageError(f"filter.language.lexicon_extra: unknown word list {name!r} (known: faker:en_US)")


@functools.lru_cache(maxsize=8)
def lexicon_words(name: str, extra: tuple = (), exclude: tuple = ()) -> pa.Array:
    """The English caption lexicon: our file's words plus the extra lists, less its '-word' lines, the
    foreign function words and words of fewer than 3 letters."""
    path = resources.files("qwenvl_data.text").joinpath(name)
    lines = [w.strip().lower() for w in path.read_text(encoding="utf-8").splitlines()]
    words = {w for w in lines if w and w[0] not in "#-"}
    for src in extra:
        words |= {w.lower() for w in _extra_words(src)}
    drop = {w[1:] for w in lines if w.startswith("-")} | set(exclude)
    return pa.array(sorted(w for w in words if len(w) >= 3 and w not in drop), pa.string())


@dataclass(frozen=True)
class LanguageDecision:
    languages: tuple = ("en", "zh")
    model: str | None = None
    max_chars: int = 256
    k: int = 5
    min_score: float = 0.5
    plain_min_score: float = 0.1
    plain_min_score_in_top_k: float = 0.1
    lexicon: str | None = "english_words.txt"
    lexicon_extra: tuple = ()
    lexicon_min_share: float = 0.5
    short_max_words: int = 4
    short_min_score_alone: float = 0.7
    lowercase: str = "mostly_upper"          # mostly_upper | always | never
    han_labels: tuple = ("zh", "ja", "wuu", "yue", "ko")
    han_only_is_zh: bool = True
    mixed_min_han: int = 2
    mixed_min_han_share: float = 0.25
    english_words: tuple = ()
    foreign_words: tuple = ()

    def decide(self, s: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lang, score, accepted) for each caption of `s` (cleaned, non-null)."""
        n = len(s)
        lang = np.full(n, None, dtype=object)
        score = np.zeros(n, dtype=np.float64)
        if n == 0:
            return lang, score, np.zeros(0, dtype=bool)
        han = pc.fill_null(pc.match_substring_regex(s, CJK_IDEOGRAPH), False).to_numpy(zero_copy_only=False)
        model_rows = np.flatnonzero(~han)                       # Latin (or Greek, ...) captions
        model_text = s.take(pa.array(model_rows)) if len(model_rows) else pa.array([], pa.string())
        n_no_han = len(model_rows)              # model_text rows before this index hold no ideographs
        hidx = np.flatnonzero(han)
        if len(hidx):
            hs = s.take(pa.array(hidx))
            n_han = pc.count_substring_regex(hs, CJK_IDEOGRAPH).to_numpy(zero_copy_only=False)
            n_words = pc.count_substring_regex(hs, _LATIN_WORD).to_numpy(zero_copy_only=False) + \
                pc.count_substring_regex(hs, OTHER_LETTER + "+").to_numpy(zero_copy_only=False)
            pure = n_words == 0
            zh = (pure & self.han_only_is_zh) | (~pure & (n_han >= self.mixed_min_han) &
                                                 (n_han >= self.mixed_min_han_share * (n_han + n_words)))
            lang[hidx[zh]], score[hidx[zh]] = "zh", 1.0
            rest = ~zh
            if rest.any():
                # pure Han with the shortcut off: the whole text; mixed: the Latin part alone
                part = pc.replace_substring_regex(hs.filter(pa.array(rest & ~pure)), f"[{HAN}]+", " ")
                whole = hs.filter(pa.array(rest & pure))
                n_no_han += int((rest & ~pure).sum())
                model_rows = np.concatenate([model_rows, hidx[rest & ~pure], hidx[rest & pure]])
                model_text = pa.concat_arrays([model_text, part, whole])
        if len(model_rows):
            han_text = np.arange(len(model_rows)) >= n_no_han
            self._model(model_text, model_rows, han_text, lang, score)
        accepted = np.isin(lang, list(self.languages))
        return lang, score, accepted

    def _model(self, t: pa.Array, rows: np.ndarray, han_text: np.ndarray, lang: np.ndarray, score: np.ndarray):
        """Shortcut for clear English, else fastText. `han_text`: rows whose text holds ideographs (only
        when the Han shortcut is off): their Han labels are summed into zh instead of ignored."""
        if self.english_words:
            clear = pc.match_substring_regex(t, _word_regex(self.english_words))
            if self.foreign_words:
                clear = pc.and_(clear, pc.invert(pc.match_substring_regex(t, _word_regex(self.foreign_words))))
            clear = pc.and_(clear, pc.invert(pc.match_substring_regex(t, _NON_ASCII_LETTER)))
            clear = pc.fill_null(clear, False).to_numpy(zero_copy_only=False)
            lang[rows[clear]], score[rows[clear]] = "en", 1.0
            keep = ~clear
            rows, t, han_text = rows[keep], t.filter(pa.array(keep)), han_text[keep]
        if not len(rows):
            return
        if self.lowercase == "always":
            t = pc.utf8_lower(t)
        elif self.lowercase == "mostly_upper":
            upper = pc.count_substring_regex(t, r"\p{Lu}").to_numpy(zero_copy_only=False)
            lower = pc.count_substring_regex(t, r"\p{Ll}").to_numpy(zero_copy_only=False)
            t = pc.if_else(pa.array(upper > lower), pc.utf8_lower(t), t)
        labels, probs = langid.topk(langid.prepare(t, self.max_chars), self.model, self.k)
        # "plain": ASCII letters (one accented word at most), none of the foreign function words
        accented = pc.count_substring_regex(t, f"[A-Za-z]*{_NON_ASCII_LETTER}+").to_numpy(zero_copy_only=False)
        plain = accented <= 1   # one loanword (café, Pokémon) keeps a caption plain
        if self.foreign_words:
            plain &= ~pc.fill_null(pc.match_substring_regex(t, _word_regex(self.foreign_words)), True) \
                .to_numpy(zero_copy_only=False)
        words = pc.add(pc.count_substring(pc.utf8_trim_whitespace(t), " "), 1).to_numpy(zero_copy_only=False)
        hits, share = self._lexicon_hits(t) if self.lexicon else (np.zeros(len(rows)), np.zeros(len(rows)))
        han_labels = set(self.han_labels)
        for j, (labs, ps) in enumerate(zip(labels, probs)):
            best, p_best, p_en = "", 0.0, 0.0
            if han_text[j]:
                p_zh = sum(float(p) for lab, p in zip(labs, ps) if lab in han_labels)
                if p_zh >= self.min_score:
                    lang[rows[j]], score[rows[j]] = "zh", min(p_zh, 1.0)
                    continue
            for lab, p in zip(labs, ps):
                if lab in han_labels:
                    continue                    # the text has no ideographs: a Han label means nothing
                if not best:
                    best, p_best = lab, float(p)
                if lab == "en":
                    p_en = float(p)
            en = (best == "en" and p_best >= self.min_score and
                  (not plain[j] or words[j] > self.short_max_words or hits[j] > 0
                   or p_best >= self.short_min_score_alone)) or (
                plain[j] and hits[j] > 0 and ((best == "en" and p_best >= self.plain_min_score) or
                                              (p_best < self.min_score and p_en >= self.plain_min_score_in_top_k) or
                                              (share[j] >= self.lexicon_min_share and p_en > 0)))
            if en:
                lang[rows[j]], score[rows[j]] = "en", min(max(p_en, p_best if best == "en" else 0.0), 1.0)
            else:
                # another language, or English below every threshold: not accepted, named for the rejects
                lang[rows[j]] = best if best and best != "en" else "und"
                score[rows[j]] = min(p_best, 1.0)

    def _lexicon_hits(self, t: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Per caption: how many of its Latin words are in the English caption lexicon, and their share."""
        words = pc.split_pattern_regex(pc.utf8_lower(t), r"[^a-z']+")
        flat = pc.list_flatten(words)
        parent = pc.list_parent_indices(words).to_numpy(zero_copy_only=False)
        real = pc.greater(pc.utf8_length(flat), 1).to_numpy(zero_copy_only=False)
        lex = lexicon_words(self.lexicon, tuple(self.lexicon_extra), tuple(w.lower() for w in self.foreign_words))
        hit = pc.is_in(flat, value_set=lex).to_numpy(zero_copy_only=False) & real
        n = len(t)
        total = np.bincount(parent[real], minlength=n)
        found = np.bincount(parent[hit], minlength=n)
        return found, np.where(total > 0, found / np.maximum(total, 1), 0.0) * (found >= 2)
