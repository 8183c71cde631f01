"""Train the small byte-level BPE used by tests and the demo, saved as a transformers tokenizer dir.

    python scripts/make_tokenizer.py --out demo_out/tokenizer [--vocab 512] [--text FILE]

Without --text it trains on a built-in sample of caption/VQA/grounding/chat text (English and
Chinese). The Qwen-VL special tokens are left out on purpose: model/tokenizer.py adds them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

SAMPLE = [
    "a photo of a red circle on a blue background", "a green square next to a yellow triangle",
    "Generate the caption in English:", "Generate the caption in Chinese:", "OCR with grounding:",
    "What colour is the shape? Answer: red", "Picture 1: ", "You are a helpful assistant.",
    "system user assistant", "(123,456),(789,999)", "一张红色圆形的照片", "蓝色背景上的绿色方块",
    "The quick brown fox jumps over the lazy dog. 0123456789",
]


def train_tokenizer(texts, out_dir: str | Path, vocab_size: int = 512) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(list(texts), trainer=trainer)
    out = Path(out_dir)
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(str(out))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--text", help="a UTF-8 text file, one training line per line")
    a = ap.parse_args(argv)
    texts = Path(a.text).read_text(encoding="utf-8").splitlines() if a.text else SAMPLE * 20
    print(f"tokenizer written to {train_tokenizer(texts, a.out, a.vocab)}")


if __name__ == "__main__":
    main()
