"""Pure-text autoregression samples from a corpus: JSON lines (`{"text": ..., "lang"?: ...}` a line) in
DIR/**/*.jsonl, *.jsonl.gz or *.json.gz (C4's release: en/c4-train.00000-of-01024.json.gz) and/or
DIR/**/*.parquet (a `text` column, optional `lang`). Task `text`: no image, empty prompt,
all the text carries loss. Documents longer than `max_chars` are cut at whitespace into pieces."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from pathlib import Path

import pyarrow.parquet as pq

from ..errors import BadInput
from .common import Reject, Sample

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def guess_lang(text: str) -> str:
    """zh when at least a fifth of the non-space characters are CJK ideographs, else en."""
    chars = len(text) - text.count(" ")
    return "zh" if chars and len(_CJK.findall(text)) * 5 >= chars else "en"


def split_text(text: str, max_chars: int) -> list[str]:
    pieces, start = [], 0
    while len(text) - start > max_chars:
        cut = text.rfind(" ", start, start + max_chars)
        cut = cut if cut > start else start + max_chars
        pieces.append(text[start:cut].strip())
        start = cut
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


_JSONL = (".jsonl", ".jsonl.gz", ".json.gz")


def _name(f: Path, input_dir: Path) -> str:
    rel = str(f.relative_to(input_dir))
    for ext in _JSONL + (".parquet",):
        if rel.endswith(ext):
            return rel[: -len(ext)]
    return rel


def _json_lines(f: Path, name: str):
    opener = gzip.open if f.name.endswith(".gz") else open
    try:
        with opener(f, "rt", encoding="utf-8", errors="replace") as fh:
            for i, line in enumerate(fh):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    rec = None
                yield f"{name}:{i}", rec if isinstance(rec, dict) else None
    except (OSError, EOFError, zlib.error) as e:
        raise BadInput(f"{f}: cannot read ({type(e).__name__}: {e})") from None


def _records(input_dir: Path):
    files = sorted(f for f in input_dir.rglob("*") if f.is_file() and f.name.endswith(_JSONL + (".parquet",)))
    if not files:
        raise BadInput(f"{input_dir}: no text corpus (*.jsonl, *.json.gz or *.parquet with a 'text' column)")
    for f in files:
        name = _name(f, input_dir)
        if f.suffix != ".parquet":
            yield from _json_lines(f, name)
        else:
            table = pq.read_table(f)
            if "text" not in table.column_names:
                raise BadInput(f"{f}: no 'text' column")
            for i, rec in enumerate(
                table.select([c for c in ("text", "lang", "id") if c in table.column_names]).to_pylist()
            ):
                yield f"{name}:{i}", rec


def convert(input_dir: Path, dataset: str, images_dir: Path, cfg: dict):
    max_chars = int(cfg.get("max_chars") or 8000)
    for rid, rec in _records(input_dir):
        uid = f"{dataset}:{rec.get('id') if rec and rec.get('id') is not None else rid}"
        text = rec.get("text") if rec else None
        if not isinstance(text, str):
            yield Reject(uid, "bad_record", "no 'text' string")
            continue
        pieces = split_text(text.strip(), max_chars)
        if not pieces:
            yield Reject(uid, "empty_text")
            continue
        lang = rec.get("lang") if rec.get("lang") in ("en", "zh") else guess_lang(pieces[0])
        for j, piece in enumerate(pieces):
            yield Sample(f"{uid}:{j}" if len(pieces) > 1 else uid, "text", "", piece, lang)
