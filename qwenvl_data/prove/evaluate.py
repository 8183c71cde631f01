"""Held-out evaluation of `make prove` through the generation path of `qwenvl-chat`.

The held-out sets are what the project's own commands wrote from the held-out seeds: VG-layout
scenes converted by `tasks` (ref_grounding samples: the expression and its box in bins) and
`synth-ocr` pages (lines with text and boxes). Each image goes through `qwenvl-chat`'s own steps
(`load_model`, `load_image` at the checkpoint's resolution, `prompt_segments`, greedy `generate`);
the answers are parsed with `boxes.parse_refs` and scored per language (qwenvl_data/prove/metrics.py).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from qwenvl_data.shards import iter_tar_samples
from qwenvl_data.tasks.text import guess_lang

from . import metrics

LANGS = ("en", "zh")


def _image(files: dict) -> bytes | None:
    return files.get("jpg") or files.get("png")


def grounding_set(tasks_dir: Path, per_lang: int) -> list[dict]:
    """The first `per_lang` held-out ref_grounding queries of each language, in shard order. Each query also
    carries `scene`: the boxes of every object its image has an expression for (its own included, each once),
    read from all held-out samples of that image, so a wrong answer can be told apart as "boxed another
    object" or "boxed nothing" (metrics.grounding_scores' `any_acc`)."""
    out: list[dict] = []
    taken: Counter[str] = Counter()
    scenes: dict[str, set] = {}
    for tar in sorted(Path(tasks_dir).rglob("*.tar")):
        for _, files in iter_tar_samples(tar):
            meta = json.loads(files["json"])
            if meta["task"] != "ref_grounding":
                continue
            image = _image(files)
            key = hashlib.sha256(image).hexdigest() if image else meta["uid"]
            scenes.setdefault(key, set()).add(tuple(meta["objects"][0]["box"]))
            ref = meta["objects"][0]["ref"]
            lang = guess_lang(ref)  # the VG converter labels every region English
            if taken[lang] >= per_lang:
                continue
            taken[lang] += 1
            out.append(
                {
                    "uid": meta["uid"],
                    "image": image,
                    "image_key": key,
                    "prompt": meta["prompt"],
                    "ref": ref,
                    "lang": lang,
                    "true": tuple(meta["objects"][0]["box"]),
                    "image_ref": meta.get("image_ref"),
                }
            )
    for q in out:
        q["scene"] = sorted(scenes[q.pop("image_key")])
    return out


def ocr_set(ocr_dir: Path, per_lang: int) -> list[dict]:
    out: list[dict] = []
    taken: Counter[str] = Counter()
    for tar in sorted(Path(ocr_dir).glob("*.tar")):
        for _, files in iter_tar_samples(tar):
            meta = json.loads(files["json"])
            if taken[meta["lang"]] >= per_lang:
                continue
            taken[meta["lang"]] += 1
            out.append(
                {
                    "uid": meta["uid"],
                    "image": _image(files),
                    "prompt": meta["prompt"],
                    "lang": meta["lang"],
                    "true": [{"text": ln["text"], "box": tuple(ln["box"])} for ln in meta["lines"]],
                    "target": meta["target"],
                }
            )
    return out


def answer_budget(queries: list[dict]) -> int:
    """Tokens to let an answer run: the longest true target's UTF-8 bytes (a byte-level BPE never makes more
    tokens than bytes) and room for the end token."""
    return max((len(q["target"].encode("utf-8")) for q in queries), default=0) + 8


@contextmanager
def _checkpoint(checkpoint: Path, threads: int):
    """(model, encoder, stage, pixels) for one checkpoint as `qwenvl-chat` loads it, with torch held at
    `threads` (token-by-token decoding of a tiny model: extra threads only contend); pixels(bytes) is the
    normalised (1, 3, S, S) image at the checkpoint's resolution."""
    import torch

    from qwenvl_data.model.chat import load_model
    from qwenvl_data.model.data import load_image, normalise

    model, encoder, meta = load_model(checkpoint)

    def pixels(data: bytes):
        return normalise(torch.from_numpy(load_image(data, model.image_size))[None])

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield model, encoder, meta["stage"], pixels
    finally:
        torch.set_num_threads(before)


def predict(checkpoint: Path, queries: list[dict], max_new_tokens: int, threads: int = 1) -> list[str]:
    """Answers of a checkpoint, exactly as `qwenvl-chat --checkpoint C --image I --prompt P` gives them."""
    from qwenvl_data.model.chat import generate, prompt_segments

    with _checkpoint(checkpoint, threads) as (model, encoder, stage, pixels):
        return [
            generate(model, encoder, pixels(q["image"]), prompt_segments(q["prompt"], stage), max_new_tokens)
            for q in queries
        ]


