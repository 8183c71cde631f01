"""VQA sets, each in the layout its users download -> `<img>..</img> {question} Answer:` -> answer.

One reader per dataset yields `(uid, image path relative to --images, question, answer)`; the answer is
None when the record has none usable. Layouts (DIR = --input; images default to DIR):

- vqav2: v2_OpenEnded_mscoco_train2014_questions.json + v2_mscoco_train2014_annotations.json,
  train2014/COCO_train2014_{image_id:012d}.jpg; the most frequent of the ten answers (ties: the one
  more annotators were sure of, then the first given).
- gqa: train_balanced_questions.json {qid: {imageId, question, answer}}, images/{imageId}.jpg
- textvqa: TextVQA_0.5.1_train.json {data: [{question_id, image_id, question, answers}]},
  train_images/{image_id}.jpg; most frequent answer
- docvqa: train_v1.0.json {data: [{questionId, question, image, answers}]}; first answer
- chartqa: train_human.json, train_augmented.json [{imgname, query, label}], png/{imgname}
- ocrvqa: dataset.json {id: {questions, answers, split}} (split 1 = train), images/{id}.jpg
- dvqa: train_qa.json [{question_id, image, question, answer}], images/{image}
- ai2d: questions/{image}.json {imageName, questions: {text: {answerTexts, correctAnswer,
  questionId}}}, images/{imageName}; the choices are written into the question
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from .. import formats
from ..errors import BadInput
from .common import ImageCache, Reject, Sample, read_json, require


def most_frequent(answers: list, sure: list | None = None):
    """Most frequent answer; ties broken by confident votes, then first appearance."""
    answers = [a.strip() for a in answers if isinstance(a, str) and a.strip()]
    if not answers:
        return None
    counts, first = Counter(answers), {}
    for i, a in enumerate(answers):
        first.setdefault(a, i)
    conf = Counter(a for a, s in zip(answers, sure or []) if s)
    return max(counts, key=lambda a: (counts[a], conf[a], -first[a]))


def _vqav2(d: Path):
    qs = read_json(require(d / "v2_OpenEnded_mscoco_train2014_questions.json", "VQAv2 questions"))
    ans = read_json(require(d / "v2_mscoco_train2014_annotations.json", "VQAv2 annotations"))
    by_q = {a["question_id"]: a for a in ans.get("annotations", [])}
    for q in qs.get("questions", []):
        a = by_q.get(q["question_id"], {})
        votes = a.get("answers") or []
        answer = most_frequent([v.get("answer") for v in votes], [v.get("answer_confidence") == "yes" for v in votes])
        yield (f"vqav2:{q['question_id']}", f"train2014/COCO_train2014_{int(q['image_id']):012d}.jpg",
               q.get("question"), answer)


def _gqa(d: Path):
    for qid, q in read_json(require(d / "train_balanced_questions.json", "GQA questions")).items():
        yield f"gqa:{qid}", f"images/{q['imageId']}.jpg", q.get("question"), q.get("answer")


def _textvqa(d: Path):
    for q in read_json(require(d / "TextVQA_0.5.1_train.json", "TextVQA")).get("data", []):
        yield (f"textvqa:{q['question_id']}", f"train_images/{q['image_id']}.jpg", q.get("question"),
               most_frequent(q.get("answers") or []))


def _docvqa(d: Path):
    for q in read_json(require(d / "train_v1.0.json", "DocVQA")).get("data", []):
        answers = q.get("answers") or []
        yield f"docvqa:{q['questionId']}", q["image"], q.get("question"), answers[0] if answers else None


def _chartqa(d: Path):
    files = [d / n for n in ("train_human.json", "train_augmented.json") if (d / n).exists()]
    if not files:
        raise BadInput(f"{d}: missing train_human.json / train_augmented.json (ChartQA)")
    for f in files:
        for i, q in enumerate(read_json(f)):
            yield f"chartqa:{f.stem}:{i}", f"png/{q['imgname']}", q.get("query"), q.get("label")


def _ocrvqa(d: Path):
    for bid, rec in read_json(require(d / "dataset.json", "OCR-VQA")).items():
        split_ok = rec.get("split") == 1
        for i, (q, a) in enumerate(zip(rec.get("questions") or [], rec.get("answers") or [])):
            yield f"ocrvqa:{bid}:{i}", f"images/{bid}.jpg", q, (a if split_ok else _NOT_TRAIN)


def _dvqa(d: Path):
    for q in read_json(require(d / "train_qa.json", "DVQA")):
        yield f"dvqa:{q['question_id']}", f"images/{q['image']}", q.get("question"), q.get("answer")


def _ai2d(d: Path):
    qdir = require(d / "questions", "AI2D questions folder")
    for f in sorted(qdir.glob("*.json")):
        rec = read_json(f)
        for text, q in sorted((rec.get("questions") or {}).items()):
            choices, correct = q.get("answerTexts") or [], q.get("correctAnswer")
            ok = isinstance(correct, int) and 0 <= correct < len(choices)
            yield (f"ai2d:{q.get('questionId', f.stem + ':' + text)}", f"images/{rec['imageName']}",
                   formats.multiple_choice_question(text, choices), choices[correct] if ok else None)


_NOT_TRAIN = object()  # marks a record of a test/val split
READERS = {"vqav2": _vqav2, "gqa": _gqa, "textvqa": _textvqa, "docvqa": _docvqa, "chartqa": _chartqa,
           "ocrvqa": _ocrvqa, "dvqa": _dvqa, "ai2d": _ai2d}


def convert(input_dir: Path, dataset: str, images_dir: Path, cfg: dict):
    cache = ImageCache(images_dir)
    for uid, image_rel, question, answer in READERS[dataset](input_dir):
        question = (question or "").strip() if isinstance(question, str) else ""
        if answer is _NOT_TRAIN:
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
        yield Sample(uid, "vqa", formats.vqa_prompt(question), answer, "en", img)
