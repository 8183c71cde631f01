"""Train the small byte-level BPE used by tests and the demo, saved as a transformers tokenizer dir.

    python scripts/make_tokenizer.py --out demo_out/tokenizer [--vocab 512] [--text FILE]

Without --text it trains on a built-in sample of caption/VQA/grounding/chat text (English and
Chinese). The Qwen-VL special tokens are left out on purpose: model/tokenizer.py adds them, in the
official order (qwenvl_data.vocab.SPECIAL_TOKENS), after the BPE tokens: their ids keep the official
relative order; on a Qwen vocabulary (151643 BPE tokens) they are the official ids.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from qwenvl_data.model.fixtures import SAMPLE_TEXT, train_tokenizer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--text", help="a UTF-8 text file, one training line per line")
    a = ap.parse_args(argv)
    texts = Path(a.text).read_text(encoding="utf-8").splitlines() if a.text else SAMPLE_TEXT * 20
    print(f"tokenizer written to {train_tokenizer(texts, a.out, a.vocab)}")


if __name__ == "__main__":
    main()
