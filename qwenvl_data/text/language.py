"""The language decision for English + Chinese captions: script evidence first, fastText where needed.

A caption reaching this rule has passed the script rule, so it is written in Latin and/or Han (plus
symbols, and possibly Greek). Each caption takes one path (all settings: configs/filter.yaml `language:`):

- **Japanese kanji** (`japanese_kanji`): a caption holding a kanji that only Japanese writes (in shift_jis,
  in neither gb2312 nor big5hkscs: 桜 満 産) is Japanese without kana, score 1.0, not Chinese. One holding a
  kanji that Chinese writes only in Hong Kong's supplement (`japanese_kanji_likely`: 駅 広 売, also the Hong
  Kong forms 啓 綫 邨) is Japanese where lid.176 says ja at `japanese_likely_min_score` (京都駅前広場).
- **Han only** (ideographs, no letters of another script): Chinese, decided by the script, score 1.0.
  lid.176 scatters short Chinese over zh/ja/wuu/yue; after the script rule removed every caption with
  kana there is nothing left for it to tell.
- **Mixed Han + Latin** (`iPhone 13 Pro Max 手机壳 透明 防摔`): Chinese when the ideographs are at least
  `mixed_min_han` and `mixed_min_han_share` of the units (ideographs + Latin words), score 1.0; otherwise
  the Latin part alone is judged as below (an English sentence quoting one character stays English).
- **Latin, clear English**: ASCII letters, at least one English function word (`english_words`) and none
  of the common function words of other Latin-script languages (`foreign_words`): English, score 1.0.
- **Latin, mostly common English words**: a plain caption (below) with at least `english_share_min_words`
  words of 3+ letters, `english_share` of them in the lexicon (cognates, the file's '-' words, counted for
  neither side): English, score 1.0, without fastText (product titles lid.176 scatters over fi/fr/it).
  A closed compound of two lexicon words (`compound_min_part`: Dreamhouse, Paperwhite) counts as a lexicon
  word. A plain caption whose words are mostly another language's (`foreign_lexicon`: words outside the
  lexicon that wordfreq lists of other languages hold, more of them than lexicon words English writes more
  often: "Camisa social masculina slim") is a *foreign title*: not this path, and English below only on top
  at `short_min_score_alone`. With `foreign_unknown`, where a caption holds such a word, its ASCII words in no
  list at all count with them ("Funda iPhone 14 Pro antigolpe"). Such a word that English writes too, at most
  `loan_margin` less often (paella, kimono, pesto), is a loan, not another language's. With `names_neutral`,
  capitalised words outside the lexicon that no list makes foreign or English (loans, brand and model names:
  Hilfiger, Taycan) are left out of the words both shares are of ("Tommy Hilfiger Polo Shirt" is English).
- **Latin, the rest**: fastText lid.176, every label down to `min_label_score`, on the text lower-cased
  when it is mostly upper case (ALL-CAPS titles otherwise come out as zh/ja/it). Labels lid.176 gives Han text are
  ignored (the caption has none). English is accepted with p >= `min_score` on top. A *plain* caption
  (ASCII letters, none of `foreign_words`: short product titles and names, where lid.176 is unsure) that
  holds a word of the English caption lexicon (`lexicon` + `lexicon_extra`) needs less: English on top
  at p >= `plain_min_score`, or among the labels at p >= `plain_min_score_listed` while no label
  reaches `min_score`, or among the labels at all when `lexicon_min_share` of its words are in the
  lexicon. A plain caption of at most `short_max_words` words without such words (at least one, and
  `short_min_lexicon_share` of its words of 3+ letters) needs
  `short_min_score_alone` (lid.176 calls short Italian or Turkish titles English at 0.5). Otherwise the
  top label is the caption's language (dropped unless listed).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import langid
from .script import CJK_IDEOGRAPH, HAN, LATIN, OTHER_LETTER, charset_only_class
from .words import Words

_LATIN_WORD = f"[{LATIN}]+"
_NON_ASCII_LETTER = r"[\x{00C0}-\x{00D6}\x{00D8}-\x{00F6}\x{00F8}-\x{024F}]"


def _extra_words(name: str) -> list[str]:
    if name == "faker:en_US":  # faker (a dependency) ships ~1,000 common English words
        return _faker_words()
    from ..errors import UsageError

    kind, _, arg = name.partition(":")
    if kind == "wordfreq":
        lang, _, zipf = arg.partition(":")
        try:
            min_zipf = float(zipf)
        except ValueError:
            min_zipf = float("nan")
        if lang and min_zipf == min_zipf:
            return _wordfreq_words(lang, min_zipf)
    raise UsageError(
        f"filter.language.lexicon_extra: unknown word list {name!r} (known: faker:en_US, wordfreq:LANG:MIN_ZIPF)"
    )


def _wordfreq_words(lang: str, min_zipf: float) -> list[str]:
    """The words of wordfreq's 'small' list for `lang` at Zipf frequency >= min_zipf (Zipf 3 = once per million
    words, the list's floor; buckets of words per centibel: bucket i holds words of Zipf 9 - i/100)."""
    last = int(round((9 - min_zipf) * 100))  # buckets 0..last (inclusive) have Zipf >= min_zipf
    return [str(w) for bucket in _wordfreq_buckets(lang)[: last + 1] for w in bucket]


