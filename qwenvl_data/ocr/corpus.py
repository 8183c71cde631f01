"""Text to draw: paragraphs from a user corpus, or from Faker's en_US / zh_CN generators.

A corpus is plain text (one paragraph per line), JSONL, or parquet, with a `text` (or `caption`)
field; the filter stage's pair parquet serves as is. Paragraphs are read once per worker into a
list; pages pick paragraphs by index from their own seeded generator, so a page's text depends only
on (seed, page number), never on which worker drew it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import BadInput, UsageError

TEXT_COLUMNS = ("text", "caption")
# Text that would read as markup in the target (`<ref>`, `<quad>`) or has no visible characters.
_UNUSABLE = re.compile(r"[<>\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"\s+")


def clean_paragraph(text: str) -> str | None:
    """One paragraph ready to wrap, or None when it cannot be drawn faithfully."""
    if not isinstance(text, str) or _UNUSABLE.search(text.replace("\n", " ").replace("\t", " ")):
        return None
    text = _SPACES.sub(" ", text).strip()
    return text or None


def _read_texts(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except Exception as e:
            raise BadInput(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from None
        column = next((c for c in TEXT_COLUMNS if c in names), None)
        if column is None:
            raise BadInput(f"{path}: no text column (expected one of {', '.join(TEXT_COLUMNS)})")
        return [t for t in pq.read_table(path, columns=[column]).column(0).to_pylist() if t]
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if suffix not in (".jsonl", ".json"):
        return lines
    texts = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise BadInput(f"{path}: line {no}: not valid JSON ({e})") from None
        text = next((row.get(c) for c in TEXT_COLUMNS if isinstance(row, dict) and c in row), None)
        if text is None:
            raise BadInput(f"{path}: line {no}: no text field (expected one of {', '.join(TEXT_COLUMNS)})")
        texts.append(text)
    return texts


def load_corpus(path: str | Path, lang: str | None = None) -> list[str]:
    """Paragraphs of a corpus file or folder. A parquet with a `lang` column keeps only `lang` rows."""
    root = Path(path)
    if not root.exists():
        raise UsageError(f"--corpus {path}: no such file or directory")
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    paragraphs: list[str] = []
    for f in files:
        if lang and f.suffix.lower() == ".parquet":
            paragraphs += _lang_rows(f, lang)
        else:
            paragraphs += [p for p in map(clean_paragraph, _read_texts(f)) if p]
    if not paragraphs:
        raise BadInput(f"--corpus {path}: no usable text found")
    return paragraphs


def _lang_rows(path: Path, lang: str) -> list[str]:
    import pyarrow.parquet as pq

    names = pq.ParquetFile(path).schema_arrow.names
    if "lang" not in names:
        return [p for p in map(clean_paragraph, _read_texts(path)) if p]
    column = next((c for c in TEXT_COLUMNS if c in names), None)
    if column is None:
        raise BadInput(f"{path}: no text column (expected one of {', '.join(TEXT_COLUMNS)})")
    table = pq.read_table(path, columns=[column, "lang"])
    return [
        p
        for t, lg in zip(table.column(0).to_pylist(), table.column(1).to_pylist())
        if lg == lang and (p := clean_paragraph(t))
    ]


_FAKER_LOCALE = {"en": "en_US", "zh": "zh_CN"}


def faker_corpus(lang: str, size: int = 2000, seed: int = 0) -> list[str]:
    """A built-in corpus: Faker paragraphs, addresses and company lines in the language's locale."""
    from faker import Faker

    fake = Faker(_FAKER_LOCALE[lang])
    fake.seed_instance(seed)
    out = []
    for i in range(size):
        kind = i % 8
        if kind == 0:
            text = fake.address()
        elif kind == 1:
            text = f"{fake.company()} {fake.phone_number()}"
        elif kind == 2:
            text = fake.sentence(nb_words=6)
        else:
            text = fake.paragraph(nb_sentences=4)
        if p := clean_paragraph(text):
            out.append(p)
    return out
