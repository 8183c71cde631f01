"""Synthetic OCR pages: quads on the ink, glyph coverage, targets, determinism, resume, engines."""

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from qwenvl_data.boxes import parse_refs
from qwenvl_data.config import load_section
from qwenvl_data.errors import BadInput
from qwenvl_data.ocr.corpus import load_corpus
from qwenvl_data.ocr.fonts import charset, default_font_files, fonts_for
from qwenvl_data.ocr.ink import line_contrast
from qwenvl_data.ocr.render import load_resources, render_page
from qwenvl_data.pipelines.cli import main
from qwenvl_data.schema import first_error
from qwenvl_data.shards import iter_tar_samples

CFG = load_section("synth_ocr")
FONT_BY_NAME = {p.name: str(p) for p in default_font_files()}


def on_ink(image: np.ndarray, quads) -> np.ndarray:
    """True per quad when its inside differs from the local background much more than the band."""
    c = line_contrast(image, quads)
    return c[:, 0] >= 2.5 * (c[:, 1] + 1.0)


@pytest.fixture(scope="module")
def pages():
    out = {}
    for lang in ("en", "zh"):
        res = load_resources(lang, CFG)
        out[lang] = [render_page(CFG, res, 7, i) for i in range(6)]
    return out


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_quads_are_where_the_ink_is(pages, lang):
    tested = {"clear": 0}
    for jpeg, sample, _ in pages[lang]:
        image = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
        assert image.shape[:2] == (sample["height"], sample["width"])
        assert max(image.shape[:2]) == CFG["long_side"]
        quads = np.array([ln["quad_px"] for ln in sample["lines"]])
        assert len(quads) >= 3
        assert on_ink(image, quads).all(), sample["uid"]
        # The check has teeth: quads moved down onto paper where no line is drawn fail it.
        shifted = quads.copy()
        shifted[:, :, 1] += 1.5 * (quads[:, 3, 1] - quads[:, 0, 1])[:, None]
        lo, hi = quads.min(1), quads.max(1)
        slo, shi = shifted.min(1), shifted.max(1)
        clear = [
            i
            for i in range(len(quads))
            if not ((slo[i] < hi) & (shi[i] > lo)).all(1).any() and shi[i, 1] < sample["height"]
        ]
        if clear:
            assert on_ink(image, shifted[clear]).mean() < 0.2
            tested["clear"] += len(clear)
    assert tested["clear"] > 0


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_no_character_lacks_a_glyph_and_target_matches_lines(pages, lang):
    for _, sample, _ in pages[lang]:
        assert first_error("ocr", sample) is None
        assert sample["lang"] == lang and sample["prompt"] == "OCR with grounding:"
        refs = parse_refs(sample["target"])
        assert [r["ref"] for r in refs] == [ln["text"] for ln in sample["lines"]]
        assert [r["quads"][0] for r in refs] == [[tuple(p) for p in ln["quad"]] for ln in sample["lines"]]
        for ln in sample["lines"]:
            chars = charset(FONT_BY_NAME[ln["font"]])
            assert all(ord(c) in chars or c.isspace() for c in ln["text"]), ln["text"]
            # words, in order, spell the line (spaces aside)
            assert "".join(w["text"] for w in ln["words"]) == "".join(ln["text"].split())
            for w in ln["words"]:  # word boxes sit inside their line's box (bins, 1 bin of slack)
                assert w["box"][0] >= ln["box"][0] - 1 and w["box"][2] <= ln["box"][2] + 1
        if lang == "zh":
            assert any("\u4e00" <= c <= "\u9fff" for c in sample["target"])


def test_paragraphs_no_font_can_draw_are_skipped(tmp_path):
    # U+1F9FF (an emoji) is in neither default font: its paragraph must never be drawn.
    # A 400-character "word" is wider than any column: it would run off the paper.
    (tmp_path / "c.txt").write_text(
        "plain words that every font can draw\nbad \U0001f9ff glyph here\nsee " + "w" * 400 + "\n"
    )
    res = load_resources("en", CFG, corpus=str(tmp_path / "c.txt"))
    skipped = 0
    for i in range(3):
        _, sample, counters = render_page(CFG, res, 0, i)
        assert "\U0001f9ff" not in sample["target"] and "glyph" not in sample["target"]
        assert "www" not in sample["target"]
        assert sample["lines"]
        skipped += counters["paragraphs_skipped"]
    assert skipped > 0


def test_only_fonts_that_cover_the_language(tmp_path):
    latin = tmp_path / "fonts"
    latin.mkdir()
    (latin / "DejaVuSans.ttf").write_bytes(Path(FONT_BY_NAME["DejaVuSans.ttf"]).read_bytes())
    assert fonts_for("en", latin).paths
    rc = main(["synth-ocr", "--output", str(tmp_path / "o"), "--num", "2", "--lang", "zh", "--fonts", str(latin)])
    assert rc == 2  # no CJK font in the folder: a usage error, not tofu


def test_corpus_formats(tmp_path):
    pq.write_table(
        pa.table({"caption": ["a cat on a mat", "一只猫", "x <ref>y</ref>"], "lang": ["en", "zh", "en"]}),
        tmp_path / "pairs.parquet",
    )
    assert load_corpus(tmp_path / "pairs.parquet", "en") == ["a cat on a mat"]  # markup-like text dropped
    assert load_corpus(tmp_path / "pairs.parquet", "zh") == ["一只猫"]
    (tmp_path / "c.jsonl").write_text('{"text": "one  line\\n"}\n{"text": "two"}\n')
    assert load_corpus(tmp_path / "c.jsonl") == ["one line", "two"]
    (tmp_path / "bad.jsonl").write_text('{"title": "no text"}\n')
    with pytest.raises(BadInput, match="bad.jsonl: line 1: no text field"):
        load_corpus(tmp_path / "bad.jsonl")


