"""GRIT-20M -> grounded captions (`Generate the caption in English with grounding:`).

Layout, as img2dataset writes it from GRIT's parquet metadata (`--save_additional_columns
'[noun_chunks,ref_exps]'`): `DIR/{00000}.tar` holding `KEY.jpg` (+ `KEY.json`), and `DIR/{00000}.parquet`
with one row per URL: `key`, `status`, `caption`, `noun_chunks`, `ref_exps`, `width`, `height`,
`original_width`, `original_height`. Spans are `[char_start, char_end, x0, y0, x1, y1, confidence]`
with boxes in 0-1 of the original image.

Resize: img2dataset stores a resized image, and its default `resize_mode` (border) pads it. Boxes are
mapped through the resize that turned original_width x original_height into the stored size: a
proportional resize (keep_ratio, or none) keeps 0-1 boxes; `border` adds the centred padding;
`center_crop` removes the centred margins (boxes clipped, spans left empty dropped). Which of the two
non-proportional modes was used is not in the files: config `grit.resize_mode` says it (default
border, img2dataset's default). A sample whose sizes fit no known resize is rejected (`unknown_resize`).

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
from ..errors import BadInput, UsageError
from ..shards import iter_tar_samples
from .common import DEFAULT_MAX_PIXELS, Reject, Sample, image_from_bytes, number

RESIZE_MODES = ("border", "center_crop", "keep_ratio", "keep_ratio_largest", "no")


def box_mapping(width: int, height: int, ow, oh, mode: str):
    """(ax, bx, ay, by): stored 0-1 x = ax * original 0-1 x + bx (same for y), or a reason string."""
    ow, oh = number(ow), number(oh)
    if not ow or not oh or ow <= 0 or oh <= 0:
        return "no original_width/original_height for this image"
    if abs(width / ow - height / oh) * max(ow, oh) <= 1.0:  # proportional (up to rounding): 0-1 boxes hold
        return 1.0, 0.0, 1.0, 0.0
    if mode not in ("border", "center_crop") or width != height:  # both make an image_size square
        return f"{ow:g}x{oh:g} -> {width}x{height} is not a proportional resize nor a {mode} square"
    s = min(width / ow, height / oh) if mode == "border" else max(width / ow, height / oh)
    nw, nh = round(ow * s), round(oh * s)  # albumentations' LongestMaxSize / SmallestMaxSize rounding
    if mode == "border" and nw <= width and nh <= height and (nw == width or nh == height):
        px, py = (width - nw) // 2, (height - nh) // 2  # PadIfNeeded, centred
        return nw / width, px / width, nh / height, py / height
    if mode == "center_crop" and nw >= width and nh >= height and (nw == width or nh == height):
        cx, cy = (nw - width) // 2, (nh - height) // 2  # CenterCrop
        return nw / width, -cx / width, nh / height, -cy / height
    return f"{ow:g}x{oh:g} -> {width}x{height} does not fit resize_mode {mode}"


def span_boxes(
    spans, caption_len: int, min_conf: float, dropped: dict, shift: int = 0, mapping=(1.0, 0.0, 1.0, 0.0)
) -> dict[tuple[int, int], list]:
    """Group confident, valid spans by (start, end) -> unique box bins in order; count what is dropped.

    `shift` moves the character spans (the caption lost that many leading characters); `mapping` takes
    the 0-1 boxes of the original image to the stored one (box_mapping)."""
    ax, bx, ay, by = mapping
    out: dict[tuple[int, int], list] = {}
    for sp in spans or []:
        try:
            s, e, x0, y0, x1, y1, conf = sp
            s, e = int(s) - shift, int(e) - shift
        except (TypeError, ValueError):
            dropped["invalid_span"] = dropped.get("invalid_span", 0) + 1
            continue
        if not (0 <= s < e <= caption_len):
            dropped["invalid_span"] = dropped.get("invalid_span", 0) + 1
            continue
        conf = number(conf)
        if conf is None or conf < min_conf:
            dropped["low_confidence"] = dropped.get("low_confidence", 0) + 1
            continue
        coords = [number(v) for v in (x0, y0, x1, y1)]
        if None in coords:
            dropped["invalid_box"] = dropped.get("invalid_box", 0) + 1
            continue
        x0, y0, x1, y1 = coords
        try:  # 0-1 coordinates: the image is a 1x1 square for the one box formula
            bins = box_to_bins((ax * x0 + bx, ay * y0 + by, ax * x1 + bx, ay * y1 + by), 1.0, 1.0)
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
    best: list[tuple[int, tuple[tuple[int, int], ...]]] = [(0, ())]  # (boxes, chosen spans) using items[:i]
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


def convert_record(uid: str, caption, spans: list, image, min_conf: float, mapping=(1.0, 0.0, 1.0, 0.0)):
    dropped: dict[str, int] = {}
    raw = caption if isinstance(caption, str) else ""
    caption = raw.strip()
    if not caption:
        return Reject(uid, "empty_caption")
    shift = len(raw) - len(raw.lstrip())  # the spans index the raw caption
    grouped = span_boxes(spans, len(caption), min_conf, dropped, shift, mapping)
    chosen = resolve_nesting(grouped)
    if not chosen:
        return Reject(uid, "no_boxes", json.dumps(dropped, sort_keys=True))
    dropped["nested"] = len(grouped) - len(chosen)
    objects = [
        {"ref": caption[s:e], "boxes": [list(b) for b in grouped[(s, e)]], "span": [s, e]} for s, e in sorted(chosen)
    ]
    return Sample(
        uid,
        "grounding",
        formats.GROUNDING_PROMPT,
        grounded_caption(caption, grouped, chosen),
        "en",
        image,
        {"objects": objects, "dropped_spans": dropped},
    )


def _meta(files: dict, row: dict | None) -> dict:
    try:
        side = json.loads(files.get("json") or b"{}")
    except ValueError:
        side = {}
    return {**(side if isinstance(side, dict) else {}), **(row or {})}


def convert(input_dir: Path, dataset: str, images_dir: Path, cfg: dict):
    min_conf = float(cfg.get("min_confidence") or 0.0)
    mode = cfg.get("resize_mode") or "border"
    if mode not in RESIZE_MODES:
        raise UsageError(f"tasks.grit.resize_mode: {mode!r} is not one of {', '.join(RESIZE_MODES)}")
    max_pixels = cfg.get("max_pixels", DEFAULT_MAX_PIXELS)
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
            row = _meta(files, rows.pop(key, None))
            uid = f"grit:{row.get('id', key)}"
            img = image_from_bytes(img_bytes, f"{tar.name}/{key}.jpg", uid, max_pixels)
            if isinstance(img, Reject):
                yield img
                continue
            mapping = box_mapping(img.width, img.height, row.get("original_width"), row.get("original_height"), mode)
            if isinstance(mapping, str):
                yield Reject(uid, "unknown_resize", mapping)
                continue
            spans = list(row.get("noun_chunks") or []) + list(row.get("ref_exps") or [])
            yield convert_record(uid, row.get("caption"), spans, img, min_conf, mapping)
        for key, row in rows.items():  # metadata rows whose image never arrived
            yield Reject(f"grit:{row.get('id', key)}", "not_downloaded", str(row.get("status")))
