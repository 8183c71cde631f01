"""Scores of `make prove`: grounding (IoU of the parsed box) and OCR (characters, words, line boxes).

Everything is in the model's box bins ([0, 1000) per axis): IoU is the same in bins as in pixels up
to the rounding of the bins. Answers are parsed with the project's one parser (`boxes.parse_refs`);
an answer without a box scores IoU 0, never an error.
"""

from __future__ import annotations

from collections import Counter

from qwenvl_data.boxes import parse_refs


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def first_box(answer: str):
    """The first `<box>` of an answer in bins, or None."""
    for ref in parse_refs(answer):
        if ref["boxes"]:
            return ref["boxes"][0]
    return None


def quad_box(quad) -> tuple[int, int, int, int]:
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    return min(xs), min(ys), max(xs), max(ys)


def ocr_lines(answer: str) -> list[dict]:
    """[{'text', 'box' (the quad's bounding box, or None)}] in answer order."""
    out = []
    for ref in parse_refs(answer):
        if ref["ref"] is None:
            continue
        box = quad_box(ref["quads"][0]) if ref["quads"] else (ref["boxes"][0] if ref["boxes"] else None)
        out.append({"text": ref["ref"], "box": box})
    return out


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def words_of(text: str, lang: str) -> list[str]:
    """English words split on spaces; Chinese: every character is a word (as the page layout draws it)."""
    return [c for c in text if not c.isspace()] if lang == "zh" else text.split()


def grounding_scores(rows: list[dict]) -> dict:
    """rows: [{'pred': bins or None, 'true': bins, 'scene' (optional): every object's box in the image}] ->
    accuracy (IoU >= 0.5), mean IoU, parsed share, and, when every row has its scene, `any_acc`: the share
    whose box hits some object of the scene (IoU >= 0.5), the named one or another. With several objects,
    any_acc high and acc low is a model that finds objects but does not pick the one the words name;
    both low, one that does not find objects."""
    if not rows:
        return {"n": 0, "acc": None, "miou": None, "parsed": None, "any_acc": None}
    ious = [iou(r["pred"], r["true"]) if r["pred"] is not None else 0.0 for r in rows]
    scenes = [r.get("scene") for r in rows]
    any_acc = None
    if all(scenes):
        hits = [r["pred"] is not None and any(iou(r["pred"], b) >= 0.5 for b in r["scene"]) for r in rows]
        any_acc = sum(hits) / len(rows)
    return {
        "n": len(rows),
        "acc": sum(v >= 0.5 for v in ious) / len(rows),
        "miou": sum(ious) / len(rows),
        "parsed": sum(r["pred"] is not None for r in rows) / len(rows),
        "any_acc": any_acc,
    }


def ocr_scores(rows: list[dict]) -> dict:
    """rows: [{'pred': [{'text', 'box'}], 'true': [{'text', 'box'}], 'lang'}] per page ->
    char accuracy (1 - edit distance / true characters, pooled over pages, floored at 0), word accuracy
    (true words found in the answer, as multisets), line box mean IoU and share >= 0.5 (each true line
    against the predicted line boxes, best match)."""
    if not rows:
        return {"n": 0, "char_acc": None, "word_acc": None, "line_miou": None, "line_acc": None}
    dist = chars = found = words = 0
    line_ious = []
    for r in rows:
        truth = "\n".join(ln["text"] for ln in r["true"])
        pred = "\n".join(ln["text"] for ln in r["pred"])
        dist += edit_distance(pred, truth)
        chars += len(truth)
        tw = Counter(w for ln in r["true"] for w in words_of(ln["text"], r["lang"]))
        pw = Counter(w for ln in r["pred"] for w in words_of(ln["text"], r["lang"]))
        found += sum((tw & pw).values())
        words += sum(tw.values())
        boxes = [p["box"] for p in r["pred"] if p["box"] is not None]
        line_ious += [max((iou(b, t["box"]) for b in boxes), default=0.0) for t in r["true"]]
    return {
        "n": len(rows),
        "char_acc": max(0.0, 1 - dist / max(1, chars)),
        "word_acc": found / max(1, words),
        "line_miou": sum(line_ious) / max(1, len(line_ious)),
        "line_acc": sum(v >= 0.5 for v in line_ious) / max(1, len(line_ious)),
    }


def mean_box(boxes) -> tuple[float, float, float, float]:
    boxes = list(boxes)
    return tuple(sum(b[i] for b in boxes) / len(boxes) for i in range(4))


def best_constant_box(boxes, candidates: int = 12) -> tuple[float, float, float, float]:
    """The constant answer with the most training boxes at IoU >= 0.5: the mean box, and the mean box
    scaled around its centre (the mean of many small boxes is a poor guess for any of them)."""
    boxes = list(boxes)
    m = mean_box(boxes)
    cx, cy, w, h = (m[0] + m[2]) / 2, (m[1] + m[3]) / 2, m[2] - m[0], m[3] - m[1]
    best, best_hits = m, -1
    for k in range(candidates):
        s = 0.4 + 0.1 * k
        cand = (cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2)
        hits = sum(iou(cand, b) >= 0.5 for b in boxes)
        if hits > best_hits:
            best, best_hits = cand, hits
    return best
