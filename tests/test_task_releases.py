"""Converters on input in each dataset's current release layout (and the older one where it differs),
hostile records (coordinates that are not numbers, sizes of 0, paths out of the input, broken images),
and the one dataset registry that the CLI, the config and the Makefile read."""

import importlib.util
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from qwenvl_data.pipelines.tasks import convert_dataset
from qwenvl_data.shards import iter_tar_samples
from qwenvl_data.tasks.grit import box_mapping
from qwenvl_data.tasks.registry import DATASETS, make_datasets

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_task_fixtures", ROOT / "scripts" / "make_task_fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return fixtures.make_all(tmp_path_factory.mktemp("fixtures"))


def convert(src: Path, out: Path, dataset: str, **kw):
    stats = convert_dataset(dataset, src, out, **kw)
    samples = {}
    for tar in sorted(out.glob("*.tar")):
        for _, files in iter_tar_samples(tar):
            obj = json.loads(files["json"])
            samples[obj["uid"]] = obj | {"_files": files}
    assert stats["in"] == stats["out"] + sum(stats["rejected"].values()) and stats["out"] == len(samples)
    return stats, samples


def test_ai2d_lettered_questions_use_abc_images_and_test_ids_stay_out(data, tmp_path):
    stats, s = convert(data / "ai2d", tmp_path / "o", "ai2d")
    assert s["ai2d:0.png-1"]["image_ref"] == "abc_images/0.png" and s["ai2d:0.png-0"]["image_ref"] == "images/0.png"
    assert s["ai2d:0.png-1"]["_files"]["png"] == (data / "ai2d" / "abc_images" / "0.png").read_bytes()
    assert "ai2d:1.png-0" not in s and stats["rejected"] == {"split_excluded": 1}  # image 1 is in ai2d_test_ids.csv


@pytest.mark.parametrize("layout", ["current", "older"])
def test_docvqa_both_release_layouts(tmp_path, layout):
    fixtures.docvqa(tmp_path / "in", layout)
    stats, s = convert(tmp_path / "in", tmp_path / "o", "docvqa")
    assert s["docvqa:5"]["target"] == "1 May 1999" and s["docvqa:5"]["image_id"] == "docvqa:p1"
    assert s["docvqa:5"]["image_ref"] == ("train/documents/p1.png" if layout == "current" else "documents/p1.png")


def _resized_box(mode: str, ow: int, oh: int, box):
    """img2dataset's own Resizer on an image with one black box; the box it ends up at (0-1) + the size."""
    from img2dataset.resizer import Resizer

    img = np.full((oh, ow, 3), 255, np.uint8)
    x0, y0, x1, y1 = box
    img[round(y0 * oh) : round(y1 * oh), round(x0 * ow) : round(x1 * ow)] = 0
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    buf.seek(0)
    out, w, h, ow2, oh2, err = Resizer(64, mode, False, encode_format="png", encode_quality=1)(buf)
    assert err is None and (ow2, oh2) == (ow, oh)
    dark = np.argwhere(np.asarray(Image.open(io.BytesIO(out)).convert("L")) < 128)
    (ya, xa), (yb, xb) = dark.min(0), dark.max(0) + 1
    return (xa / w, ya / h, xb / w, yb / h), w, h


@pytest.mark.parametrize(
    "mode,ow,oh",
    [
        ("border", 200, 100),
        ("border", 90, 240),
        ("center_crop", 200, 100),
        ("center_crop", 90, 240),
        ("keep_ratio", 200, 100),
    ],
)
def test_grit_boxes_follow_img2dataset_resize(mode, ow, oh):
    box = (0.3, 0.3, 0.6, 0.7)
    got, w, h = _resized_box(mode, ow, oh, box)
    m = box_mapping(w, h, ow, oh, mode)
    assert not isinstance(m, str), m
    ax, bx, ay, by = m
    mapped = np.clip((ax * box[0] + bx, ay * box[1] + by, ax * box[2] + bx, ay * box[3] + by), 0, 1)  # crop
    assert np.allclose(mapped, got, atol=1.5 / 64), (mapped, got)