def _wordfreq_buckets(lang: str, size: str = "small") -> list:
    """wordfreq's `size` ('small' or 'large') list for `lang` as its buckets (bucket i: the words of Zipf 9 - i/100),
    read from the data file the package ships without importing wordfreq."""
    import gzip
    import importlib.util

    import msgpack

    from ..errors import UsageError

    spec = importlib.util.find_spec("wordfreq")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("filter.language: wordfreq is not installed (make setup)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"{size}_{lang}.msgpack.gz"
    try:
        with gzip.open(path) as f:
            data = msgpack.load(f, raw=False)
    except OSError as e:
        raise UsageError(f"filter.language: wordfreq has no word list for {lang!r} ({e})") from None
    if not data or not isinstance(data[0], dict) or data[0].get("format") != "cB":
        raise UsageError(f"{path}: not a wordfreq cB word list")
    return data[1:]


@functools.lru_cache(maxsize=4)
def zipf_table(langs: tuple, min_zipf: float) -> dict[str, float]:
    """word -> its highest Zipf frequency over the wordfreq lists of `langs`, for words at >= min_zipf."""
    return _zipf_and_rest(langs, min_zipf)[0]


@functools.lru_cache(maxsize=4)
def _zipf_and_rest(langs: tuple, min_zipf: float) -> tuple[dict[str, float], frozenset]:
    """zipf_table, and the words of those lists below min_zipf (each list read once)."""
    out: dict[str, float] = {}
    rest: list = []
    last = int(round((9 - min_zipf) * 100))
    for lang in langs:
        buckets = _wordfreq_buckets(lang)
        for i, bucket in enumerate(buckets[: last + 1]):
            z = 9 - i / 100
            for w in bucket:
                if out.get(w, 0.0) < z:
                    out[w] = z
        rest.extend(buckets[last + 1 :])
    return out, frozenset(itertools.chain.from_iterable(rest))


_FOREIGN, _ENGLISH, _KNOWN, _COMPOUND, _LOAN, _RARE = 1, 2, 4, 8, 16, 32


@functools.lru_cache(maxsize=1)
def _large_en_buckets() -> list:
    """wordfreq's large English list, read once (the loans and the rare foreign words both look in it)."""
    return _wordfreq_buckets("en", "large")


def _large_en_zipf(words: frozenset) -> dict[str, float]:
    """English Zipf frequency of `words` in wordfreq's large English list (down to Zipf 1), 0 where absent."""
    out: dict[str, float] = {}
    for i, bucket in enumerate(_large_en_buckets()):
        z = 9 - i / 100
        for w in bucket:
            if w in words and w not in out:
                out[w] = z
    return out


@functools.lru_cache(maxsize=4)
def rare_foreign(langs: tuple, min_zipf: float, max_en: float) -> frozenset:
    """Words of the `langs` lists below `min_zipf` that wordfreq's large English list holds below `max_en`
    (or not at all): estampado, tacón. Set operations only (built once per process, ~0.3 s)."""
    rare = _zipf_and_rest(langs, min_zipf)[1]
    last = int(round((9 - max_en) * 100))  # buckets 0..last hold the words of Zipf >= max_en
    english = frozenset(itertools.chain.from_iterable(_large_en_buckets()[: last + 1]))
    return rare - english


@functools.lru_cache(maxsize=4)
def origin_table(
    lex: frozenset,
    langs: tuple,
    min_zipf: float,
    margin: float,
    loan_margin: float | None = None,
) -> dict[str, int]:
    """word -> bits: _FOREIGN (outside the lexicon, in a list of `langs` at Zipf >= min_zipf and `margin`
    above its English Zipf), _LOAN (such a word that English writes too: in the large English list at most
    `loan_margin` below its Zipf in `langs`, in place of _FOREIGN), _ENGLISH (a lexicon word English writes more
    often than any of `langs`), _KNOWN (in a list of `langs`: never read as a compound)."""
    en = zipf_table(("en",), 3.0)
    fo = zipf_table(langs, min_zipf)
    out = {}
    for word, fz in fo.items():
        ez = en.get(word, 0.0)
        out[word] = _KNOWN | (
            _FOREIGN
            if len(word) >= 3 and word not in lex and fz >= ez + margin
            else _ENGLISH
            if word in lex and fz < ez
            else 0
        )
    for word in lex:
        if word not in fo:
            out[word] = _ENGLISH
    if loan_margin is not None:
        cand = frozenset(w for w, f in out.items() if f & _FOREIGN)
        for word, z in _large_en_zipf(cand).items():
            if z >= fo[word] - loan_margin:
                out[word] = _KNOWN | _LOAN
    return out


@functools.lru_cache(maxsize=8)
def lexicon_sets(name: str, extra: tuple = (), exclude: tuple = ()) -> tuple[frozenset, frozenset]:
    """lexicon_words and neutral_words as Python sets (words are looked up one by one)."""
    return frozenset(lexicon_words(name, extra, exclude).to_pylist()), frozenset(neutral_words(name).to_pylist())


def _faker_words() -> list[str]:
    """faker's en_US lorem word list, read from its source without importing faker (which takes longer
    than the whole filter of a row group)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("faker")
    if spec is None or not spec.submodule_search_locations:
        return []
    path = Path(list(spec.submodule_search_locations)[0]) / "providers" / "lorem" / "en_US" / "__init__.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "word_list" for t in node.targets):
            try:
                return [str(w) for w in ast.literal_eval(node.value)]
            except ValueError:
                return []
    return []


def _mostly_upper(t: pa.Array) -> np.ndarray:
    """More upper- than lower-case letters. Counting letters by regex costs a match per letter, so only
    captions with a run of four capitals are counted; the rest are all upper case or not upper at all."""
    out = pc.fill_null(pc.utf8_is_upper(t), False).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(
        ~out & pc.fill_null(pc.match_substring_regex(t, r"\p{Lu}{4}"), False).to_numpy(zero_copy_only=False)
    )
    if len(rows):
        sub = t.take(pa.array(rows))
        upper = pc.count_substring_regex(sub, r"\p{Lu}").to_numpy(zero_copy_only=False)
        lower = pc.count_substring_regex(sub, r"\p{Ll}").to_numpy(zero_copy_only=False)
        out[rows] = upper > lower
    return out


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


@functools.lru_cache(maxsize=8)
def neutral_words(name: str) -> pa.Array:
    """The lexicon file's '-word' lines: words as common in other languages (cognates), no evidence either way."""
    path = resources.files("qwenvl_data.text").joinpath(name)
    lines = [w.strip().lower() for w in path.read_text(encoding="utf-8").splitlines()]
    return pa.array(sorted({w[1:] for w in lines if w.startswith("-") and len(w) > 1}), pa.string())


@dataclass(frozen=True)
class LanguageDecision:
    languages: tuple = ("en", "zh")
    model: str | None = None
    max_chars: int = 256
    min_label_score: float = 0.05
    min_score: float = 0.5
    plain_min_score: float = 0.1
    plain_min_score_listed: float = 0.1
    lexicon: str | None = "english_words.txt"
    lexicon_extra: tuple = ()
    lexicon_min_share: float = 0.5
    short_max_words: int = 4
    short_min_score_alone: float = 0.7
    short_min_lexicon_share: float = 0.0
    english_share: float | None = None
    english_share_min_words: int = 2
    lowercase: str = "mostly_upper"  # mostly_upper | always | never
    han_labels: tuple = ("zh", "ja", "wuu", "yue", "ko")
    han_only_is_zh: bool = True
    mixed_min_han: int = 2
    mixed_min_han_share: float = 0.25
    japanese_kanji: tuple | None = ("shift_jis", "gb2312", "big5hkscs")
    japanese_kanji_min: int = 1
    japanese_kanji_likely: tuple | None = None
    japanese_likely_min_score: float = 0.9
    english_words: tuple = ()
    foreign_words: tuple = ()
    foreign_lexicon: tuple | None = None
    foreign_min_zipf: float = 3.5
    foreign_margin: float = 1.0
    foreign_min_words: int = 2
    foreign_unknown: bool | None = False
    loan_margin: float | None = None
    names_neutral: bool | None = False
    compound_min_part: int | None = None
    foreign_rare_max_en: float | None = None
    share_needs_english_word: bool = False

    def warm(self) -> None:
        """Load the model and the lexicon now (a process pool forked after this shares them)."""
        langid.load_model(self.model)
        if self.japanese_kanji:
            charset_only_class(self.japanese_kanji[0], tuple(self.japanese_kanji[1:]))
        if self.japanese_kanji_likely:
            kl = tuple(self.japanese_kanji_likely)
            charset_only_class(kl[0], kl[1:])
            charset_only_class(kl[1], (kl[0],))
        if self.lexicon:
            lexicon_sets(self.lexicon, tuple(self.lexicon_extra), tuple(x.lower() for x in self.foreign_words))
        if self.foreign_lexicon and self.lexicon:
            lex, _ = lexicon_sets(self.lexicon, tuple(self.lexicon_extra), tuple(x.lower() for x in self.foreign_words))
            self._origin_table(lex)
            if self.foreign_rare_max_en is not None:
                rare_foreign(tuple(self.foreign_lexicon), self.foreign_min_zipf, self.foreign_rare_max_en)

    def _likely_japanese(self, s: pa.Array, han: np.ndarray, decided: np.ndarray, lang: np.ndarray, score: np.ndarray):
        """Kanji that Japanese writes and Chinese only in Hong Kong's supplement (駅 広 売; also 啓 綫 邨, Hong
        Kong forms): a caption holding one, and no simplified character of the second set that Japanese does not
        write (兑 换), is Japanese when lid.176 gives ja at `japanese_likely_min_score`."""
        rows = np.flatnonzero(han)
        if not len(rows):
            return
        kl = tuple(self.japanese_kanji_likely or ())
        cls = charset_only_class(kl[0], kl[1:])
        sub = s.take(pa.array(rows))
        # and no simplified character Japanese does not write (gb2312, not shift_jis: 兑 换), which only Chinese has
        simplified = charset_only_class(kl[1], (kl[0],))
        likely = pc.count_substring_regex(sub, f"[{cls}]").to_numpy(zero_copy_only=False) > 0
        chinese = pc.count_substring_regex(sub, f"[{simplified}]").to_numpy(zero_copy_only=False) > 0
        rows = rows[likely & ~chinese]
        if not len(rows):
            return
        labels, probs = langid.raw_labels(langid.prepare(s.take(pa.array(rows)), self.max_chars), self.model, 0.05)
        p_ja = np.array(
            [sum(float(p) for lab, p in zip(labs, ps) if lab == "__label__ja") for labs, ps in zip(labels, probs)]
        )
        ja = rows[p_ja >= self.japanese_likely_min_score]
        lang[ja], score[ja] = "ja", np.minimum(p_ja[p_ja >= self.japanese_likely_min_score], 1.0)
        han[ja], decided[ja] = False, True

    def _origin_table(self, lex: frozenset) -> dict[str, int]:
        return origin_table(
            lex,
            tuple(self.foreign_lexicon or ()),
            self.foreign_min_zipf,
            self.foreign_margin,
            self.loan_margin,
        )

    def decide(self, s: pa.Array, words: Words | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lang, score, accepted) for each caption of `s` (cleaned, non-null); `words`: its Words, when a
        caller has them already."""
        n = len(s)
        lang = np.full(n, None, dtype=object)
        score = np.zeros(n, dtype=np.float64)
        if n == 0:
            return lang, score, np.zeros(0, dtype=bool)
        ascii_ = pc.string_is_ascii(s).to_numpy(zero_copy_only=False)
        han = np.zeros(n, dtype=bool)
        if not ascii_.all():  # ideographs are never ASCII: the regex runs on the other rows only
            rest = np.flatnonzero(~ascii_)
            han[rest] = pc.fill_null(pc.match_substring_regex(s.take(pa.array(rest)), CJK_IDEOGRAPH), False).to_numpy(
                zero_copy_only=False
            )
        decided = np.zeros(n, dtype=bool)
        if self.japanese_kanji and han.any():
            # kanji only Japanese writes: Japanese without kana (大阪城公園桜満開), not Chinese
            hrows = np.flatnonzero(han)
            cls = charset_only_class(self.japanese_kanji[0], tuple(self.japanese_kanji[1:]))
            n_ja = pc.count_substring_regex(s.take(pa.array(hrows)), f"[{cls}]").to_numpy(zero_copy_only=False)
            ja = hrows[n_ja >= self.japanese_kanji_min]
            lang[ja], score[ja] = "ja", 1.0
            han[ja], decided[ja] = False, True
            if self.japanese_kanji_likely:
                self._likely_japanese(s, han, decided, lang, score)
        model_rows = np.flatnonzero(~han & ~decided)  # Latin (or Greek, ...) captions
        model_text = s.take(pa.array(model_rows)) if len(model_rows) else pa.array([], pa.string())
        n_no_han = len(model_rows)  # model_text rows before this index hold no ideographs
        hidx = np.flatnonzero(han)
        if len(hidx):
            hs = s.take(pa.array(hidx))
            pure = ~pc.fill_null(pc.match_substring_regex(hs, f"[{LATIN}]|{OTHER_LETTER}"), True).to_numpy(
                zero_copy_only=False
            )
            n_han = np.zeros(len(hs), dtype=np.int64)
            n_words = np.zeros(len(hs), dtype=np.int64)
            mixed = np.flatnonzero(~pure)
            if len(mixed):  # counts only where both scripts are present
                ms = hs.take(pa.array(mixed))
                n_han[mixed] = pc.count_substring_regex(ms, CJK_IDEOGRAPH).to_numpy(zero_copy_only=False)
                n_words[mixed] = pc.count_substring_regex(ms, _LATIN_WORD).to_numpy(
                    zero_copy_only=False
                ) + pc.count_substring_regex(ms, OTHER_LETTER + "+").to_numpy(zero_copy_only=False)
            zh = (pure & self.han_only_is_zh) | (
                ~pure & (n_han >= self.mixed_min_han) & (n_han >= self.mixed_min_han_share * (n_han + n_words))
            )
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
            w = (words or Words.of(s)).take(model_rows)
            self._model(
                model_text, s.take(pa.array(model_rows)), model_rows, han_text, self._evidence(w), w, lang, score
            )
        accepted = np.isin(lang, list(self.languages))
        return lang, score, accepted

    def _model(
        self,
        t: pa.Array,
        captions: pa.Array,
        rows: np.ndarray,
        han_text: np.ndarray,
        ev: dict,
        w: Words,
        lang: np.ndarray,
        score: np.ndarray,
    ):
        """Shortcut for clear English, else fastText. `t`: the text fastText reads; `captions`: the cleaned
        captions `w` was split from. `han_text`: rows whose text holds ideographs (only when the Han shortcut
        is off): their Han labels are summed into zh instead of ignored."""
        plain = (ev["accented"] <= 1) & (ev["foreign"] == 0)  # one loanword (café, Pokémon) keeps it plain
        if self.english_words:
            clear = (ev["english"] > 0) & (ev["foreign"] == 0) & (ev["accented"] == 0) & ~han_text
            lang[rows[clear]], score[rows[clear]] = "en", 1.0
            keep = ~clear
            rows, t, han_text = rows[keep], t.filter(pa.array(keep)), han_text[keep]
            captions = captions.filter(pa.array(keep))
            plain = plain[keep]
            ev = {k: v[keep] for k, v in ev.items()}
            w = w.take(np.flatnonzero(keep))
        if self.foreign_lexicon or self.compound_min_part:
            # closed compounds of lexicon words (Dreamhouse, Paperwhite) count as lexicon words; a plain caption
            # whose words are mostly another language's (Camisa social masculina slim) is a foreign title
            # (with share_needs_english_word, also where the share of lexicon words decides: see below)
            decided_by_share = (
                (ev["latin3"] >= self.english_share_min_words) & (ev["lexicon"] >= self.english_share * ev["latin3"])
                if self.english_share is not None
                else np.zeros(len(rows), dtype=bool)
            )
            # every plain caption's word origin: the share path is vetoed by a foreign word without an English one
            origin = self._word_origin(
                w, plain & ~han_text & (True if self.share_needs_english_word else ~decided_by_share)
            )
            ev["lexicon"] = ev["lexicon"] + origin["compound"]
            foreign = origin["foreign"]
            if origin["rare_word"].any():
                # in a caption with an English function word, a rarer foreign word written capitalised is a name
                # ("Portrait of Frida Kahlo mural in Coyoacán"), no evidence either way
                english = ev["english"] > 0
                foreign = foreign - self._capitalised(captions, w, plain & ~han_text & english, origin["rare_word"])[0]
                origin["foreign"] = foreign
            has_foreign = foreign > 0
            if self.foreign_unknown:
                # words in no list (antichoc) count with another language's words, where there is one of those
                foreign = foreign + np.where(has_foreign, origin["unknown"], 0)
            share_of = ev["latin3"]
            if self.names_neutral:
                # names and loans written capitalised (Tommy Hilfiger, Paella, Taycan) are no evidence either way:
                # left out of the words both shares are of (unlisted words only where no other language's word
                # made them foreign)
                names, unlisted = self._names(captions, w, plain & ~han_text & ~decided_by_share, origin)
                share_of = share_of - names + (np.where(has_foreign, unlisted, 0) if self.foreign_unknown else 0)
            ev["share_of"] = share_of
            ev["foreign_title"] = (
                (foreign >= self.foreign_min_words)
                & (foreign > origin["english"] + ev["english"])
                & (2 * foreign >= share_of)
            )
            if self.share_needs_english_word:
                # "Sac de sport Puma homme grand format": cognates and lexicon words make the share, one word is
                # another language's (homme) and none is a word English writes more often than those languages
                ev["foreign_title"] |= decided_by_share & (origin["foreign"] > 0) & (origin["english"] == 0)
        else:
            ev["foreign_title"] = np.zeros(len(rows), dtype=bool)
            ev["share_of"] = ev["latin3"]
        if self.english_share is not None:
            # a plain caption made of common English words (product titles, names: "Queen Size Duvet Cover
            # Grey Linen"), which lid.176 scatters over fi/fr/it: English without fastText
            mostly = (
                plain
                & ~ev["foreign_title"]
                & ~han_text
                & (ev["share_of"] >= self.english_share_min_words)
                & (ev["lexicon"] >= self.english_share * ev["share_of"])
            )
            lang[rows[mostly]], score[rows[mostly]] = "en", 1.0
            keep = ~mostly
            rows, t, han_text = rows[keep], t.filter(pa.array(keep)), han_text[keep]
            captions = captions.filter(pa.array(keep))
            plain = plain[keep]
            ev = {k: v[keep] for k, v in ev.items()}
        if not len(rows):
            return
        if self.lowercase == "always":
            t = pc.utf8_lower(t)
        elif self.lowercase == "mostly_upper":
            t = pc.if_else(pa.array(_mostly_upper(t)), pc.utf8_lower(t), t)
        best, p_best, p_en, p_han = self._labels(langid.prepare(t, self.max_chars))
        zh = han_text & (p_han >= self.min_score)
        hits, words = ev["lexicon"], ev["words"]
        share = np.where(ev["latin"] > 0, hits / np.maximum(ev["latin"], 1), 0.0) * (hits >= 2)
        # a short plain caption needs some of its words in the lexicon ("Zapatillas running mujer" has one of
        # three): at least one, and short_min_lexicon_share of its words of 3+ letters that are not names (with
        # names_neutral: "Tiramisu Mascarpone Recipe" is judged by Recipe, as the shares above are)
        lexical = (hits > 0) & (
            (words > self.short_max_words) | (hits >= self.short_min_lexicon_share * ev["share_of"])
        )
        top_en = best == "en"
        # a foreign title: English only when lid.176 is as sure as for a short caption without lexicon words
        ft = ev["foreign_title"]
        en = ~zh & ft & top_en & (p_best >= self.short_min_score_alone)
        en |= (
            ~zh
            & ~ft
            & (
                (
                    top_en
                    & (p_best >= self.min_score)
                    & (~plain | (words > self.short_max_words) | lexical | (p_best >= self.short_min_score_alone))
                )
                | (
                    plain
                    & lexical
                    & (
                        (top_en & (p_best >= self.plain_min_score))
                        | ((p_best < self.min_score) & (p_en >= self.plain_min_score_listed))
                        | ((share >= self.lexicon_min_share) & (p_en > 0))
                    )
                )
            )
        )
        lang[rows[zh]], score[rows[zh]] = "zh", np.minimum(p_han[zh], 1.0)
        lang[rows[en]], score[rows[en]] = "en", np.minimum(np.maximum(p_en[en], np.where(top_en, p_best, 0)[en]), 1.0)
        # another language, or English below every threshold: not accepted, named for the rejects
        other = ~zh & ~en
        lang[rows[other]] = np.where((best[other] == "") | top_en[other], "und", best[other])
        score[rows[other]] = np.minimum(p_best[other], 1.0)

    def _labels(self, lines: list[str]):
        """fastText's labels down to `min_label_score`, per line: the best label that is not a Han label,
        its probability, P(en) and the summed probability of the Han labels."""
        n = len(lines)
        labels, probs = langid.raw_labels(lines, self.model, self.min_label_score)
        lens = np.fromiter((len(x) for x in labels), dtype=np.int64, count=n)
        flat = np.array([lab[9:] for labs in labels for lab in labs], dtype=object)  # '__label__en' -> 'en'
        p = np.concatenate(probs).astype(np.float64) if len(flat) else np.zeros(0)
        owner = np.repeat(np.arange(n), lens)
        han = np.isin(flat, list(self.han_labels))
        p_en = np.bincount(owner[flat == "en"], weights=p[flat == "en"], minlength=n)
        p_han = np.bincount(owner[han], weights=p[han], minlength=n)
        # labels come sorted by probability: a row's best non-Han label is its first one
        pos = np.where(~han, np.arange(len(flat)), len(flat))
        best_pos = np.full(n, len(flat))
        np.minimum.at(best_pos, owner, pos)
        found = best_pos < len(flat)
        best = np.full(n, "", dtype=object)
        p_best = np.zeros(n)
        best[found], p_best[found] = flat[best_pos[found]], p[best_pos[found]]
        return best, p_best, p_en, p_han

    @staticmethod
    def _capitalised(captions: pa.Array, w: Words, mask: np.ndarray, *vocab_masks: np.ndarray) -> list[np.ndarray]:
        """Per caption of `mask` (zero elsewhere), for each of `vocab_masks`: its words of that mask written
        capitalised in `captions` (what `w` was split from). `w` keeps its words in batch order (model rows are
        not in that order: mixed Han captions come last); within a caption the order is the split order."""
        outs = [np.zeros(w.n, dtype=np.int64) for _ in vocab_masks]
        rows = np.flatnonzero(mask)
        if not len(rows):
            return outs
        sub = w.take(rows)
        cap = np.empty(len(sub.code), dtype=bool)
        cap[np.argsort(sub.row, kind="stable")] = Words.capitalised(captions.take(pa.array(rows)))
        for out, m in zip(outs, vocab_masks):
            out[rows] = np.bincount(sub.row[cap & m[sub.code]], minlength=len(rows))
        return outs

    @classmethod
    def _names(cls, captions: pa.Array, w: Words, mask: np.ndarray, origin: dict) -> tuple[np.ndarray, np.ndarray]:
        """Per caption of `mask` (zero elsewhere), its words of `origin['name_word']` written capitalised:
        (all of them, those also in `origin['unknown_word']`). Hilfiger, Taycan; a lower-case unlisted word
        (zijwieltjes) is no name."""
        if not origin["name_word"].any():
            zero = np.zeros(w.n, dtype=np.int64)
            return zero, zero.copy()
        names, unlisted = cls._capitalised(
            captions, w, mask, origin["name_word"], origin["name_word"] & origin["unknown_word"]
        )
        return names, unlisted

    def _word_origin(self, w: Words, mask: np.ndarray) -> dict[str, np.ndarray]:
        """Per caption of `mask` (zero elsewhere), from its words (each distinct word looked up once):
        `foreign`: words outside the lexicon that another language writes (in `foreign_lexicon`'s wordfreq
        lists at Zipf >= `foreign_min_zipf`, `foreign_margin` above their English Zipf); `english`: lexicon
        words English writes more often than any of those languages, and compounds; `compound`: a word of
        two lexicon (or cognate) words of `compound_min_part`+ letters each, itself in no list (Dreamhouse);
        `unknown` (with `foreign_unknown`): other words of 3+ letters in no list (antichoc)."""
        zero = np.zeros(w.n, dtype=np.int64)
        codes = np.unique(w.code[mask[w.row]]) if len(w.row) else np.zeros(0, dtype=np.int64)
        if not len(codes):
            none = np.zeros(len(w.vocab), dtype=bool)
            return {
                "foreign": zero,
                "english": zero,
                "compound": zero,
                "unknown": zero,
                "unknown_word": none,
                "name_word": none,
                "rare_word": none,
            }
        lex, neutral = (
            lexicon_sets(self.lexicon, tuple(self.lexicon_extra), tuple(x.lower() for x in self.foreign_words))
            if self.lexicon
            else (frozenset(), frozenset())
        )
        table = self._origin_table(lex) if self.foreign_lexicon else {}
        words = w.vocab.take(pa.array(codes)).to_pylist()
        if self.foreign_rare_max_en is not None and self.foreign_lexicon:
            # another language's rarer words (below foreign_min_zipf there) that English hardly writes: estampado
            rf = rare_foreign(tuple(self.foreign_lexicon), self.foreign_min_zipf, self.foreign_rare_max_en)
            rare_flag = _KNOWN | _FOREIGN | _RARE
            flags = np.fromiter(
                (table.get(x) or (rare_flag if len(x) >= 3 and x in rf and x not in lex else 0) for x in words),
                dtype=np.int8,
                count=len(words),
            )
        else:
            flags = np.fromiter((table.get(x, 0) for x in words), dtype=np.int8, count=len(words))
        part = self.compound_min_part or 0
        if part:
            known = lex | neutral
            for i in np.flatnonzero(flags == 0):
                x = words[i]
                if len(x) >= 2 * part and x not in known and x.isascii() and x.isalpha():
                    if any(x[:k] in known and x[k:] in known for k in range(part, len(x) - part + 1)):
                        flags[i] = _COMPOUND | _ENGLISH
        nv = len(w.vocab)
        out = {}
        for name, bit in (("foreign", _FOREIGN), ("english", _ENGLISH), ("compound", _COMPOUND)):
            m = np.zeros(nv, dtype=bool)
            m[codes] = (flags & bit) > 0
            out[name] = w.count(m)
        out["rare_word"] = np.zeros(nv, dtype=bool)
        out["rare_word"][codes] = (flags & _RARE) > 0
        m = np.zeros(nv, dtype=bool)
        if self.foreign_unknown and self.foreign_lexicon:
            # ASCII words of 3+ letters in no list at all (nor below foreign_min_zipf), cognates left out
            rare = _zipf_and_rest(tuple(self.foreign_lexicon), self.foreign_min_zipf)[1]
            m[codes] = [
                f == 0 and len(x) >= 3 and x.isascii() and x.isalpha() and x not in neutral and x not in rare
                for f, x in zip(flags, words)
            ]
        out["unknown"] = w.count(m)
        out["unknown_word"] = m
        m = np.zeros(nv, dtype=bool)
        if self.names_neutral:
            # name candidates: ASCII words of 3+ letters outside the lexicon that are neither another language's
            # words nor English's (loans, words English writes about as often, rare or unlisted words)
            m[codes] = [
                (f & (_FOREIGN | _ENGLISH)) == 0
                and len(x) >= 3
                and x.isascii()
                and x.isalpha()
                and x not in lex
                and x not in neutral
                for f, x in zip(flags, words)
            ]
        out["name_word"] = m
        return out

    def _foreign_function_words(self, w: Words) -> np.ndarray:
        """Per caption: its `foreign_words`. Those the lexicon file marks as English too ('-' lines: die, per,
        till, do, no) count only beside one that it does not ("JOHN DEERE TRACTOR TOY DIE CAST" has no evidence
        of German; "Die Katze auf dem Dach" has)."""
        fw = pa.array(list(self.foreign_words), pa.string())
        if not self.lexicon:
            return w.count(pc.is_in(w.vocab, value_set=fw))
        neutral = neutral_words(self.lexicon)
        weak_set = pc.filter(fw, pc.is_in(fw, value_set=neutral))
        strong = w.count(pc.and_(pc.is_in(w.vocab, value_set=fw), pc.invert(pc.is_in(w.vocab, value_set=weak_set))))
        weak = w.count(pc.is_in(w.vocab, value_set=weak_set))
        return strong + np.where(strong > 0, weak, 0)

    def _evidence(self, w: Words) -> dict[str, np.ndarray]:
        """Per caption, from its words: English function words, foreign function words, words with
        accented letters, lexicon words, Latin words (letters only) and all words."""
        lex = (
            lexicon_words(self.lexicon, tuple(self.lexicon_extra), tuple(x.lower() for x in self.foreign_words))
            if self.lexicon
            else pa.array([], pa.string())
        )
        v = w.vocab
        return {
            "english": w.count(pc.is_in(v, value_set=pa.array(list(self.english_words), pa.string()))),
            "foreign": self._foreign_function_words(w),
            "accented": w.count(pc.match_substring_regex(v, _NON_ASCII_LETTER)),
            "lexicon": w.count(pc.is_in(v, value_set=lex)),
            "latin": w.count(pc.match_substring_regex(v, r"^[a-z'][a-z']+$")),
            # words of 3+ letters that can be evidence (cognates left out): what the lexicon share is of
            "latin3": w.count(
                pc.and_(
                    pc.match_substring_regex(v, r"^[a-z'][a-z']{2,}$"),
                    pc.invert(
                        pc.is_in(
                            v, value_set=neutral_words(self.lexicon) if self.lexicon else pa.array([], pa.string())
                        )
                    ),
                )
            ),
            "words": w.count(),
        }
