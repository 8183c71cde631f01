"""`qwenvl-data preview`: OCR quads and grounding boxes land where the sample says."""

import io

import numpy as np
from PIL import Image

from qwenvl_data.config import load_section
from qwenvl_data.ocr.render import load_resources, render_page
from qwenvl_data.pipelines.cli import main
from qwenvl_data.pipelines.preview import draw_sample, shapes
from qwenvl_data.shards import ShardWriter


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_grounding_boxes_are_denormalised_with_the_image_size(tmp_path):
    sample = {
        "schema": "task",
        "task": "grounded_caption",
        "target": "<ref>a dog</ref><box>(100,200),(500,600)</box> and <ref>a cat</ref><box>(600,100),(900,300)</box>",
    }
    kinds = shapes(sample, 400, 200)
    assert [(k, label) for k, _, label in kinds] == [("box", "a dog"), ("box", "a cat")]
    assert kinds[0][1][0] == (40.0, 40.0) and kinds[0][1][2] == (200.0, 120.0)
    drawn = np.asarray(draw_sample(Image.new("RGB", (400, 200), "white"), sample, None))
    assert (drawn[80, 39:42] != 255).any()  # left edge of the dog box at x = 40
    assert (drawn[80, 100] == 255).all()  # inside the box stays untouched

    with ShardWriter(tmp_path, 0, "refcoco") as w:
        w.add("s0", {"jpg": _png(Image.new("RGB", (400, 200), "white")), "json": sample})
        w.close()
    out = tmp_path / "sheet.png"
    assert main(["preview", str(tmp_path / "refcoco-000000.tar"), "--output", str(out)]) == 0
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape[1] == 480 + 8 and (sheet != 255).any()


def test_ocr_shard_sheet_draws_line_quads(tmp_path):
    cfg = load_section("synth_ocr")
    res = load_resources("en", cfg)
    with ShardWriter(tmp_path, 0, "synthdog-en") as w:
        for i in range(3):
            jpeg, sample, _ = render_page(cfg, res, 0, i)
            w.add(sample["uid"], {"jpg": jpeg, "json": sample})
        w.close()
    jpeg, sample, _ = render_page(cfg, res, 0, 0)
    lines = [s for s in shapes(sample, sample["width"], sample["height"]) if s[0] == "line"]
    assert len(lines) == len(sample["lines"])
    ref = np.array(sample["lines"][0]["quad_px"])
    assert np.abs(np.array(lines[0][1]) - ref).max() <= 2 * max(sample["width"], sample["height"]) / 1000
    out = tmp_path / "s.png"
    assert main(["preview", str(tmp_path / "synthdog-en-000000.tar"), "--output", str(out), "--cols", "3"]) == 0
    assert Image.open(out).size[0] == 3 * (480 + 8)


def test_preview_bad_input(tmp_path, capsys):
    (tmp_path / "x.tar").write_bytes(b"not a tar")
    assert main(["preview", str(tmp_path / "x.tar")]) == 1
    assert "x.tar" in capsys.readouterr().err
    assert main(["preview", str(tmp_path / "missing.tar")]) == 2