def test_grit_border_padding_span_shift_and_unknown_resize(data, tmp_path):
    stats, s = convert(data / "grit", tmp_path / "o", "grit")
    # " a red kite": stripped, the span [1, 11) moves to [0, 10); 200x100 -> 64x32 padded 16 rows top and bottom
    assert s["grit:4"]["target"] == "<ref>a red kite</ref><box>(0,250),(500,750)</box>"
    assert stats["rejected"]["unknown_resize"] == 1 and "grit:5" not in s
    assert s["grit:1"]["target"].startswith("Beautiful shot of <ref>bees</ref><box>(661,612)")  # proportional
    assert isinstance(box_mapping(64, 64, 200, 100, "keep_ratio"), str)  # a padded square under keep_ratio
    assert isinstance(box_mapping(64, 64, None, 100, "border"), str)


def test_visual_genome_v10_keys_give_distinct_uids(tmp_path):
    fixtures.vg(tmp_path / "v10", "1.0")
    fixtures.vg(tmp_path / "v12", "1.2")
    _, a = convert(tmp_path / "v10", tmp_path / "o10", "vg")
    _, b = convert(tmp_path / "v12", tmp_path / "o12", "vg")
    assert set(a) == set(b) and "vg:region100:ref" in a and not any("None" in u for u in a)
    assert {u: v["target"] for u, v in a.items()} == {u: v["target"] for u, v in b.items()}
    assert a["vg:region102:ref"]["coco_id"] == "coco:2" and a["vg:region102:ref"]["image_id"] == "vg:2"


def test_mpo_png_urls_and_c4(data, tmp_path):
    assert Image.open(data / "textvqa" / "train_images" / "abc.jpg").format == "MPO"
    _, s = convert(data / "textvqa", tmp_path / "t", "textvqa")
    assert sorted(s["textvqa:1"]["_files"]) == ["jpg", "json"]
    stats, s = convert(data / "ocrvqa", tmp_path / "o", "ocrvqa")
    assert s["ocrvqa:b3:0"]["image_ref"] == "images/b3.png" and "png" in s["ocrvqa:b3:0"]["_files"]
    assert {p.name for p in (tmp_path / "o").glob("*.tar")} == {"ocrvqa-000000.tar", "ocrvqa-png-000000.tar"}
    _, s = convert(data / "text", tmp_path / "x", "text")
    assert "text:en/c4-train.00000-of-01024:0" in s


def test_duplicate_uids_are_counted_not_written(tmp_path):
    d = tmp_path / "dvqa"
    fixtures._put(d / "images" / "a.png", fixtures.jpeg(32, 32, 1, "PNG"))
    q = {"question_id": 7, "image": "a.png", "question": "How many?", "answer": "2"}
    fixtures._put(d / "train_qa.json", [q, q | {"answer": "3"}, q | {"question_id": 8}])
    stats, s = convert(d, tmp_path / "o", "dvqa")
    assert stats["rejected"] == {"duplicate_uid": 1} and s["dvqa:7"]["target"] == "2" and len(s) == 2


