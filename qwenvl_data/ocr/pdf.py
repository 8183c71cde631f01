"""Real PDF pages: pypdfium2 renders each page and reports every character's box.

pdfium's boxes are in PDF points with the origin at the bottom left; pixels = points * scale with y
flipped. Pages are checked with the paper's filters (page_filters) and rejected with a reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .page_filters import compile_ranges, page_reason
from .real_page import group_lines, page_uid, real_sample


def _chars(textpage, scale: float, page_h: float):
    n = textpage.count_chars()
    text = textpage.get_text_range(0, n) if n else ""
    aligned = len(text) == n  # characters outside the BMP make the two counts differ
    for i in range(n):
        c = text[i] if aligned else textpage.get_text_range(i, 1)
        if not c:
            continue
        if c.isspace():
            yield c, 0, 0, 0, 0
            continue
        left, bottom, right, top = textpage.get_charbox(i)
        yield c, left * scale, (page_h - top) * scale, right * scale, (page_h - bottom) * scale


def pdf_pages(path: str | Path, cfg: dict, name: str | None = None, source: str = "pdf"):
    """Yield (uid, RGB array or None, sample or None, reason or None) per page; `name` is the path
    relative to the input folder (for the uid). A file pdfium cannot open yields one rejected entry
    with reason unreadable_pdf."""
    import pypdfium2 as pdfium

    path = Path(path)
    try:
        doc = pdfium.PdfDocument(str(path))
    except Exception:
        yield page_uid(source, name or path.name), None, None, "unreadable_pdf"
        return
    ranges = compile_ranges(cfg["reject_ranges"])
    try:
        for no in range(len(doc)):
            uid = f"{page_uid(source, name or path.name)}-p{no:04d}"
            page = doc[no]
            pw, ph = page.get_size()
            scale = min(cfg["scale"], cfg["max_long_side"] / max(pw, ph, 1))
            image = np.asarray(page.render(scale=scale).to_pil().convert("RGB"))
            h, w = image.shape[:2]
            lines = group_lines(_chars(page.get_textpage(), scale, ph))
            sample, text, _ = real_sample(uid, source, w, h, lines, {"file": name or path.name, "page": no})
            reason = page_reason(text, w, h, cfg, ranges) or (None if sample["lines"] else "no_text_lines")
            yield uid, (None if reason else image), (None if reason else sample), reason
    finally:
        doc.close()
