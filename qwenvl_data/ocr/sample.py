"""One OCR sample json (schemas/ocr.schema.json) from lines and words with pixel quads.

Shared by synthetic, PDF and HTML pages: every normalisation goes through qwenvl_data.boxes (its
numpy form, one call per line's words rather than one per coordinate), and the target is built from
the same structured lines it is stored beside, so the two never disagree.
"""

from __future__ import annotations

import numpy as np

from ..boxes import degenerate, format_quad, format_ref, normalise

PROMPT = "OCR with grounding:"


def quads_to_bins(quads: np.ndarray, width: int, height: int):
    """(N, 4, 2) pixel quads -> (quad bins (N,4,2), box bins (N,4), inside mask (N,), degenerate mask (N,)).
    A quad whose bounding box, clipped to the image, is empty lies outside the image (inside False); one
    whose box has zero width or height after binning is degenerate (boxes.degenerate: `degenerate_box`)."""
    quads = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    lo, hi = quads.min(1), quads.max(1)
    size = np.array([width, height], np.float64)
    clo, chi = np.clip(lo, 0, size), np.clip(hi, 0, size)
    inside = np.isfinite(quads).all((1, 2)) & (chi > clo).all(1)
    qb = np.stack([normalise(quads[..., 0], width), normalise(quads[..., 1], height)], -1)
    bb = np.concatenate(
        [
            np.stack([normalise(clo[:, 0], width), normalise(clo[:, 1], height)], -1),
            np.stack([normalise(chi[:, 0], width), normalise(chi[:, 1], height)], -1),
        ],
        1,
    )
    return qb, bb, inside, inside & degenerate(bb)


def ocr_sample(
    uid: str, source: str, lang: str, width: int, height: int, lines: list[dict], extra: dict | None = None
) -> tuple[dict, dict[str, int]]:
    """`lines`: [{'text', 'quad': (4,2) px, 'words': [{'text', 'quad'}], ...extra keys kept}].
    Returns (sample json, counts of what was left out: lines outside the image `lines_outside_image`,
    lines `degenerate_box`, words `degenerate_word_box`; a word outside the image is left out uncounted)."""
    out_lines, parts, dropped = [], [], {"lines_outside_image": 0, "degenerate_box": 0, "degenerate_word_box": 0}
    if lines:
        lq, lb, lok, ldeg = quads_to_bins(np.array([ln["quad"] for ln in lines]), width, height)
    for i, line in enumerate(lines):
        if not lok[i] or ldeg[i]:
            dropped["degenerate_box" if ldeg[i] else "lines_outside_image"] += 1
            continue
        words = []
        if line.get("words"):
            wq, wb, wok, wdeg = quads_to_bins(np.array([w["quad"] for w in line["words"]]), width, height)
            words = [
                {"text": w["text"], "quad": wq[j].tolist(), "box": wb[j].tolist()}
                for j, w in enumerate(line["words"])
                if wok[j] and not wdeg[j]
            ]
            dropped["degenerate_word_box"] += int(wdeg.sum())
        entry = {k: v for k, v in line.items() if k not in ("quad", "words")}
        quad = lq[i].tolist()
        entry.update(
            quad=quad,
            box=lb[i].tolist(),
            words=words,
            quad_px=np.round(np.asarray(line["quad"], np.float64), 1).tolist(),
        )
        out_lines.append(entry)
        parts.append(format_ref(line["text"]) + format_quad(quad))
    sample = {
        "schema": "ocr",
        "uid": uid,
        "source": source,
        "task": "ocr",
        "lang": lang,
        "prompt": PROMPT,
        "target": "".join(parts),
        "width": int(width),
        "height": int(height),
        "lines": out_lines,
    }
    sample.update(extra or {})
    return sample, dropped