def text_token_accuracy(checkpoint: Path, queries: list[dict], threads: int = 1) -> dict:
    """Teacher-forced reading of held-out OCR pages: the share of the target's text tokens (those between
    `<ref>` and `</ref>`) that the model's most likely next token gets right, given the page's own image
    ("own") and given the next page's image in the set ("other": every page rolled by one; None with fewer
    than two pages, where there is no other image).

    Greedy answers score a whole page at once and a wrong line count can floor them at 0; this asks, token by
    token with the true text before it, whether the pixels help: a model that reads scores higher with its
    own image, a model that ignores the image scores the same with both.
    -> {"own"|"other": {lang|all: acc}, "n": {lang|all: text tokens scored}}.
    """
    import torch

    from qwenvl_data.model.chat import prompt_segments

    keys = (*LANGS, "all")
    out: dict = {"other": dict.fromkeys(keys)}
    with _checkpoint(checkpoint, threads) as (model, encoder, stage, pixels):
        ref, end = (encoder.tok.convert_tokens_to_ids(t) for t in ("<ref>", "</ref>"))
        for name, shift in (("own", 0), ("other", 1)) if len(queries) > 1 else (("own", 0),):
            hits: Counter[str] = Counter()
            total: Counter[str] = Counter()
            for i, q in enumerate(queries):
                segs = prompt_segments(q["prompt"], stage) + [{"text": q["target"], "loss": True}]
                ids = torch.from_numpy(encoder.encode(segs, append_eot=True)[0].astype("int64"))[None]
                with torch.no_grad():
                    guess = model(ids, pixels(queries[(i + shift) % len(queries)]["image"]))[0, :-1].argmax(-1)
                inside = False
                for g, t in zip(guess.tolist(), ids[0, 1:].tolist()):
                    if t in (ref, end):
                        inside = t == ref
                    elif inside:
                        for key in (q["lang"], "all"):
                            hits[key] += g == t
                            total[key] += 1
            out[name] = {k: (hits[k] / total[k] if total[k] else None) for k in keys}
            out["n"] = {k: total[k] for k in keys}
    return out


def warm() -> None:
    """Import what answer_run needs (torch, transformers, the model) in a fresh worker ahead of time."""
    import qwenvl_data.model.chat  # noqa: F401


def answer_run(checkpoint: Path, grounding: list[dict], ocr: list[dict], ocr_budget: int, threads: int = 1):
    """One run's held-out answers and its teacher-forced reading: (grounding answers, OCR answers, reading).
    A module-level function so that `prove` can run it in a worker process per run (each on its own core)."""
    return (
        predict(checkpoint, grounding, 24, threads),
        predict(checkpoint, ocr, ocr_budget, threads),
        text_token_accuracy(checkpoint, ocr, threads),
    )


def score(grounding: list[dict], ocr: list[dict], g_answers: list[str], o_answers: list[str]) -> dict:
    """{'grounding': {lang|all: scores}, 'ocr': {lang|all: scores}, 'grounding_by_objects': {objects in the
    scene: scores, both languages}} for one run's answers."""
    g_rows = [
        {"pred": metrics.first_box(a), "true": q["true"], "lang": q["lang"], "scene": q.get("scene")}
        for q, a in zip(grounding, g_answers)
    ]
    o_rows = [{"pred": metrics.ocr_lines(a), "true": q["true"], "lang": q["lang"]} for q, a in zip(ocr, o_answers)]
    # both languages pooled, by objects in the query's scene: with several, is a miss another object or nothing?
    counts = sorted({len(r["scene"]) for r in g_rows if r["scene"]})
    by_objects = {str(n): metrics.grounding_scores([r for r in g_rows if len(r["scene"] or ()) == n]) for n in counts}
    return {
        "grounding": _per_lang(g_rows, metrics.grounding_scores),
        "ocr": _per_lang(o_rows, metrics.ocr_scores),
        "grounding_by_objects": by_objects,
    }


def _per_lang(rows, fn) -> dict:
    out = {lang: fn([r for r in rows if r["lang"] == lang]) for lang in LANGS}
    out["all"] = fn(rows)
    return out


def constant_answers(train_dir: Path, grounding: list[dict], ocr: list[dict]) -> tuple[list[str], list[str]]:
    """The best constant answers learnt from the training split: one box for every grounding query;
    per language the most common training line with the mean line box for every OCR page."""
    boxes: list = []
    lines: dict[str, Counter[str]] = {lang: Counter() for lang in LANGS}
    line_boxes: dict[str, list] = {lang: [] for lang in LANGS}
    for tar in sorted(Path(train_dir).rglob("*.tar")):
        for _, files in iter_tar_samples(tar):
            meta = json.loads(files["json"])
            if meta["task"] == "ref_grounding":
                boxes.append(meta["objects"][0]["box"])
            elif meta["task"] == "ocr":
                for ln in meta["lines"]:
                    lines[meta["lang"]][ln["text"]] += 1
                    line_boxes[meta["lang"]].append(ln["box"])
    b = [round(v) for v in metrics.best_constant_box(boxes)]
    box = f"<box>({b[0]},{b[1]}),({b[2]},{b[3]})</box>"
    per_lang = {}
    for lang in LANGS:
        if not lines[lang]:
            per_lang[lang] = ""
            continue
        x1, y1, x2, y2 = (round(v) for v in metrics.mean_box(line_boxes[lang]))
        text = lines[lang].most_common(1)[0][0]
        per_lang[lang] = f"<ref>{text}</ref><quad>({x1},{y1}),({x2},{y1}),({x2},{y2}),({x1},{y2})</quad>"
    return [box] * len(grounding), [per_lang[q["lang"]] for q in ocr]