def _shard_bytes(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tar"))}


def test_job_is_deterministic_resumable_and_valid(tmp_path, capsys):
    args = ["--num", "10", "--shard-size", "3", "--seed", "5"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["synth-ocr", "--output", str(a), "--workers", "2", *args]) == 0
    assert main(["synth-ocr", "--output", str(b), "--workers", "1", *args]) == 0
    first = _shard_bytes(a)
    assert sorted(first) == [
        "synthdog-en-000000.tar",
        "synthdog-en-000001.tar",
        "synthdog-zh-000000.tar",
        "synthdog-zh-000001.tar",
    ]
    assert first == _shard_bytes(b)  # same seed, any worker count: byte-identical shards
    funnel = json.loads((a / "synth_ocr.json").read_text())["sources"]
    assert funnel["synthdog-en"]["in"] == 5 and funnel["synthdog-zh"]["kept"] == 5
    assert main(["validate", str(a)]) == 0

    # Resume: a finished shard is skipped, a missing one is rewritten identically.
    for p in a.glob("synthdog-zh-000001.*"):
        p.unlink()
    (a / ".tmp-999-synthdog-en-000000.tar").write_bytes(b"half a shard")
    capsys.readouterr()
    assert main(["synth-ocr", "--output", str(a), "--workers", "1", *args]) == 0
    assert "(1 written, 3 already done)" in capsys.readouterr().out
    assert _shard_bytes(a) == first and not list(a.glob(".tmp-*"))

    # another seed gives other pages
    assert (
        main(
            [
                "synth-ocr",
                "--output",
                str(tmp_path / "c"),
                "--workers",
                "1",
                "--num",
                "10",
                "--shard-size",
                "3",
                "--seed",
                "6",
            ]
        )
        == 0
    )
    assert _shard_bytes(tmp_path / "c") != first

    with tarfile.open(a / "synthdog-en-000000.tar") as tar:
        names = tar.getnames()
    assert names[:2] == ["synthdog-en-s5-000000000.jpg", "synthdog-en-s5-000000000.json"]
    rows = pq.read_table(a / "synthdog-en-000000.parquet").to_pylist()
    assert [r["uid"] for r in rows] == [k for k, _ in iter_tar_samples(a / "synthdog-en-000000.tar")]


def test_bad_usage_is_one_line(tmp_path, capsys):
    assert main(["synth-ocr", "--output", str(tmp_path)]) == 2
    assert "nothing to do" in capsys.readouterr().err
    assert main(["synth-ocr", "--output", str(tmp_path), "--num", "2", "--corpus", str(tmp_path / "nope")]) == 2


@pytest.mark.skipif(os.environ.get("QWENVL_SKIP_RAY") == "1", reason="QWENVL_SKIP_RAY=1")
def test_ray_engine_writes_the_same_bytes(tmp_path):
    args = ["--num", "4", "--shard-size", "2", "--seed", "1", "--lang", "en"]
    assert main(["synth-ocr", "--output", str(tmp_path / "l"), "--workers", "1", *args]) == 0
    assert main(["synth-ocr", "--output", str(tmp_path / "r"), "--engine", "ray", "--workers", "2", *args]) == 0
    assert _shard_bytes(tmp_path / "l") == _shard_bytes(tmp_path / "r")


@pytest.mark.parametrize("name", ["DejaVuSans.ttf", "DejaVuSerif-Italic.ttf", "wqy-microhei.ttc"])
def test_summed_character_advances_match_whole_line_layout(name):
    # The layout measures characters one by one; PIL draws a whole string. They must agree, or
    # word boxes drift along the line.
    from qwenvl_data.ocr.layout import Measure

    m = Measure(FONT_BY_NAME[name], 22)
    for text in [
        "AVAWAY To Ta, Wa. Yo LT office flight",
        "Typography: quick brown fox (1999)",
        "中文段落，测试一下。OCR 2048",
    ]:
        assert abs(m.token(text)[0] - m.font.getlength(text)) < 0.5


def test_backgrounds_from_image_files_and_pair_shards(tmp_path):
    from qwenvl_data.shards import ShardWriter

    photo = np.zeros((300, 400, 3), np.uint8)
    photo[:, :, 1] = 200  # pure green: easy to find around the paper
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG")
    with ShardWriter(tmp_path / "bg", 0, "") as w:
        w.add("p0", {"jpg": buf.getvalue(), "txt": "a caption"})
        w.close()
    (tmp_path / "bg" / "broken.png").write_bytes(b"not an image")  # falls back to a texture, no crash
    res = load_resources("en", CFG, backgrounds=str(tmp_path / "bg"))
    assert len(res.backgrounds) == 2 and isinstance(res.backgrounds[1], bytes)
    greens = 0
    for i in range(4):
        jpeg, sample, _ = render_page(CFG, res, 0, i)
        corner = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))[:4, :4].reshape(-1, 3).mean(0)
        greens += corner[1] > 120 and corner[0] < 80 and corner[2] < 80
        assert sample["lines"]
    assert greens >= 1


def test_warp_points_of_an_empty_page():
    """A page whose fonts leave no line (nothing to warp) is not a crash: OpenCV returns None there."""
    import numpy as np

    from qwenvl_data.ocr.effects import warp_points

    out = warp_points(np.eye(3), np.zeros((0, 4, 2)))
    assert out.shape == (0, 4, 2)
    assert warp_points(np.eye(3), np.array([[1.0, 2.0]])).tolist() == [[1.0, 2.0]]
