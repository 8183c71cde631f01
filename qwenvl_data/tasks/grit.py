"""GRIT-20M -> grounded captions (`Generate the caption in English with grounding:`).

Layout, as img2dataset writes it from GRIT's parquet metadata (`--save_additional_columns
'[noun_chunks,ref_exps]'`): `DIR/{00000}.tar` holding `KEY.jpg`, and `DIR/{00000}.parquet` with one row
per URL: `key`, `status`, `caption`, `noun_chunks`, `ref_exps`. Spans are
`[char_start, char_end, x0, y0, x1, y1, confidence]` with boxes in 0-1 of the image.

Nesting: the paper cleans captions whose boxed spans nest with a greedy rule that keeps the most box
labels with no nesting. `resolve_nesting` finds that maximum exactly (weighted interval scheduling: a
plain earliest-end greedy is only optimal when every span carries one box).
"""
from __future__ import annotations

import bisect
import json
from pathlib import Path

import pyarrow.parquet as pq

from .. import formats
from ..boxes import BoxError, box_to_bins
from ..errors import BadInput
from ..shards import iter_tar_samples
from .common import Reject, Sample, image_from_bytes


def span_boxes(spans, caption_len: int, min_conf: float, dropped: dict) -> dict[tuple[int, int], list]:
    """Group confident, valid spans by (start, end) -> unique box bins in order; count what is dropped."""
    out: dict[tuple[int, int], list] = {}
    for sp in spans or []:
        try:
            s, e, x0, y0, x1, y1, conf = sp
            s, e = int(s), int(e)
        except (TypeError, ValueError):
            dropped["invalid_span"] = dropped.get("invalid_span", 0) + 1
            continue
        if not (0 <= s < e <= caption_len):
            dropped["invalid_span"] = dropped.get("invalid_span", 0) + 1
            continue
        if conf is None or conf < min_conf:
            dropped["low_confidence"] = dropped.get("low_confidence", 0) + 1
            continue
        try:  # 0-1 coordinates: the image is a 1x1 square for the one box formula
            bins = box_to_bins((x0, y0, x1, y1), 1.0, 1.0)
        except BoxError as err:
            dropped[err.reason] = dropped.get(err.reason, 0) + 1
            continue
        boxes = out.setdefault((s, e), [])
        if bins not in boxes:
            boxes.append(bins)
    return out


def resolve_nesting(spans: dict[tuple[int, int], list]) -> list[tuple[int, int]]:
    """The non-overlapping spans with the most boxes in total (ties: fewer, earlier choices win)."""
    items = sorted(spans, key=lambda se: (se[1], se[0]))
    ends = [e for _, e in items]
    best = [(0, ())]  # best[i]: (boxes, chosen spans) using items[:i]
    for i, (s, e) in enumerate(items):
        j = bisect.bisect_right(ends, s, 0, i)  # spans ending at or before s are compatible
        take = (best[j][0] + len(spans[(s, e)]), best[j][1] + ((s, e),))
        best.append(take if take[0] > best[i][0] else best[i])
    return list(best[-1][1])


def grounded_caption(caption: str, spans: dict, chosen: list[tuple[int, int]]) -> str:
    parts, pos = [], 0
    for s, e in sorted(chosen):
        parts += [caption[pos:s], formats.format_ref(caption[s:e]), formats.boxes_text(spans[(s, e)])]
        pos = e
    parts.append(caption[pos:])
    return "".join(parts)


def convert_record(uid: str, caption: str, spans: list, image, min_conf: float):
    dropped: dict[str, int] = {}
    caption = (caption or "").strip()
    if not caption:
        return Reject(uid, "empty_caption")
    grouped = span_boxes(spans, len(caption), min_conf, dropped)
    chosen = resolve_nesting(grouped)
    if not chosen:
        return Reject(uid, "no_boxes", json.dumps(dropped, sort_keys=True))
    dropped["nested"] = len(grouped) - len(chosen)
    objects = [{"ref": caption[s:e], "boxes": [list(b) for b in grouped[(s, e)]], "span": [s, e]}
               for s, e in sorted(chosen)]
    return Sample(uid, "grounding", formats.GROUNDING_PROMPT, grounded_caption(caption, grouped, chosen),
                  "en", image, {"objects": objects, "dropped_spans": dropped})


def convert(input_dir: Path, dataset: str, images_dir: Path, cfg: dict):
    min_conf = float(cfg.get("min_confidence") or 0.0)
    metas = sorted(input_dir.glob("*.parquet"))
    if not metas:
        raise BadInput(f"{input_dir}: no GRIT parquet files (img2dataset output: NNNNN.tar + NNNNN.parquet)")
    for meta in metas:
        tar = meta.with_suffix(".tar")
        if not tar.exists():
            raise BadInput(f"{meta}: no {tar.name} beside it; download GRIT's images with img2dataset first")
        try:
            rows = {str(r["key"]): r for r in pq.read_table(meta).to_pylist()}
        except Exception as e:
            raise BadInput(f"{meta}: not a readable GRIT parquet ({type(e).__name__}: {e})") from None
        for key, files in iter_tar_samples(tar):
            img_bytes = files.get("jpg") or files.get("png") or files.get("webp")
            if img_bytes is None:
                continue  # img2dataset also stores .txt/.json members; a key without image is a failure
            row = rows.pop(key, None) or json.loads(files.get("json") or b"{}")
            uid = f"grit:{row.get('id', key)}"
            img = image_from_bytes(img_bytes, f"{tar.name}/{key}.jpg", uid)
            if isinstance(img, Reject):
                yield img
                continue
            spans = list(row.get("noun_chunks") or []) + list(row.get("ref_exps") or [])
            yield convert_record(uid, row.get("caption"), spans, img, min_conf)
        for key, row in rows.items():  # metadata rows whose image never arrived
            yield Reject(f"grit:{row.get('id', key)}", "not_downloaded", str(row.get("status")))