def _png_header(w: int, h: int) -> bytes:
    """A few hundred bytes that claim a w x h PNG (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
        + chunk(b"IEND", b"")
    )


def test_hostile_refcoco_records_are_counted_rejects(tmp_path):
    d = tmp_path / "rc"
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(fixtures.jpeg(40, 40, 3))
    good = fixtures.jpeg(100, 100, 4)
    names = {
        1: "ok.jpg",
        2: "ok.jpg",
        3: "../secret.jpg",
        4: str(outside),
        5: "link.jpg",
        6: "trunc.jpg",
        7: "bomb.png",
    }
    fixtures._put(d / "images" / "ok.jpg", good)
    fixtures._put(d / "images" / "trunc.jpg", good[: len(good) // 2])
    fixtures._put(d / "images" / "bomb.png", _png_header(100_000, 100_000))
    os.symlink(outside, d / "images" / "link.jpg")
    ims = [{"id": i, "file_name": n, "width": 100, "height": 100} for i, n in names.items()]
    ims[1]["width"] = 0
    anns = [{"id": i, "image_id": i, "bbox": [10, 10, 20, 20]} for i in names]
    anns[0]["bbox"] = ["12px", 10, 20, 20]
    fixtures._put(d / "instances.json", {"images": ims, "annotations": anns})
    refs = [
        {"ref_id": i, "ann_id": i, "image_id": i, "split": "train", "sentences": [{"sent_id": i, "sent": f"thing {i}"}]}
        for i in names
    ]
    fixtures._put(d / "refs(unc).p", pickle.dumps(refs, protocol=0))
    stats, s = convert(d, tmp_path / "o", "refcoco")
    assert s == {}
    assert stats["rejected"] == {
        "invalid_box": 2,
        "bad_image_size": 2,
        "unsafe_path": 6,
        "decode_error": 2,
        "too_many_pixels": 2,
    }
    rejects = (tmp_path / "o" / "refcoco-rejects.jsonl").read_text()
    assert "secret" in rejects and "12px" in rejects


def test_registry_is_the_one_list(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "qwenvl_data.pipelines.cli", "tasks", "--list"], capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.split() == make_datasets()
    assert "pairs" in DATASETS and "pairs" not in make_datasets()
    cfg = yaml.safe_load((ROOT / "configs" / "tasks.yaml").read_text())["tasks"]
    sections = {d.section for d in DATASETS.values() if d.section}
    assert sections <= set(cfg), sections - set(cfg)  # every section a converter reads is documented
    assert {k for k, v in cfg.items() if isinstance(v, dict)} <= sections  # and no orphan section
    assert "tasks --list" in (ROOT / "make" / "tasks.mk").read_text()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "qwenvl_data.pipelines.cli",
            "tasks",
            "--dataset",
            "nope",
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_chartqa_older_flat_layout(tmp_path):
    d = tmp_path / "chartqa"
    fixtures._put(d / "png" / "c1.png", fixtures.jpeg(80, 60, 14, "PNG"))
    fixtures._put(d / "train_human.json", [{"imgname": "c1.png", "query": "Which bar is tallest?", "label": "Blue"}])
    _, s = convert(d, tmp_path / "o", "chartqa")
    assert s["chartqa:train_human:0"]["image_ref"] == "png/c1.png" and s["chartqa:train_human:0"]["target"] == "Blue"


def test_grit_sizes_from_the_sample_json_when_the_parquet_lacks_them(tmp_path):
    import pyarrow.parquet as pq

    d = tmp_path / "grit"
    fixtures.grit(d)
    table = pq.read_table(d / "00000.parquet")
    pq.write_table(table.drop(["width", "height", "original_width", "original_height"]), d / "00000.parquet")
    stats, s = convert(d, tmp_path / "o", "grit")
    assert s["grit:4"]["target"] == "<ref>a red kite</ref><box>(0,250),(500,750)</box>"
    assert stats["rejected"]["unknown_resize"] == 1


def test_docvqa_image_names_stay_inside(tmp_path):
    d = tmp_path / "docvqa"
    fixtures.docvqa(d)
    (tmp_path / "x.png").write_bytes(fixtures.jpeg(20, 20, 1, "PNG"))
    rec = {"question": "Date?", "answers": ["1999"]}
    fixtures._put(
        d / "train_v1.0_withQT.json",
        {
            "data": [
                rec | {"questionId": 1, "image": str(tmp_path / "x.png")},
                rec | {"questionId": 2, "image": "../../x.png"},
                rec | {"questionId": 3, "image": 7},
            ]
        },
    )
    stats, s = convert(d, tmp_path / "o", "docvqa")
    assert s == {} and stats["rejected"] == {"unsafe_path": 2, "bad_record": 1}
