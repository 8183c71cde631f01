"""VQA sets, each in the layout its users download -> `<img>..</img> {question} Answer:` -> answer.

One reader per dataset yields `Row(uid, image path relative to --images, question, answer, image_id)`
for one split; the answer is None when the record has none usable; `image_id` is the image's dataset id
("coco:9", "vg:2354786", "ai2d:12") that decontamination matches on. Layouts (DIR = --input; images
default to DIR); `split` (config `{dataset}.split`, default train) picks the files:

- vqav2: v2_OpenEnded_mscoco_{train,val}2014_questions.json (+ annotations), test2015 / test-dev2015
  without answers; {train,val,test}{2014,2015}/COCO_..._{image_id:012d}.jpg. The most frequent of the
  ten answers (ties: the one more annotators were sure of, then the first given).
- gqa: {train,val,testdev}_balanced_questions.json {qid: {imageId, question, answer}}, images/{imageId}.jpg
- textvqa: TextVQA_0.5.1_{split}.json {data: [...]}, train_images/ (train, val) or test_images/; most frequent
- docvqa: {split}_v1.0_withQT.json (current release; images under {split}/documents/) or the older
  {split}_v1.0.json (images beside it); in DIR or DIR/{split}/; the first answer
- chartqa: {split}_human.json, {split}_augmented.json [{imgname, query, label}] with png/{imgname}, in
  DIR/{split}/ (current release) or DIR (older)
- ocrvqa: dataset.json {id: {imageURL, questions, answers, split}} (1 train, 2 val, 3 test),
  images/{id}{extension of imageURL}
- dvqa: {split}_qa.json [{question_id, image, question, answer}], images/{image}
- ai2d: questions/{image}.json {imageName, questions: {text: {answerTexts, correctAnswer, abcLabel,
  questionId}}}; images/{imageName}, or abc_images/{imageName} (letters drawn) when abcLabel is true;
  ai2d_test_ids.csv lists the test images: split train skips them, split test reads only them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import NamedTuple

from .. import formats
from ..errors import BadInput
from ..vocab import is_image_ext
from .common import ImageCache, Reject, Sample, read_json, require


class Row(NamedTuple):
    uid: str
    image: str
    question: object
    answer: object
    image_id: str


def most_frequent(answers: list, sure: list | None = None):
    """Most frequent answer; ties broken by confident votes, then first appearance."""
    answers = [a.strip() for a in answers if isinstance(a, str) and a.strip()]
    if not answers:
        return None
    counts, first = Counter(answers), {}  # type: Counter[str], dict[str, int]
    for i, a in enumerate(answers):
        first.setdefault(a, i)
    conf = Counter(a for a, s in zip(answers, sure or []) if s)
    return max(counts, key=lambda a: (counts[a], conf[a], -first[a]))


_VQAV2_SETS = {"train": "train2014", "val": "val2014", "test": "test2015", "test-dev": "test-dev2015"}


def _vqav2(d: Path, split: str):
    sub = _VQAV2_SETS.get(split, split)
    qs = read_json(require(d / f"v2_OpenEnded_mscoco_{sub}_questions.json", "VQAv2 questions"))
    ann_path = d / f"v2_mscoco_{sub}_annotations.json"
    ans = read_json(require(ann_path, "VQAv2 annotations")) if split == "train" or ann_path.exists() else {}
    by_q = {a.get("question_id"): a for a in ans.get("annotations", [])}
    folder = "test2015" if sub.startswith("test") else sub
    for q in qs.get("questions", []):
        a = by_q.get(q["question_id"], {})
        votes = a.get("answers") or []
        answer = most_frequent([v.get("answer") for v in votes], [v.get("answer_confidence") == "yes" for v in votes])
        yield Row(
            f"vqav2:{q['question_id']}",
            f"{folder}/COCO_{folder}_{int(q['image_id']):012d}.jpg",
            q.get("question"),
            answer,
            f"coco:{int(q['image_id'])}",
        )


def gqa_image_id(image_id) -> str:
    """GQA's train/val images are Visual Genome images (numeric ids); testdev ones are not ("n161313")."""
    s = str(image_id)
    return f"vg:{s}" if s.isdigit() else f"gqa:{s}"


def _gqa(d: Path, split: str):
    qs = read_json(require(d / f"{split}_balanced_questions.json", "GQA questions"))
    for qid, q in qs.items():
        yield Row(
            f"gqa:{qid}", f"images/{q['imageId']}.jpg", q.get("question"), q.get("answer"), gqa_image_id(q["imageId"])
        )


def _textvqa(d: Path, split: str):
    folder = "test_images" if split == "test" else "train_images"
    for q in read_json(require(d / f"TextVQA_0.5.1_{split}.json", "TextVQA")).get("data", []):
        yield Row(
            f"textvqa:{q['question_id']}",
            f"{folder}/{q['image_id']}.jpg",
            q.get("question"),
            most_frequent(q.get("answers") or []),
            f"openimages:{q['image_id']}",
        )


