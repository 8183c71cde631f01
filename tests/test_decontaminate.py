"""`qwenvl-data decontaminate`: evaluation images found again re-encoded, resized and slightly cropped,
a control set left alone, id and question matches, the report per benchmark, and its way into the
shards' index.json."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from qwenvl_data.decontam import EvalSet, hash_images, near
from qwenvl_data.pipelines.tasks import convert_dataset
from qwenvl_data.shards import ShardWriter, iter_tar_samples

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_task_fixtures", ROOT / "scripts" / "make_task_fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "qwenvl_data.pipelines.cli", *map(str, args)], capture_output=True, text=True
    )


def variants(img: Image.Image, crop: float = 0.03) -> list[bytes]:
    """What a web copy of a benchmark image looks like: re-encoded, resized, cropped a little, as PNG."""
    w, h = img.size
    cw, ch = round(w * crop), round(h * crop)
    return [
        fixtures.encode(img, quality=55),
        fixtures.encode(img.resize((w * 6 // 10, h * 6 // 10)), quality=75),
        fixtures.encode(img.crop((cw, ch, w - cw, h - ch))),
        fixtures.encode(img.resize((w * 3 // 2, h * 3 // 2), Image.BICUBIC), "PNG"),
    ]


# dHash (the default) takes a 2% crop on every side (distance <= 5 here, the closest control is 8 away); on
# these smooth synthetic pictures pHash moves 6 bits under a 1.5% crop while two controls can be 6 apart,
# so pHash is checked on re-encoded and resized copies only.
@pytest.mark.parametrize("method,dist,crop", [("dhash", 6, 0.02), ("phash", 4, 0.0)])
def test_copies_match_and_controls_do_not(method, dist, crop):
    evals = [fixtures.picture(160, 120, s) for s in range(1000, 1030)]
    ref, ok = hash_images([fixtures.encode(e, "PNG") for e in evals], method)
    assert ok.all()
    copies = [v for e in evals for v in variants(e, crop)]
    hashes, ok = hash_images(copies, method)
    hits = near(hashes, ref, dist)
    assert ok.all() and all(len(h) and (i // 4) in h for i, h in enumerate(hits))  # each copy finds its original
    controls = [fixtures.encode(fixtures.picture(160, 120, s)) for s in range(2000, 2200)]
    hashes, ok = hash_images(controls, method)
    assert ok.all() and sum(len(h) for h in near(hashes, ref, dist)) == 0  # 200 other pictures: none removed
    assert hash_images([b"not an image", b""], method)[1].tolist() == [False, False]


def test_ids_and_questions_match_without_pixels():
    ev = EvalSet()
    ev.add("refcoco", image_id="coco:2")
    ev.add("vqav2", image_id="coco:77", question="vqav2:770")
    metas = [
        {"uid": "vg:region1:ref", "task": "ref_grounding", "image_id": "vg:9", "coco_id": "coco:2"},
        {"uid": "vqav2:770", "task": "vqa", "image_id": "coco:5"},
        {"uid": "vqav2:771", "task": "vqa", "image_id": "coco:5"},
        {"uid": "coco:3", "task": "caption", "image_id": "coco:77"},
    ]
    assert ev.match(metas, [None] * 4) == [{"refcoco": "id"}, {"vqav2": "question"}, {}, {"vqav2": "id"}]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The fixture datasets converted by `tasks`, as `make demo-tasks` leaves them."""
    base = tmp_path_factory.mktemp("dc")
    data = fixtures.make_all(base / "in")
    for d in ("refcoco", "vg", "coco", "vqav2", "textvqa", "docvqa", "chartqa", "ai2d", "gqa", "pairs"):
        convert_dataset(d, data / d, base / "tasks" / d)
    return base, data


