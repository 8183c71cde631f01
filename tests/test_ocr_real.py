"""Real pages: PDFs made here with matplotlib's PDF backend, HTML rendered by Debian's chromium with
every network request blocked (a loopback server proves nothing was fetched)."""

import http.server
import io
import json
import os
import shutil
import threading

import matplotlib

matplotlib.use("pdf")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from PIL import Image  # noqa: E402

from qwenvl_data.boxes import parse_refs  # noqa: E402
from qwenvl_data.ocr.ink import line_contrast  # noqa: E402
from qwenvl_data.ocr.real_page import group_lines  # noqa: E402
from qwenvl_data.pipelines.cli import main  # noqa: E402
from qwenvl_data.schema import first_error  # noqa: E402
from qwenvl_data.shards import iter_tar_samples  # noqa: E402

GOOD_LINES = [f"Line {i}: the quick brown fox jumps over dog {i}" for i in range(8)]


def make_pdf(path, pages):
    with PdfPages(path) as pdf:
        for lines in pages:
            fig = plt.figure(figsize=(8.5, 11))
            for i, text in enumerate(lines):
                fig.text(0.1, 0.9 - i * 0.07, text, fontsize=14)
            pdf.savefig(fig)
            plt.close(fig)


def samples(folder, prefix):
    out = []
    for tar in sorted(folder.glob(f"{prefix}-*.tar")):
        for key, files in iter_tar_samples(tar):
            image = np.asarray(Image.open(io.BytesIO(files["png"])).convert("RGB"))
            out.append((key, image, json.loads(files["json"])))
    return out


def assert_on_ink(image, sample):
    c = line_contrast(image, [ln["quad_px"] for ln in sample["lines"]])
    assert (c[:, 0] >= 2.5 * (c[:, 1] + 1.0)).all(), (sample["uid"], c)


def test_pdf_pages_lines_words_and_filters(tmp_path):
    pdfs = tmp_path / "pdf"
    pdfs.mkdir()
    make_pdf(pdfs / "doc.v1.pdf", [GOOD_LINES, ["Łódź is spelled with Latin Extended-A"] * 3, ["tiny"]])
    (pdfs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    out = tmp_path / "out"
    assert main(["synth-ocr", "--output", str(out), "--pdf", str(pdfs)]) == 0
    funnel = json.loads((out / "synth_ocr.json").read_text())["sources"]["pdf"]
    assert funnel == {"in": 4, "kept": 1, "dropped": {"latin_extended_a": 1, "too_few_chars": 1, "unreadable_pdf": 1}}
    [(key, image, sample)] = samples(out, "pdf")
    assert key.startswith("pdf-doc_v1-") and key.endswith("-p0000") and "." not in key
    assert first_error("ocr", sample) is None and sample["file"] == "doc.v1.pdf"
    assert [r["ref"] for r in parse_refs(sample["target"])] == GOOD_LINES  # reading order
    assert sample["lines"][0]["words"][0]["text"] == "Line"
    assert len(sample["lines"][0]["words"]) == len(GOOD_LINES[0].split())
    assert_on_ink(image, sample)
    assert main(["validate", str(out)]) == 0


def test_grouping_splits_lines_on_newlines_and_jumps():
    chars = [
        ("a", 0, 0, 5, 10),
        ("b", 5, 0, 10, 10),
        (" ", 0, 0, 0, 0),
        ("c", 12, 0, 17, 10),
        ("d", 0, 20, 5, 30),  # next line without a newline character
        ("\n", 0, 0, 0, 0),
        ("中", 0, 40, 10, 50),
        ("文", 10, 40, 20, 50),
        ("x", 30, 40, 30, 50),
    ]
    lines = group_lines(chars)
    assert [ln["text"] for ln in lines] == ["ab c", "d", "中文"]  # the empty-box 'x' is invisible
    assert [w["text"] for w in lines[2]["words"]] == ["中", "文"]
    assert lines[0]["quad"].tolist() == [[0, 0], [17, 0], [17, 10], [0, 10]]


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def do_GET(self):
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"body{background:red}")

    def log_message(self, *a):
        pass


@pytest.mark.skipif(  # skipped only outside CI: in CI make setup installed chromium, so its absence fails
    shutil.which("chromium") is None and not os.environ.get("CI"), reason="Debian chromium not installed (make setup)"
)
def test_html_pages_render_offline_with_line_boxes(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    html = tmp_path / "html"
    html.mkdir()
    (html / "en.html").write_text(
        f'<html><head><link rel="stylesheet" href="{base}/style.css"><style>body{{margin:40px;'
        f"font:20px sans-serif}}</style></head><body><h1>Quarterly <b>report</b> summary</h1>"
        f"<p>Revenue grew in every region this quarter while costs stayed flat across the board.</p>"
        f'<img src="{base}/logo.png"><script src="{base}/x.js"></script>'
        f'<div style="display:none">hidden words</div><p>中文段落测试一下</p></body></html>'
    )
    (html / "ext.html").write_text("<html><body><p>Ærøskøbing Ŧest with Latin Extended-A letters</p></body></html>")
    out = tmp_path / "out"
    try:
        assert main(["synth-ocr", "--output", str(out), "--html", str(html)]) == 0
    finally:
        server.shutdown()
    assert _Recorder.hits == []  # the browser fetched nothing
    funnel = json.loads((out / "synth_ocr.json").read_text())["sources"]["html"]
    assert funnel == {"in": 2, "kept": 1, "dropped": {"latin_extended_a": 1}}
    [(key, image, sample)] = samples(out, "html")
    texts = [ln["text"] for ln in sample["lines"]]
    assert texts[0] == "Quarterly report summary" and "hidden words" not in " ".join(texts)
    assert "中文段落测试一下" in texts
    assert image.shape[:2] == (1024, 1024) and first_error("ocr", sample) is None
    assert_on_ink(image, sample)
    cjk = next(ln for ln in sample["lines"] if ln["text"] == "中文段落测试一下")
    width_px = cjk["quad_px"][1][0] - cjk["quad_px"][0][0]
    assert width_px > 8 * 20 * 0.8  # drawn with a real CJK font (full-width glyphs), not tofu


def test_page_filters_name_the_first_failing_rule():
    from qwenvl_data.config import load_section
    from qwenvl_data.ocr.page_filters import compile_ranges, page_reason

    cfg = load_section("synth_ocr")["pdf"]
    ranges = compile_ranges(cfg["reject_ranges"])
    ok = "A plain English page with enough characters."
    assert page_reason(ok, 800, 1000, cfg, ranges) is None
    assert page_reason(ok, 100, 1000, cfg, ranges) == "image_too_small"
    assert page_reason("abc", 800, 1000, cfg, ranges) == "too_few_chars"
    assert page_reason("x" * 5000, 800, 1000, cfg, ranges) == "too_many_chars"
    assert page_reason(ok + " ǅ", 800, 1000, cfg, ranges) == "latin_extended_b"
    assert page_reason(ok + " \ue001", 800, 1000, cfg, ranges) == "private_use_area"
    assert page_reason(ok + " if a < b", 800, 1000, cfg, ranges) == "markup_chars"
    assert page_reason(ok + " ạ", 800, 1000, cfg, ranges) is None  # Latin Ext. Additional: HTML only
    html = load_section("synth_ocr")["html"]
    assert page_reason(ok + " ạ", 800, 1000, html, compile_ranges(html["reject_ranges"])) == "latin_extended_additional"
