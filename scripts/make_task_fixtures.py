"""Tiny fixtures of every dataset `qwenvl-data tasks` reads, in each dataset's real file layout.

    python scripts/make_task_fixtures.py OUT_DIR        # writes OUT_DIR/<dataset>/...

Each fixture holds a few good records and a few bad ones (box outside the image, empty or inverted
box, missing image, val split, empty answer, ...) so the converters' reject reasons show up. The
benchmarks' evaluation splits sit beside the training files as the releases ship them (RefCOCO val
refs, VQAv2 val, TextVQA val, DocVQA val, ChartQA test, AI2D test ids, GQA testdev), and three pair
images are re-encoded, resized or cropped copies of evaluation images, so `qwenvl-data decontaminate`
has something to find. Also writes `sft/` (Qwen-VL fine-tuning JSON with two pictures) and `pairs/`
(stage-1 pair shards in the download stage's documented shape). Used by `make demo-tasks` and the tests.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def picture(w: int, h: int, seed: int) -> Image.Image:
    """A smooth random picture (distinct per seed, so perceptual hashes differ) with a square on it."""
    small = np.random.RandomState(seed).randint(0, 256, (5, 5, 3)).astype(np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
    img.paste((255 - (seed * 53) % 256, 80, 160), (w // 4, h // 4, w // 2, h // 2))
    return img


def encode(img: Image.Image, fmt: str = "JPEG", quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, quality=quality) if fmt == "JPEG" else img.save(buf, fmt)
    return buf.getvalue()


def jpeg(w: int, h: int, seed: int, fmt: str = "JPEG") -> bytes:
    return encode(picture(w, h, seed), fmt)


def mpo(w: int, h: int, seed: int) -> bytes:
    """A camera-style JPEG with a multi-picture (MPF) segment: Pillow reports it as MPO."""
    buf = io.BytesIO()
    picture(w, h, seed).save(buf, "MPO", save_all=True, append_images=[picture(w // 2, h // 2, seed + 1)])
    return buf.getvalue()


def _put(path: Path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def refcoco(d: Path, refs_name: str = "refs(unc).p"):
    # two COCO images; image 3 is listed but its file is missing
    ims = [
        {"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "width": 200, "height": 100},
        {"id": 2, "file_name": "COCO_train2014_000000000002.jpg", "width": 100, "height": 100},
        {"id": 3, "file_name": "COCO_train2014_000000000003.jpg", "width": 100, "height": 100},
    ]
    for im in ims[:2]:
        _put(d / "images" / im["file_name"], jpeg(im["width"], im["height"], im["id"]))
    anns = [
        {"id": 10, "image_id": 1, "bbox": [20, 10, 50, 40], "category_id": 1},
        {"id": 11, "image_id": 1, "bbox": [150, 50, 80, 80], "category_id": 2},  # past the edge: clipped
        {"id": 12, "image_id": 2, "bbox": [10, 10, 0, 20], "category_id": 3},  # zero width: empty
        {"id": 13, "image_id": 3, "bbox": [1, 1, 5, 5], "category_id": 3},
    ]
    _put(d / "instances.json", {"images": ims, "annotations": anns, "categories": []})
    refs = [
        {
            "ref_id": 0,
            "ann_id": 10,
            "image_id": 1,
            "split": "train",
            "category_id": 1,
            "file_name": "COCO_train2014_000000000001_10.jpg",
            "sent_ids": [0, 1],
            "sentences": [
                {
                    "sent_id": 0,
                    "sent": "the ear on a giraffe",
                    "raw": "The ear on a giraffe",
                    "tokens": ["the", "ear", "on", "a", "giraffe"],
                },
                {"sent_id": 1, "sent": "left animal", "raw": "left animal", "tokens": ["left", "animal"]},
            ],
        },
        {
            "ref_id": 1,
            "ann_id": 11,
            "image_id": 1,
            "split": "train",
            "category_id": 2,
            "sentences": [{"sent_id": 2, "sent": "right dog", "raw": "right dog", "tokens": []}],
        },
        {
            "ref_id": 2,
            "ann_id": 12,
            "image_id": 2,
            "split": "train",
            "category_id": 3,
            "sentences": [{"sent_id": 3, "sent": "thin line", "raw": "thin line", "tokens": []}],
        },
        {
            "ref_id": 3,
            "ann_id": 13,
            "image_id": 3,
            "split": "train",
            "category_id": 3,
            "sentences": [{"sent_id": 4, "sent": "lost image", "raw": "lost image", "tokens": []}],
        },
        {
            "ref_id": 4,
            "ann_id": 12,
            "image_id": 2,
            "split": "val",
            "category_id": 3,  # a benchmark image
            "sentences": [{"sent_id": 5, "sent": "held out", "raw": "held out", "tokens": []}],
        },
    ]
    _put(d / refs_name, pickle.dumps(refs, protocol=2))


def vg(d: Path, version: str = "1.2"):
    """Visual Genome v1.2 (regions keyed region_id/image_id), or v1.0 (keyed id/image, images keyed id)."""
    _put(d / "VG_100K_2" / "1.jpg", jpeg(800, 600, 5))
    _put(d / "VG_100K" / "2.jpg", jpeg(400, 400, 6))
    key = "image_id" if version == "1.2" else "id"
    _put(
        d / "image_data.json",
        [
            {
                key: 1,
                "width": 800,
                "height": 600,
                "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg",
                "coco_id": None,
                "flickr_id": None,
            },
            {
                key: 2,
                "width": 400,
                "height": 400,
                "url": "https://cs.stanford.edu/people/rak248/VG_100K/2.jpg",
                "coco_id": 2,
                "flickr_id": None,
            },
        ],
    )  # VG image 2 is COCO image 2 (a RefCOCO val image)

    def region(rid, image, **kw):
        return ({"region_id": rid, "image_id": image} if version == "1.2" else {"id": rid, "image": image}) | kw

    _put(
        d / "region_descriptions.json",
        [
            {
                "id": 1,
                "regions": [
                    region(
                        100, 1, phrase="Yellow cross country ski racing gloves", x=288, y=325.5, width=93, height=97.5
                    ),
                    region(101, 1, phrase="a broken box", x=50, y=50, width=-10, height=5),
                ],
            },
            {"id": 2, "regions": [region(102, 2, phrase="the sky", x=0, y=0, width=400, height=120)]},
        ],
    )
    _put(
        d / "question_answers.json",
        [
            {
                "id": 1,
                "qas": [
                    {
                        "qa_id": 7,
                        "image_id": 1,
                        "question": "Does the bandage have a different color than the wrist band?",
                        "answer": "No, both bandage and wrist band are white.",
                        "a_objects": [],
                        "q_objects": [],
                    },
                    {"qa_id": 8, "image_id": 1, "question": "What is it?", "answer": ""},
                ],
            }
        ],
    )


def _grit_spans():
    # the paper's Box B.1 grounded caption; "an apricot flower" nests "flower" (1 box) and is kept
    cap = "Beautiful shot of bees gathering nectars from an apricot flower"
    bees, flower = cap.index("bees"), cap.index("an apricot flower")
    chunks = [
        [bees, bees + 4, 0.6615, 0.6125, 0.8335, 0.8125, 0.9],
        [bees, bees + 4, 0.1205, 0.5555, 0.2655, 0.7705, 0.8],
        [flower + 11, flower + 17, 0.3, 0.1, 0.35, 0.2, 0.9],
        [flower, flower + 17, 0.2245, 0.0135, 0.3995, 0.3135, 0.95],
    ]
    refs = [
        [flower, flower + 17, 0.2245, 0.0135, 0.3995, 0.3135, 0.95],
        [bees, len(cap), 0.1, 0.1, 0.9, 0.9, 0.99],
    ]  # "bees ... flower" nests both: dropped, 1 < 3 boxes
    return cap, chunks, refs


def grit(d: Path):
    """img2dataset output: a proportional resize (Box B.1), a border-padded one, one whose sizes fit no resize."""
    cap, chunks, refs = _grit_spans()
    base = {
        "status": "success",
        "noun_chunks": [],
        "ref_exps": [],
        "width": 64,
        "height": 48,
        "original_width": 640,
        "original_height": 480,
    }
    rows = [
        base | {"key": "000000000", "id": 1, "caption": cap, "noun_chunks": chunks, "ref_exps": refs},
        base
        | {"key": "000000001", "id": 2, "caption": "a dog on grass", "noun_chunks": [[0, 5, 0.1, 0.1, 0.5, 0.5, 0.2]]},
        base
        | {
            "key": "000000002",
            "id": 3,
            "status": "failed_to_download",
            "caption": "a cat",
            "width": None,
            "height": None,
        },
        # border: 200x100 -> 64x32 padded to 64x64 (16 rows top and bottom); leading space in the caption
        base
        | {
            "key": "000000003",
            "id": 4,
            "caption": " a red kite",
            "width": 64,
            "height": 64,
            "original_width": 200,
            "original_height": 100,
            "noun_chunks": [[1, 11, 0.0, 0.0, 0.5, 1.0, 0.9]],
        },
        base
        | {
            "key": "000000004",
            "id": 5,
            "caption": "a boat",
            "width": 64,
            "height": 50,
            "original_width": 200,
            "original_height": 150,
            "noun_chunks": [[0, 6, 0.1, 0.1, 0.5, 0.5, 0.9]],
        },
    ]
    d.mkdir(parents=True, exist_ok=True)
    span_t = pa.list_(pa.list_(pa.float64()))
    pq.write_table(
        pa.Table.from_pylist(
            rows,
            schema=pa.schema(
                [
                    ("key", pa.string()),
                    ("id", pa.int64()),
                    ("status", pa.string()),
                    ("caption", pa.string()),
                    ("width", pa.int64()),
                    ("height", pa.int64()),
                    ("original_width", pa.int64()),
                    ("original_height", pa.int64()),
                    ("noun_chunks", span_t),
                    ("ref_exps", span_t),
                ]
            ),
        ),
        d / "00000.parquet",
    )
    with tarfile.open(d / "00000.tar", "w") as tar:
        for i, r in enumerate(rows):
            if r["status"] != "success":
                continue
            sample = {k: r[k] for k in ("key", "status", "width", "height", "original_width", "original_height")}
            for ext, data in (
                ("jpg", jpeg(r["width"], r["height"], 20 + i)),
                ("txt", r["caption"].encode()),
                ("json", json.dumps(sample).encode()),
            ):
                info = tarfile.TarInfo(f"{r['key']}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def vqa_sets(root: Path):
    d = root / "vqav2"
    _put(d / "train2014" / "COCO_train2014_000000000009.jpg", jpeg(64, 64, 9))
    _put(
        d / "v2_OpenEnded_mscoco_train2014_questions.json",
        {
            "questions": [
                {"image_id": 9, "question": "What color is the square?", "question_id": 90},
                {"image_id": 9, "question": "Is it big?", "question_id": 91},
            ]
        },
    )
    votes = ["red"] * 4 + ["pink"] * 4 + ["maroon"] * 2
    _put(
        d / "v2_mscoco_train2014_annotations.json",
        {
            "annotations": [
                {
                    "question_id": 90,
                    "image_id": 9,
                    "multiple_choice_answer": "red",
                    "answers": [
                        {"answer": a, "answer_confidence": "yes" if a == "pink" else "maybe", "answer_id": i + 1}
                        for i, a in enumerate(votes)
                    ],
                },
                {"question_id": 91, "image_id": 9, "answers": []},
            ]
        },
    )
    d = root / "gqa"
    _put(d / "images" / "n1.jpg", jpeg(64, 48, 11))
    _put(
        d / "train_balanced_questions.json",
        {
            "q1": {"imageId": "n1", "question": "Is the box red?", "answer": "yes", "fullAnswer": "Yes, it is."},
            "q2": {"imageId": "n404", "question": "Where?", "answer": "up"},
        },
    )
    d = root / "textvqa"
    _put(d / "train_images" / "abc.jpg", mpo(64, 48, 12))  # a camera JPEG with an MPF segment
    _put(
        d / "TextVQA_0.5.1_train.json",
        {
            "data": [
                {
                    "question_id": 1,
                    "image_id": "abc",
                    "question": "what brand?",
                    "answers": ["nike"] * 6 + ["adidas"] * 4,
                }
            ]
        },
    )
    docvqa(root / "docvqa")
    d = root / "chartqa"  # the current release: train/, val/, test/ each with png/ and the two json files
    _put(d / "train" / "png" / "c1.png", jpeg(80, 60, 14, "PNG"))
    _put(d / "train" / "train_human.json", [{"imgname": "c1.png", "query": "Which bar is tallest?", "label": "Blue"}])
    _put(d / "train" / "train_augmented.json", [{"imgname": "c1.png", "query": "What is the sum?", "label": 12}])
    d = root / "ocrvqa"  # images saved under their URL's extension by the release's download script
    _put(d / "images" / "b1.jpg", jpeg(50, 80, 15))
    _put(d / "images" / "b2.jpg", jpeg(50, 80, 16))
    _put(d / "images" / "b3.png", jpeg(50, 80, 19, "PNG"))
    _put(
        d / "dataset.json",
        {
            "b1": {
                "imageURL": "http://ecx.images-amazon.com/images/I/b1.jpg",
                "title": "T",
                "genre": "G",
                "split": 1,
                "questions": ["Who wrote this book?", "Is this a cookbook?"],
                "answers": ["Ann Author", "No"],
            },
            "b2": {
                "imageURL": "http://ecx.images-amazon.com/images/I/b2.jpg",
                "split": 3,
                "questions": ["Who wrote this book?"],
                "answers": ["B"],
            },
            "b3": {
                "imageURL": "http://ecx.images-amazon.com/images/I/b3.png",
                "split": 1,
                "questions": ["What is the genre of this book?"],
                "answers": ["Travel"],
            },
        },
    )
    d = root / "dvqa"
    _put(d / "images" / "bar_train_00000001.png", jpeg(64, 64, 17, "PNG"))
    _put(
        d / "train_qa.json",
        [{"question_id": 1, "image": "bar_train_00000001.png", "question": "How many bars are there?", "answer": "3"}],
    )
    d = root / "ai2d"
    _put(d / "images" / "0.png", jpeg(64, 64, 18, "PNG"))
    _put(d / "abc_images" / "0.png", jpeg(64, 64, 28, "PNG"))  # the same diagram with letters drawn on its parts
    _put(
        d / "questions" / "0.png.json",
        {
            "imageName": "0.png",
            "questions": {
                "Which stage comes first?": {
                    "answerTexts": ["egg", "larva", "pupa", "adult"],
                    "correctAnswer": 0,
                    "abcLabel": False,
                    "questionId": "0.png-0",
                },
                "What does A show?": {
                    "answerTexts": ["egg", "larva"],
                    "correctAnswer": 1,
                    "abcLabel": True,
                    "questionId": "0.png-1",
                },
            },
        },
    )


def docvqa(d: Path, layout: str = "current"):
    """current: {split}_v1.0_withQT.json, images under {split}/documents/; older: train_v1.0.json + documents/."""
    rec = {
        "questionId": 5,
        "question": "What is the date?",
        "image": "documents/p1.png",
        "answers": ["1 May 1999", "May 1, 1999"],
        "question_types": ["form"],
    }
    if layout == "current":
        _put(d / "train" / "documents" / "p1.png", jpeg(80, 100, 13, "PNG"))
        _put(d / "train_v1.0_withQT.json", {"dataset_split": "train", "data": [rec]})
    else:
        _put(d / "documents" / "p1.png", jpeg(80, 100, 13, "PNG"))
        _put(d / "train_v1.0.json", {"data": [{k: v for k, v in rec.items() if k != "question_types"}]})


def coco(d: Path):
    # COCO image 2 is RefCOCO's image 2, whose val refs are a benchmark: decontamination removes it
    _put(d / "train2014" / "COCO_train2014_000000000002.jpg", jpeg(100, 100, 2))
    _put(
        d / "annotations" / "captions_train2014.json",
        {
            "images": [{"id": 2, "file_name": "COCO_train2014_000000000002.jpg", "width": 100, "height": 100}],
            "annotations": [
                {"id": 1, "image_id": 2, "caption": "A red square on a green field."},
                {"id": 2, "image_id": 2, "caption": "  "},
                {"id": 3, "image_id": 43, "caption": "no such image"},
            ],
        },
    )


def text(d: Path):
    """C4's release layout (en/c4-train.*.json.gz) and a plain JSON-lines file."""
    d.mkdir(parents=True, exist_ok=True)
    c4 = [
        {
            "text": "The quick brown fox jumps over the lazy dog.",
            "timestamp": "2019-04-25T12:57:54Z",
            "url": "https://example.com/fox",
        },
        {"title": "no text field"},
    ]
    (d / "en").mkdir(exist_ok=True)
    with gzip.open(d / "en" / "c4-train.00000-of-01024.json.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps(x) for x in c4) + "\nnot json\n")
    (d / "corpus.jsonl").write_text(
        json.dumps({"text": "今天天气很好，我们去公园散步。"}, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def sft(d: Path):
    _put(d / "imgs" / "a.jpg", jpeg(64, 64, 30))
    _put(d / "imgs" / "b.png", jpeg(48, 64, 31, "PNG"))
    _put(
        d / "finetune.json",
        [
            {
                "id": "identity_0",
                "conversations": [
                    {"from": "user", "value": "Picture 1: <img>imgs/a.jpg</img>\nWhat is in the picture?"},
                    {"from": "assistant", "value": "A red square."},
                    {"from": "user", "value": "Picture 2: <img>imgs/b.png</img>\nAnd how do the two differ?"},
                    {"from": "assistant", "value": "The second is taller."},
                ],
            },
            {
                "id": "identity_1",
                "conversations": [
                    {"from": "user", "value": "你好"},
                    {"from": "assistant", "value": "你好！有什么可以帮你？"},
                ],
            },
            {
                "id": "identity_2",
                "conversations": [
                    {"from": "user", "value": "Picture 1: <img>imgs/gone.jpg</img>\nHi"},
                    {"from": "assistant", "value": "Hello"},
                ],
            },
        ],
    )


def benchmarks(root: Path):
    """Evaluation splits beside the training files, as each release ships them (configs/decontaminate.yaml)."""
    _put(root / "vqav2" / "val2014" / "COCO_val2014_000000000077.jpg", jpeg(160, 120, 77))
    _put(
        root / "vqav2" / "v2_OpenEnded_mscoco_val2014_questions.json",
        {"questions": [{"image_id": 77, "question": "What is on the table?", "question_id": 770}]},
    )
    _put(root / "textvqa" / "train_images" / "def.jpg", jpeg(64, 48, 78))
    _put(
        root / "textvqa" / "TextVQA_0.5.1_val.json",
        {"data": [{"question_id": 9, "image_id": "def", "question": "what time is it?", "answers": ["noon"] * 10}]},
    )
    _put(root / "docvqa" / "val" / "documents" / "v1.png", jpeg(120, 160, 79, "PNG"))
    _put(
        root / "docvqa" / "val_v1.0_withQT.json",
        {
            "dataset_split": "val",
            "data": [
                {"questionId": 50, "question": "What is the title?", "image": "documents/v1.png", "answers": ["Memo"]}
            ],
        },
    )
    _put(root / "chartqa" / "test" / "png" / "t1.png", jpeg(160, 120, 80, "PNG"))
    _put(root / "chartqa" / "test" / "test_human.json", [{"imgname": "t1.png", "query": "Max?", "label": "7"}])
    _put(root / "ai2d" / "images" / "1.png", jpeg(64, 64, 81, "PNG"))
    _put(
        root / "ai2d" / "questions" / "1.png.json",
        {
            "imageName": "1.png",
            "questions": {
                "What eats the grass?": {
                    "answerTexts": ["cow", "lion"],
                    "correctAnswer": 0,
                    "abcLabel": False,
                    "questionId": "1.png-0",
                }
            },
        },
    )
    (root / "ai2d" / "ai2d_test_ids.csv").write_text("1\n")
    _put(root / "gqa" / "images" / "n9.jpg", jpeg(64, 48, 82))
    _put(
        root / "gqa" / "testdev_balanced_questions.json",
        {"t1": {"imageId": "n9", "question": "Is it red?", "answer": "no"}},
    )


def _eval_copies() -> dict[int, bytes]:
    """Pair images that are evaluation images: re-encoded smaller, re-encoded as JPEG, cropped 3%."""
    vqa = picture(160, 120, 77).resize((96, 72), Image.BILINEAR)
    chart = picture(160, 120, 80)
    return {
        3: encode(vqa, quality=60),
        4: encode(picture(120, 160, 79), quality=90),
        5: encode(chart.crop((4, 3, 156, 117)), quality=80),
    }


def pairs(d: Path, n: int = 12):
    """Stage-1 pair shards as the download/clip-score stage documents them (KEY.jpg/txt/json)."""
    d.mkdir(parents=True, exist_ok=True)
    sources = ["laion", "coyo", "laion"]
    copies = _eval_copies()
    with tarfile.open(d / "000000.tar", "w") as tar:
        for i in range(n):
            src = sources[i % 3]
            lang = "zh" if i % 3 == 2 else "en"
            cap = f"一只红色的方块 {i}" if lang == "zh" else f"a red square number {i}"
            image = copies.get(i) or jpeg(64, 48, 50 + i)
            w, h = Image.open(io.BytesIO(image)).size
            meta = {
                "schema": "sample",
                "uid": f"{src}:{i}",
                "source": src,
                "caption": cap,
                "lang": lang,
                "width": w,
                "height": h,
                "original_width": w * 10,
                "original_height": h * 10,
                "sha256": f"{i:064x}",
                "status": "success",
                "clip_score": 0.3,
            }
            for ext, data in (
                ("jpg", image),
                ("txt", cap.encode()),
                ("json", json.dumps(meta, ensure_ascii=False).encode()),
            ):
                info = tarfile.TarInfo(f"{i:09d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def make_all(out: Path) -> Path:
    out = Path(out)
    refcoco(out / "refcoco")
    refcoco(out / "refcoco+")
    refcoco(out / "refcocog", "refs(umd).p")
    vg(out / "vg")
    grit(out / "grit")
    vqa_sets(out)
    benchmarks(out)
    coco(out / "coco")
    text(out / "text")
    sft(out / "sft")
    pairs(out / "pairs")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_task_fixtures.py OUT_DIR")
    print(f"fixtures written under {make_all(Path(sys.argv[1]))}")
