"""Tokenizer set-up and the one place that turns training text into token ids and a loss mask.

- Loaded from a local directory (any `transformers` fast tokenizer: a Qwen2 `tokenizer.json`, or the
  small byte-level BPE that scripts/make_tokenizer.py trains); the Qwen-VL special tokens are added
  when absent, plus `<imgpad>`, which fills the 256 positions of each image.
- `<img>X</img>` in the text becomes `<img>` + 256 x `<imgpad>` + `</img>`: the reference X is never
  tokenized, the model overwrites the pads with the adapter's embeddings. Image positions never
  carry loss, whatever the segment says.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from qwenvl_data.errors import UsageError

SPECIAL_TOKENS = ["<img>", "</img>", "<imgpad>", "<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>",
                  "<|im_start|>", "<|im_end|>", "<|endoftext|>"]
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
    missing = [t for t in SPECIAL_TOKENS if t not in tok.get_vocab()]
    if missing:
        tok.add_special_tokens({"additional_special_tokens": missing})
    else:  # present in the vocab but they must also be matched whole, never split by BPE
        tok.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS})
    return tok


class TextEncoder:
    """Segments [{text, loss}] -> (ids, labels, image refs). Picklable (it travels to loader workers)."""

    def __init__(self, tokenizer, num_image_tokens: int = 256):
        self.tok = tokenizer
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
        self.img, self.img_end, self.pad_img = ids["<img>"], ids["</img>"], ids["<imgpad>"]
        self.eot, self.im_end = ids["<|endoftext|>"], ids["<|im_end|>"]
        self.num_image_tokens = num_image_tokens

    def encode(self, segments: list[dict], append_eot: bool):
        """Returns int32 arrays ids, labels (IGNORE where no loss) and the image refs in text order."""
        pieces, flags, refs = [], [], []  # text pieces to tokenize; None marks an image slot
        for seg in segments:
            text, loss = seg["text"], bool(seg["loss"])
            pos = 0
            for m in IMAGE_RE.finditer(text):
                if m.start() > pos:
                    pieces.append(text[pos:m.start()]); flags.append(loss)
                pieces.append(None); flags.append(False); refs.append(m.group(1))
                pos = m.end()
            if pos < len(text):
                pieces.append(text[pos:]); flags.append(loss)
        texts = [p for p in pieces if p is not None]
        encoded = iter(self.tok(texts, add_special_tokens=False)["input_ids"] if texts else [])
        image = [self.img] + [self.pad_img] * self.num_image_tokens + [self.img_end]
        ids, labels = [], []
        for piece, loss in zip(pieces, flags):
            chunk = image if piece is None else next(encoded)
            ids.extend(chunk)
            labels.extend(chunk if loss else [IGNORE] * len(chunk))
        if append_eot:
            ids.append(self.eot); labels.append(self.eot)
        return np.asarray(ids, np.int32), np.asarray(labels, np.int32), refs

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)
