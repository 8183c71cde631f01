"""Visual Genome -> ref grounding + grounded captioning (regions) and VQA (question answers).

    DIR/image_data.json           [{image_id (v1.0: id), width, height, url, coco_id, flickr_id}]
    DIR/region_descriptions.json  v1.2: [{id, regions: [{region_id, image_id, phrase, x, y, width, height}]}]
                                  v1.0: the same with regions keyed {"id": 1382, "image": 1, ...}
    DIR/question_answers.json     [{id, qas: [{qa_id, image_id, question, answer}]}]
    IMAGES/VG_100K/{id}.jpg, IMAGES/VG_100K_2/{id}.jpg   (--images, default DIR)

Region boxes are pixels of the image described in image_data.json; they are scaled if the stored
file has another size. `--dataset vg` converts regions and QAs; `vg-regions` / `vg-qa` one of them.
Each sample carries `image_id` ("vg:1") and, for the images VG shares with COCO, `coco_id`
(decontamination matches benchmark images by these).
"""

from __future__ import annotations

from pathlib import Path

from .. import formats
from .common import (
    ImageCache,
    Reject,
    Sample,
    bins_or_reject,
    read_json,
    ref_and_region,
    require,
    scale_or_reject,
    scaled,
    xywh_to_xyxy,
)

IMAGE_DIRS = ("VG_100K", "VG_100K_2")


def _first(d: dict, *keys):
    """The first present, non-None value among keys (v1.2 and v1.0 name the same field differently)."""
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return None


def image_path(images_dir: Path, meta: dict) -> str:
    """The dataset-relative file of one image (the url's last two parts: VG_100K_2/1.jpg)."""
    url = meta.get("url") or ""
    parts = str(url).rstrip("/").split("/")
    image_id = _first(meta, "image_id", "id")
    if len(parts) >= 2 and parts[-2] in IMAGE_DIRS:
        return f"{parts[-2]}/{parts[-1]}"
    for d in IMAGE_DIRS:
        if (images_dir / d / f"{image_id}.jpg").exists():
            return f"{d}/{image_id}.jpg"
    return f"{IMAGE_DIRS[0]}/{image_id}.jpg"


def image_ids(meta: dict) -> dict:
    out = {"image_id": f"vg:{_first(meta, 'image_id', 'id')}"}
    if meta.get("coco_id") is not None:
        out["coco_id"] = f"coco:{meta['coco_id']}"
    return out


def convert(input_dir: Path, dataset: str, images_dir: Path, cfg: dict):
    metas = {
        _first(m, "image_id", "id"): m
        for m in read_json(require(input_dir / "image_data.json", "VG image list"))
        if isinstance(m, dict)
    }
    cache = ImageCache(images_dir, cfg.get("max_pixels"))
    if dataset in ("vg", "vg-regions"):
        regions = read_json(require(input_dir / "region_descriptions.json", "VG regions"))
        for i, entry in enumerate(regions):
            yield from _regions(entry, i, metas, images_dir, cache)
    if dataset in ("vg", "vg-qa"):
        qas = read_json(require(input_dir / "question_answers.json", "VG question answers"))
        for entry in qas:
            yield from _qas(entry, metas, images_dir, cache)


def _image(image_id, metas, images_dir, cache, uid):
    meta = metas.get(image_id)
    if meta is None:
        return None, Reject(uid, "missing_annotation", f"image {image_id} not in image_data.json")
    return meta, cache.get(image_path(images_dir, meta), uid)


def _regions(entry, i, metas, images_dir, cache):
    regions = [r for r in (entry.get("regions") or []) if isinstance(r, dict)]
    if not regions:
        return
    image_id = _first(entry, "image_id", "id")
    if image_id is None:
        image_id = _first(regions[0], "image_id", "image")
    uids = [
        f"vg:region{_first(r, 'region_id', 'id')}"
        if _first(r, "region_id", "id") is not None
        else f"vg:image{image_id}:region{j}"
        for j, r in enumerate(regions)
    ]
    meta, img = _image(image_id, metas, images_dir, cache, uids[0])
    scale = img if isinstance(img, Reject) else scale_or_reject(img, meta.get("width"), meta.get("height"), uids[0])
    for r, u in zip(regions, uids):
        box = (
            None
            if isinstance(scale, Reject)
            else bins_or_reject(
                scaled(xywh_to_xyxy([r.get(k) for k in ("x", "y", "width", "height")]), *scale),
                img.width,
                img.height,
                u,
            )
        )
        phrase = (r.get("phrase") or "").strip() if isinstance(r.get("phrase"), str) else ""
        reason = (
            scale
            if isinstance(scale, Reject)
            else box
            if isinstance(box, Reject)
            else (Reject(u, "no_expression") if not phrase else None)
        )
        if reason:
            yield Reject(u + ":ref", reason.reason, reason.detail)
            yield Reject(u + ":region", reason.reason, reason.detail)
            continue
        objects = [{"ref": phrase, "box": list(box)}]
        extra = {"objects": objects, **image_ids(meta)}
        yield from ref_and_region(u, phrase, box, img, extra)


def _qas(entry, metas, images_dir, cache):
    qas = [qa for qa in (entry.get("qas") or []) if isinstance(qa, dict)]
    if not qas:
        return
    image_id = _first(entry, "image_id", "id")
    if image_id is None:
        image_id = _first(qas[0], "image_id", "image")
    meta, img = _image(image_id, metas, images_dir, cache, f"vg:qa{qas[0].get('qa_id')}")
    for qa in qas:
        u = f"vg:qa{_first(qa, 'qa_id', 'id')}"
        q, a = qa.get("question"), qa.get("answer")
        q, a = (q.strip() if isinstance(q, str) else ""), (a.strip() if isinstance(a, str) else "")
        if isinstance(img, Reject):
            yield Reject(u, img.reason, img.detail)
        elif not q or not a:
            yield Reject(u, "empty_question_or_answer")
        else:
            yield Sample(u, "vqa", formats.vqa_prompt(q), a, "en", img, image_ids(meta))
