"""Tokenizer set-up and the one place that turns training text into token ids and a loss mask.

- Loaded from a local directory (any `transformers` fast tokenizer: a Qwen2 `tokenizer.json`, or the
  small byte-level BPE that scripts/make_tokenizer.py trains); the Qwen-VL special tokens
  (qwenvl_data.vocab.SPECIAL_TOKENS) are added when absent, in the official order: `<|endoftext|>`,
  `<|im_start|>`, `<|im_end|>`, 205 `<|extra_N|>`, `<ref>` ... `<img>`, `</img>`, `<imgpad>`. On a Qwen
  base vocabulary (151643 byte-level tokens) the ids come out as the official ones (151643 + index);
  on any other base they keep the same relative order. `<imgpad>` fills the 256 positions of an image.
- `<img>X</img>` in the text becomes `<img>` + 256 x `<imgpad>` + `</img>`: the reference X is never
  tokenized, the model overwrites the pads with the adapter's embeddings. Image positions never
  carry loss, whatever the segment says.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from qwenvl_data.errors import UsageError
from qwenvl_data.vocab import ENDOFTEXT, IM_END, IMG_END, IMG_PAD, IMG_START, QWEN_SPECIAL_START, SPECIAL_TOKENS

IMAGE_RE = re.compile(r"<img>(.*?)</img>", re.S)
IGNORE = -100  # label of positions without loss (torch cross-entropy's ignore_index)


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise UsageError(f"tokenizer directory {path} does not exist")
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot load a tokenizer from {path}: {e}") from None
    add_special_tokens(tok)
    if tok.convert_tokens_to_ids(ENDOFTEXT) == QWEN_SPECIAL_START and not official_ids(tok):
        # e.g. a Qwen2.5 tokenizer: its own tokens follow <|im_end|>, so ours are appended after them
        warnings.warn(
            f"{path}: a Qwen vocabulary whose ids after <|im_end|> hold other tokens; the Qwen-VL "
            f"special tokens are appended after them, not at their official ids",
            stacklevel=2,
        )
    return tok


def add_special_tokens(tok) -> None:
    """Add the Qwen-VL special tokens the tokenizer lacks, in the official order (ids follow the base
    vocabulary), and mark every one special so it is always matched whole, never split by BPE."""
    # one call with the whole ordered list: tokens already present keep their ids, the missing ones are
    # appended in list order (a Qwen2 tokenizer already holds the three ChatML tokens at 151643..151645)
    tok.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)})


def official_ids(tok) -> bool:
    """True when every special token has its official Qwen-VL id (a Qwen base vocabulary)."""
    return all(tok.convert_tokens_to_ids(t) == QWEN_SPECIAL_START + i for i, t in enumerate(SPECIAL_TOKENS))


class TextEncoder:
    """Segments [{text, loss}] -> (ids, labels, image refs). Picklable (it travels to loader workers)."""

    def __init__(self, tokenizer, num_image_tokens: int = 256):
        self.tok = tokenizer
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
        self.img, self.img_end, self.pad_img = ids[IMG_START], ids[IMG_END], ids[IMG_PAD]
        self.eot, self.im_end = ids[ENDOFTEXT], ids[IM_END]
        self.num_image_tokens = num_image_tokens

    def encode(self, segments: list[dict], append_eot: bool):
        """Returns int32 arrays ids, labels (IGNORE where no loss) and the image refs in text order."""
        pieces, flags, refs = [], [], []  # text pieces to tokenize; None marks an image slot
        for seg in segments:
            text, loss = seg["text"], bool(seg["loss"])
            pos = 0
            for m in IMAGE_RE.finditer(text):
                if m.start() > pos:
                    pieces.append(text[pos : m.start()])
                    flags.append(loss)
                pieces.append(None)
                flags.append(False)
                refs.append(m.group(1))
                pos = m.end()
            if pos < len(text):
                pieces.append(text[pos:])
                flags.append(loss)
        texts = [p for p in pieces if p is not None]
        encoded = iter(self.tok(texts, add_special_tokens=False)["input_ids"] if texts else [])
        image = [self.img] + [self.pad_img] * self.num_image_tokens + [self.img_end]
        ids, labels = [], []
        for piece, loss in zip(pieces, flags):
            chunk = image if piece is None else next(encoded)
            ids.extend(chunk)
            labels.extend(chunk if loss else [IGNORE] * len(chunk))
        if append_eot:
            ids.append(self.eot)
            labels.append(self.eot)
        return np.asarray(ids, np.int32), np.asarray(labels, np.int32), refs

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)
