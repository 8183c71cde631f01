"""Visual Genome -> ref grounding + grounded captioning (regions) and VQA (question answers).

    DIR/image_data.json           [{image_id, width, height, url, coco_id, flickr_id}]
    DIR/region_descriptions.json  [{id, regions: [{region_id, image_id, phrase, x, y, width, height}]}]
    DIR/question_answers.json     [{id, qas: [{qa_id, image_id, question, answer}]}]
    IMAGES/VG_100K/{id}.jpg, IMAGES/VG_100K_2/{id}.jpg   (--images, default DIR)

Region boxes are pixels of the image described in image_data.json; they are scaled if the stored
file has another size. `--dataset vg` converts regions and QAs; `vg-regions` / `vg-qa` one of them.
"""
from __future__ import annotations

from pathlib import Path

from .. import formats
from .common import ImageCache, Reject, Sample, bins_or_reject, read_json, require, xywh_to_xyxy

IMAGE_DIRS = ("VG_100K", "VG_100K_2")


def image_path(images_dir: Path, meta: dict) -> str:
    """The dataset-relative file of one image (the url's last two parts: VG_100K_2/1.jpg)."""
    url = meta.get("url") or ""
    parts = url.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] in IMAGE_DIRS:
        return f"{parts[-2]}/{parts[-1]}"
    for d in IMAGE_DIRS:
        if (images_dir / d / f"{meta['image_id']}.jpg").exists():
            return f"{d}/{meta['image_id']}.jpg"
    return f"{IMAGE_DIRS[0]}/{meta['image_id']}.jpg"


def convert(input_dir: Path, dataset: str, images_dir: Path, cfg: dict):
    metas = {m["image_id"]: m for m in read_json(require(input_dir / "image_data.json", "VG image list"))}
    cache = ImageCache(images_dir)
    if dataset in ("vg", "vg-regions"):
        regions = read_json(require(input_dir / "region_descriptions.json", "VG regions"))
        for entry in regions:
            yield from _regions(entry, metas, images_dir, cache)
    if dataset in ("vg", "vg-qa"):
        qas = read_json(require(input_dir / "question_answers.json", "VG question answers"))
        for entry in qas:
            yield from _qas(entry, metas, images_dir, cache)


def _image(entry, metas, images_dir, cache, uid):
    meta = metas.get(entry.get("id") or entry.get("image_id"))
    if meta is None:
        return None, Reject(uid, "missing_annotation", f"image {entry.get('id')} not in image_data.json")
    img = cache.get(image_path(images_dir, meta), uid)
    return meta, img


def _regions(entry, metas, images_dir, cache):
    regions = entry.get("regions") or []
    uids = [f"vg:region{r.get('region_id')}" for r in regions]
    meta, img = _image(entry, metas, images_dir, cache, uids[0] if uids else "vg:?")
    for r, u in zip(regions, uids):
        if isinstance(img, Reject):
            yield Reject(u + ":ref", img.reason, img.detail)
            yield Reject(u + ":region", img.reason, img.detail)
            continue
        sx, sy = img.width / (meta.get("width") or img.width), img.height / (meta.get("height") or img.height)
        x1, y1, x2, y2 = xywh_to_xyxy((r["x"], r["y"], r["width"], r["height"]))
        bins = bins_or_reject((x1 * sx, y1 * sy, x2 * sx, y2 * sy), img.width, img.height, u)
        phrase = (r.get("phrase") or "").strip()
        reason = bins if isinstance(bins, Reject) else (Reject(u, "no_expression") if not phrase else None)
        if reason:
            yield Reject(u + ":ref", reason.reason, reason.detail)
            yield Reject(u + ":region", reason.reason, reason.detail)
            continue
        objects = [{"ref": phrase, "box": list(bins)}]
        yield Sample(u + ":ref", "ref_grounding", formats.ref_grounding_prompt(phrase),
                     formats.boxes_text([bins]), "en", img, {"objects": objects})
        yield Sample(u + ":region", "grounded_caption", formats.region_caption_prompt(bins), phrase,
                     "en", img, {"objects": objects})


def _qas(entry, metas, images_dir, cache):
    qas = entry.get("qas") or []
    if not qas:
        return
    meta, img = _image(entry, metas, images_dir, cache, f"vg:qa{qas[0].get('qa_id')}")
    for qa in qas:
        u = f"vg:qa{qa.get('qa_id')}"
        q, a = (qa.get("question") or "").strip(), (qa.get("answer") or "").strip()
        if isinstance(img, Reject):
            yield Reject(u, img.reason, img.detail)
        elif not q or not a:
            yield Reject(u, "empty_question_or_answer")
        else:
            yield Sample(u, "vqa", formats.vqa_prompt(q), a, "en", img)