def test_demo_counts_per_benchmark_and_the_index(demo, tmp_path):
    base, data = demo
    out = tmp_path / "dc"
    r = cli("decontaminate", "--input", *sorted((base / "tasks").iterdir()), "--output", out, "--eval-root", data)
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "decontamination.json").read_text())
    removed = {b: v["removed"] for b, v in rep["benchmarks"].items()}
    # COCO image 2 holds RefCOCO val refs: its COCO caption and VG's copy (coco_id 2) go, by id
    assert removed["refcoco"] == {"coco": 1, "vg": 2} and rep["benchmarks"]["refcoco"]["by"] == {"id": 3}
    # pair images 3, 4, 5 are a resized VQAv2 val image, a re-encoded DocVQA val page, a cropped ChartQA test chart
    assert removed["vqav2"] == {"pairs": 1} and removed["docvqa"] == {"pairs": 1} and removed["chartqa"] == {"pairs": 1}
    assert removed["textvqa"] == removed["gqa"] == removed["ai2d"] == {}
    assert rep["benchmarks"]["ai2d"]["eval_questions"] == 1 and rep["benchmarks"]["gqa"]["hashed"] == 1
    for src, c in rep["sources"].items():
        assert c["in"] == c["out"] + c["removed"], src
        kept = [json.loads(f["json"])["uid"] for t in (out / src).glob("*.tar") for _, f in iter_tar_samples(t)]
        assert len(kept) == c["out"]
    pairs = [json.loads(f["json"])["uid"] for _, f in iter_tar_samples(next((out / "pairs").glob("*.tar")))]
    assert len(pairs) == 9 and not {"laion:3", "coyo:4", "laion:5"} & set(pairs)  # the 9 others: the control
    assert rep["totals"] == {"in": rep["totals"]["in"], "out": rep["totals"]["in"] - 6, "removed": 6}
    assert rep["hashing"]["training_images_hashed"] > 0 and rep["hashing"]["images_per_second_per_core"] > 0
    assert "refcoco" in r.stdout and "removed" in r.stdout
    s2 = cli("shards", "--stage", 2, "--input", out / "vg", out / "pairs", "--output", tmp_path / "s2")
    assert s2.returncode == 0, s2.stderr
    index = json.loads((tmp_path / "s2" / "index.json").read_text())
    assert index["decontamination"]["benchmarks"]["refcoco"]["removed"] == {"coco": 1, "vg": 2}
    again = cli("decontaminate", "--input", *sorted((base / "tasks").iterdir()), "--output", out, "--eval-root", data)
    assert again.returncode == 0 and json.loads((out / "decontamination.json").read_text())["totals"] == rep["totals"]


def test_question_match_in_a_task_shard(demo, tmp_path):
    base, data = demo
    src = tmp_path / "mixed"
    with ShardWriter(src, 0, "mixed") as w:
        for i, uid in enumerate(["vqav2:770", "vqav2:1"]):  # 770 is a VQAv2 val question
            w.add(
                f"{i:06d}",
                {
                    "jpg": fixtures.jpeg(64, 48, 3000 + i),
                    "json": {
                        "schema": "task",
                        "uid": uid,
                        "source": "mixed",
                        "task": "vqa",
                        "lang": "en",
                        "prompt": " q Answer:",
                        "target": "a",
                        "width": 64,
                        "height": 48,
                    },
                },
            )
        w.close()
    r = cli("decontaminate", "--input", src, "--output", tmp_path / "o", "--eval-root", data)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "o" / "decontamination.json").read_text())
    assert rep["benchmarks"]["vqav2"]["by"] == {"question": 1} and rep["sources"]["mixed"]["out"] == 1


def test_bad_use_is_one_line(demo, tmp_path):
    base, data = demo
    cfg = tmp_path / "c.yaml"
    cfg.write_text("decontaminate:\n  hash:\n    max_distance: 100\n")
    r = cli(
        "decontaminate",
        "--input",
        base / "tasks" / "vg",
        "--output",
        tmp_path / "o",
        "--eval-root",
        data,
        "--config",
        cfg,
    )
    assert r.returncode == 2 and "max_distance" in r.stderr and "Traceback" not in r.stderr
    r = cli("decontaminate", "--input", base / "tasks" / "vg", "--output", base / "tasks", "--eval-root", data)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("x")
    r = cli("decontaminate", "--input", base / "tasks" / "vg", "--output", tmp_path / "full", "--eval-root", data)
    assert r.returncode == 2 and "not empty" in r.stderr


def test_broken_benchmark_file_is_one_line(demo, tmp_path):
    base, _ = demo
    root = tmp_path / "eval"
    fixtures._put(root / "vqav2" / "v2_OpenEnded_mscoco_val2014_questions.json", {"questions": [{"question_id": 1}]})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "decontaminate:\n  benchmarks:\n"
        + "".join(
            f"    {b}: null\n"
            for b in ("refcoco", "refcoco+", "refcocog", "gqa", "textvqa", "docvqa", "chartqa", "ai2d")
        )
    )
    r = cli(
        "decontaminate",
        "--input",
        base / "tasks" / "vg",
        "--output",
        tmp_path / "o",
        "--eval-root",
        root,
        "--config",
        cfg,
    )
    assert r.returncode == 1 and "benchmark vqav2" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0
