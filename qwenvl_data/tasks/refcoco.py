"""RefCOCO, RefCOCO+, RefCOCOg (the refer toolkit's layout) -> ref grounding + grounded captioning.

    DIR/refs(unc).p | refs(umd).p | refs(google).p    list of refs: ref_id, ann_id, image_id, split,
                                                      sentences [{sent_id, sent, raw, tokens}]
    DIR/instances.json                                COCO: images [{id, file_name, width, height}],
                                                      annotations [{id, bbox: [x, y, w, h] pixels}]
    IMAGES/COCO_train2014_000000xxxxxx.jpg            COCO train2014 (--images, default DIR/images)

Every sentence gives two samples: `<ref>{sent}</ref>` -> `<box>...</box>` and
`<ref>This</ref><box>...</box> is` -> sent. Only the configured splits are converted (default train:
val/test are the benchmarks the model is evaluated on).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BadInput
from .common import (
    ImageCache,
    Reject,
    bins_or_reject,
    read_json,
    ref_and_region,
    require,
    scale_or_reject,
    scaled,
    xywh_to_xyxy,
)
from .safe_pickle import safe_load

REFS_FILES = {"refcoco": ["refs(unc).p"], "refcoco+": ["refs(unc).p"], "refcocog": ["refs(umd).p", "refs(google).p"]}


def find_refs(input_dir: Path, dataset: str) -> Path:
    for name in REFS_FILES[dataset]:
        if (input_dir / name).exists():
            return input_dir / name
    raise BadInput(f"{input_dir}: no {' or '.join(REFS_FILES[dataset])} (the {dataset} refs pickle)")


def convert(input_dir: Path, dataset: str, images_dir: Path, cfg: dict):
    refs_path = find_refs(input_dir, dataset)
    refs = safe_load(refs_path.read_bytes(), str(refs_path))
    if not isinstance(refs, list):
        raise BadInput(f"{refs_path}: expected a list of refs, got {type(refs).__name__}")
    inst = read_json(require(input_dir / "instances.json", "COCO instances of the refs"))
    images = {im.get("id"): im for im in inst.get("images", []) if isinstance(im, dict)}
    anns = {a.get("id"): a for a in inst.get("annotations", []) if isinstance(a, dict)}
    splits = set(cfg.get("splits") or [])
    cache = ImageCache(images_dir, cfg.get("max_pixels"))
    good = []
    for i, ref in enumerate(refs):
        if isinstance(ref, dict):
            good.append(ref)
        else:
            yield Reject(f"{dataset}:row{i}", "bad_record", f"{refs_path}: ref {i} is not a dict")
    # sorted by image so each image file is read once for all its refs
    for ref in sorted(good, key=lambda r: (str(r.get("image_id")), str(r.get("ref_id")))):
        sents = ref.get("sentences") or []
        base = f"{dataset}:{ref.get('ref_id')}"
        uids = [f"{base}:{s.get('sent_id', j)}" for j, s in enumerate(sents)] or [base]
        if splits and ref.get("split") not in splits:
            for u in uids:
                yield from (Reject(u + ":ref", "split_excluded"), Reject(u + ":region", "split_excluded"))
            continue
        yield from _ref_samples(ref, sents, uids, images, anns, cache)


def _ref_samples(ref, sents, uids, images, anns, cache):
    def reject_all(reason, detail=""):
        for u in uids:
            yield Reject(u + ":ref", reason, detail)
            yield Reject(u + ":region", reason, detail)

    ann, im = anns.get(ref.get("ann_id")), images.get(ref.get("image_id"))
    if ann is None or im is None:
        yield from reject_all("missing_annotation", f"ann {ref.get('ann_id')} / image {ref.get('image_id')}")
        return
    if not sents:
        yield from reject_all("no_expression")
        return
    img = cache.get(im.get("file_name"), uids[0])
    if isinstance(img, Reject):
        yield from reject_all(img.reason, img.detail)
        return
    # COCO boxes live in the annotated image's frame; scale if the stored file differs
    scale = scale_or_reject(img, im.get("width"), im.get("height"), uids[0])
    bins = (
        scale
        if isinstance(scale, Reject)
        else bins_or_reject(scaled(xywh_to_xyxy(ann.get("bbox")), *scale), img.width, img.height, uids[0])
    )
    if isinstance(bins, Reject):
        yield from reject_all(bins.reason, bins.detail)
        return
    for s, u in zip(sents, uids):
        expr = (s.get("sent") or s.get("raw") or "").strip()
        if not expr:
            yield Reject(u + ":ref", "no_expression")
            yield Reject(u + ":region", "no_expression")
            continue
        objects = [{"ref": expr, "box": list(bins), "category_id": ref.get("category_id")}]
        extra = {"objects": objects, "image_id": f"coco:{ref.get('image_id')}"}
        yield from ref_and_region(u, expr, bins, img, extra)
