"""Token counts for the shard index: exact with a local tokenizer, else a labelled estimate.

The Qwen-VL special tokens are added to the tokenizer (one token each), as the trainer does.
Every `<img>...</img>` counts as `<img>` + 256 visual positions + `</img>` whatever its text says,
since the model overwrites the positions between the tags. Stage 1/2 add the `<|endoftext|>` the
loader appends.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from ..errors import UsageError
from ..vocab import IMAGE_TOKENS as IMG_TOKENS
from ..vocab import SPECIAL_TOKENS

_IMG = re.compile(r"<img>.*?</img>", re.S)
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
IMAGE_SPAN_TOKENS = IMG_TOKENS + 2
ESTIMATE = "estimate: 1 token per CJK character, 1 per 4 other characters, 258 per image"


class TokenCounter:
    def __init__(self, tokenizer_dir: str | None = None):
        self._encode = None
        self.exact = tokenizer_dir is not None
        self.name = ESTIMATE
        if tokenizer_dir:
            self._encode, self.name = _load(Path(tokenizer_dir))

    def text_tokens(self, text: str) -> int:
        if self._encode is not None:
            return self._encode(text)
        cjk = len(_CJK.findall(text))
        return cjk + math.ceil((len(text) - cjk) / 4)

    def count(self, segments: list[dict], end_of_text: bool) -> int:
        text = "".join(s["text"] for s in segments)
        n_img = len(_IMG.findall(text))
        rest = _IMG.sub("", text)
        return self.text_tokens(rest) + n_img * IMAGE_SPAN_TOKENS + (1 if end_of_text else 0)


def _load(path: Path):
    if not path.is_dir():
        raise UsageError(f"{path}: no such tokenizer folder (--tokenizer)")
    if (path / "tokenizer.json").exists():
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as e:
            raise UsageError(f"{path}/tokenizer.json: cannot load ({e})") from None
        tok.add_special_tokens(list(SPECIAL_TOKENS))  # as the trainer does: one token each, never split
        return (lambda t: len(tok.encode(t, add_special_tokens=False).ids)), f"tokenizer: {path}"
    try:
        from transformers import AutoTokenizer

        hf_tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        hf_tok.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)})
    except Exception as e:
        raise UsageError(f"{path}: not a loadable tokenizer folder ({type(e).__name__}: {e})") from None
    return (lambda t: len(hf_tok(t, add_special_tokens=False)["input_ids"])), f"tokenizer: {path}"
