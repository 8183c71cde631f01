"""Real pages for the demo and for trying --pdf / --html without finding files first.

    python -m qwenvl_data.ocr.demo_pages DIR     # writes DIR/pdf/report.pdf and DIR/html/page.html

The PDF is made with matplotlib's PDF backend (real text objects, so pdfium reports character
boxes); the HTML page has English and Chinese blocks and a link to an image that must never load.
"""

from __future__ import annotations

import sys
from pathlib import Path

EN = [
    "Annual report of the data team",
    "",
    "We cleaned one billion image-text pairs this year.",
    "Every rule and its threshold lives in one YAML file,",
    "and every dropped row carries its reason.",
    "Synthetic pages are rendered with their line quads;",
    "real PDF pages keep pdfium's character boxes.",
]
HTML = """<!doctype html><html><head><meta charset="utf-8"><style>
body { margin: 48px; font-family: sans-serif; color: #222; background: #fdfcf7 }
h1 { font-size: 34px } p { font-size: 19px; line-height: 1.5; max-width: 820px }
.zh { font-size: 22px }
</style></head><body>
<h1>Notes on <em>grounded</em> OCR data</h1>
<p>Each line of this page is located by the browser itself: a DOM range per character gives its
rectangle, and lines are grouped from those rectangles in reading order.</p>
<p class="zh">每一行文字都有自己的四边形框，训练模型同时读出文字和位置。</p>
<p>The page asks for an image below; the renderer blocks every request, so it never loads.</p>
<img src="http://127.0.0.1:9/never.png" width="64" height="64">
</body></html>
"""


def write_demo_pdf(path: Path) -> Path:
    import matplotlib

    matplotlib.use("pdf")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    path.parent.mkdir(parents=True, exist_ok=True)
    with PdfPages(path) as pdf:
        for page in range(2):
            fig = plt.figure(figsize=(8.27, 11.69))
            for i, text in enumerate(EN):
                size = 22 if i == 0 else 13
                fig.text(0.1, 0.92 - i * 0.05, f"{text} (page {page + 1})" if i == 0 else text, fontsize=size)
            pdf.savefig(fig)
            plt.close(fig)
    return path


def write_demo_html(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HTML, encoding="utf-8")
    return path


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "demo_pages")
    print(write_demo_pdf(root / "pdf" / "report.pdf"), write_demo_html(root / "html" / "page.html"))