def _docvqa(d: Path, split: str):
    names = [f"{split}_v1.0_withQT.json", f"{split}_v1.0.json"]
    found = [p / n for p in (d, d / split) for n in names if (p / n).exists()]
    if not found:
        raise BadInput(f"{d}: no {' or '.join(names)} (DocVQA, in the folder or its {split}/)")
    path = found[0]
    # current release: images under {split}/documents/; older: beside the json (the image cache confines them)
    beside = "" if path.parent == d else f"{split}/"
    prefixes = list(dict.fromkeys([beside, f"{split}/", ""]))
    for q in read_json(path).get("data", []):
        rel = q["image"]
        ok = isinstance(rel, str) and not Path(rel).is_absolute() and ".." not in Path(rel).parts
        prefix = next((p for p in prefixes if ok and (d / f"{p}{rel}").is_file()), beside)
        answers = q.get("answers") or []
        yield Row(
            f"docvqa:{q['questionId']}",
            f"{prefix}{rel}" if ok else rel,
            q.get("question"),
            answers[0] if answers else None,
            f"docvqa:{Path(str(rel)).stem}",
        )


def _chartqa(d: Path, split: str):
    base = d / split if (d / split / f"{split}_human.json").exists() else d
    files = [base / f"{split}_{kind}.json" for kind in ("human", "augmented")]
    files = [f for f in files if f.exists()]
    if not files:
        raise BadInput(f"{d}: missing {split}_human.json / {split}_augmented.json (ChartQA, in DIR or DIR/{split})")
    prefix = "" if base == d else f"{split}/"
    for f in files:
        for i, q in enumerate(read_json(f)):
            yield Row(
                f"chartqa:{f.stem}:{i}",
                f"{prefix}png/{q['imgname']}",
                q.get("query"),
                q.get("label"),
                f"chartqa:{q['imgname']}",
            )


_OCRVQA_SPLITS = {"train": 1, "val": 2, "test": 3}


def _ocrvqa(d: Path, split: str):
    want = _OCRVQA_SPLITS.get(split)
    for bid, rec in read_json(require(d / "dataset.json", "OCR-VQA")).items():
        url = str(rec.get("imageURL") or "")
        ext = url.rsplit("/", 1)[-1].rsplit(".", 1)[-1].lower() if "." in url.rsplit("/", 1)[-1] else ""
        name = f"images/{bid}.{ext if is_image_ext(ext) else 'jpg'}"
        if not (d / name).exists():  # the download script keeps the URL's extension; find it if it differs
            name = next(
                (f"images/{p.name}" for p in sorted((d / "images").glob(f"{bid}.*")) if is_image_ext(p.name)), name
            )
        for i, (q, a) in enumerate(zip(rec.get("questions") or [], rec.get("answers") or [])):
            yield Row(f"ocrvqa:{bid}:{i}", name, q, a if rec.get("split") == want else NOT_SPLIT, f"ocrvqa:{bid}")


def _dvqa(d: Path, split: str):
    for q in read_json(require(d / f"{split}_qa.json", "DVQA")):
        yield Row(
            f"dvqa:{q['question_id']}", f"images/{q['image']}", q.get("question"), q.get("answer"), f"dvqa:{q['image']}"
        )


def ai2d_test_ids(d: Path) -> set[str]:
    """Image ids ("4", "1034") of the published AI2D test split, from ai2d_test_ids.csv if present."""
    path = d / "ai2d_test_ids.csv"
    if not path.exists():
        return set()
    return {
        line.strip().split(",")[0].removesuffix(".png")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        if line.strip()
    }


def _ai2d(d: Path, split: str):
    qdir = require(d / "questions", "AI2D questions folder")
    test = ai2d_test_ids(d)
    if split != "train" and not test:
        raise BadInput(f"{d}: no ai2d_test_ids.csv (AI2D's published test list) for split {split}")
    for f in sorted(qdir.glob("*.json")):
        rec = read_json(f)
        name = rec["imageName"]
        image_id = str(name).removesuffix(".png")
        in_split = (image_id in test) == (split != "train")
        for text, q in sorted((rec.get("questions") or {}).items()):
            choices, correct = q.get("answerTexts") or [], q.get("correctAnswer")
            ok = isinstance(correct, int) and 0 <= correct < len(choices)
            folder = "abc_images" if q.get("abcLabel") is True else "images"
            yield Row(
                f"ai2d:{q.get('questionId', f.stem + ':' + text)}",
                f"{folder}/{name}",
                formats.multiple_choice_question(text, choices),
                (choices[correct] if ok else None) if in_split else NOT_SPLIT,
                f"ai2d:{image_id}",
            )


NOT_SPLIT = object()  # marks a record of another split (a benchmark's test/val, when converting train)
READERS = {
    "vqav2": _vqav2,
    "gqa": _gqa,
    "textvqa": _textvqa,
    "docvqa": _docvqa,
    "chartqa": _chartqa,
    "ocrvqa": _ocrvqa,
    "dvqa": _dvqa,
    "ai2d": _ai2d,
}


def read_split(dataset: str, input_dir: Path, split: str):
    """Every Row of one split (the answers of other-split records are the NOT_SPLIT marker)."""
    return READERS[dataset](Path(input_dir), split)


def convert(input_dir: Path, dataset: str, images_dir: Path, cfg: dict):
    cache = ImageCache(images_dir, cfg.get("max_pixels"))
    for uid, image_rel, question, answer, image_id in read_split(dataset, input_dir, cfg.get("split") or "train"):
        question = (question or "").strip() if isinstance(question, str) else ""
        if answer is NOT_SPLIT:
            yield Reject(uid, "split_excluded")
            continue
        answer = str(answer).strip() if answer is not None else ""
        if not question or not answer:
            yield Reject(uid, "empty_question_or_answer")
            continue
        img = cache.get(image_rel, uid)
        if isinstance(img, Reject):
            yield img
            continue
        yield Sample(uid, "vqa", formats.vqa_prompt(question), answer, "en", img, {"image_id": image_id})
