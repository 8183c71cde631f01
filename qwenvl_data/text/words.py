"""The words of a batch of cleaned captions, split once and shared by the rules that count words.

Captions are lower-cased and split at spaces (cleaning leaves single spaces), outer punctuation trimmed,
and the words dictionary-encoded: a test on words (in a list? accented? all digits?) runs once per
distinct word, and counting per caption is a bincount over the word codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TRIM = ".,!?;:'\"()[]{}<>«»“”‘’…-–—/|*#~"


@dataclass(frozen=True)
class Words:
    vocab: pa.Array  # distinct words
    code: np.ndarray  # per word occurrence: its index in vocab
    row: np.ndarray  # per word occurrence: its caption
    n: int  # captions

    @staticmethod
    def _split(s: pa.Array, lower: bool = True) -> tuple[pa.Array, np.ndarray]:
        """(word occurrences, their captions): split at spaces, outer punctuation trimmed, empty ones left out."""
        s = pc.fill_null(s, "")
        words = pc.split_pattern(pc.utf8_lower(s) if lower else s, " ")
        flat = pc.utf8_trim(pc.list_flatten(words), TRIM)
        row = pc.list_parent_indices(words).to_numpy(zero_copy_only=False).astype(np.int64)
        keep = pc.greater(pc.utf8_length(flat), 0).to_numpy(zero_copy_only=False)
        return flat.filter(pa.array(keep)), row[keep]

    @classmethod
    def of(cls, s: pa.Array) -> Words:
        flat, row = cls._split(s)
        codes = pc.dictionary_encode(flat)
        return cls(codes.dictionary, codes.indices.to_numpy(zero_copy_only=False).astype(np.int64), row, len(s))

    @staticmethod
    def capitalised(s: pa.Array) -> np.ndarray:
        """Per word occurrence of `Words.of(s)`, in its order: written with a capital first letter in `s`."""
        flat, _ = Words._split(s, lower=False)
        return pc.fill_null(pc.match_substring_regex(flat, r"^\p{Lu}"), False).to_numpy(zero_copy_only=False)

    def take(self, rows: np.ndarray) -> Words:
        """The words of captions `rows` (indices, in that order)."""
        where = np.full(self.n, -1, dtype=np.int64)
        where[rows] = np.arange(len(rows))
        new = where[self.row]
        keep = new >= 0
        return Words(self.vocab, self.code[keep], new[keep], len(rows))

    def mask(self, vocab_mask) -> np.ndarray:
        """A test on the distinct words (Arrow or numpy booleans) -> one boolean per word occurrence."""
        m = (
            vocab_mask
            if isinstance(vocab_mask, np.ndarray)
            else pc.fill_null(vocab_mask, False).to_numpy(zero_copy_only=False)
        )
        return m[self.code]

    def count(self, vocab_mask=None) -> np.ndarray:
        """Per caption: how many of its words pass the test (all of them without one)."""
        rows = self.row if vocab_mask is None else self.row[self.mask(vocab_mask)]
        return np.bincount(rows, minlength=self.n)

    def repeats(self, vocab_mask, content_mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per caption, over the words passing `vocab_mask`: (words, distinct words, the count of its most
        repeated word among those also passing `content_mask`). One sort of (caption, word) pairs."""
        keep = self.mask(vocab_mask)
        nv = max(len(self.vocab), 1)
        pairs, count = np.unique(self.row[keep] * nv + self.code[keep], return_counts=True)
        owner, code = pairs // nv, pairs % nv
        content = np.asarray(content_mask)[code]
        top = np.zeros(self.n, dtype=np.int64)
        np.maximum.at(top, owner[content], count[content])
        return np.bincount(self.row[keep], minlength=self.n), np.bincount(owner, minlength=self.n), top
