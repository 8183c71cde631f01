"""Caption samples: COCO Captions, and the stage-1 pair shards (download / clip-score output).

- coco: DIR/annotations/captions_train2014.json (or captions_train2017.json) {images: [{id, file_name}],
  annotations: [{id, image_id, caption}]}, images under IMAGES/train2014/ (or train2017/); one
  sample per caption (COCO's five captions per image are five samples, as Table 2 counts them).
- pairs: DIR/*.tar with KEY.jpg + KEY.json (schema "sample": uid, source, caption, lang).
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import formats
from ..errors import BadInput
from ..shards import iter_tar_samples
from .common import DEFAULT_MAX_PIXELS, ImageCache, Reject, Sample, image_from_bytes, read_json

COCO_FILES = (("captions_train2014.json", "train2014"), ("captions_train2017.json", "train2017"))


def convert_coco(input_dir: Path, dataset: str, images_dir: Path, cfg: dict):
    for name, folder in COCO_FILES:  # noqa: B007 - `folder` of the file found is used below
        path = input_dir / "annotations" / name
        if path.exists():
            break
    else:
        raise BadInput(f"{input_dir}/annotations: no captions_train2014.json or captions_train2017.json")
    data = read_json(path)
    images = {im.get("id"): im for im in data.get("images", []) if isinstance(im, dict)}
    cache = ImageCache(images_dir, cfg.get("max_pixels"))
    for a in sorted(data.get("annotations", []), key=lambda a: (a.get("image_id"), a.get("id"))):
        uid = f"coco:{a.get('id')}"
        im = images.get(a.get("image_id"))
        caption = a.get("caption").strip() if isinstance(a.get("caption"), str) else ""
        if im is None:
            yield Reject(uid, "missing_annotation", f"image {a.get('image_id')}")
            continue
        if not caption:
            yield Reject(uid, "empty_caption")
            continue
        img = cache.get(f"{folder}/{im.get('file_name')}", uid)
        yield (
            img
            if isinstance(img, Reject)
            else Sample(
                uid, "caption", formats.caption_prompt("en"), caption, "en", img, {"image_id": f"coco:{im.get('id')}"}
            )
        )


def iter_pairs(tar: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """(uid, source, lang, caption, ImageFile | Reject) for each sample of one pair shard."""
    for key, files in iter_tar_samples(tar):
        try:
            meta = json.loads(files.get("json") or b"{}")
        except ValueError:
            meta = {}
        uid = str(meta.get("uid") or f"{tar.stem}:{key}")
        data = files.get("jpg") or files.get("png") or files.get("jpeg")
        img = image_from_bytes(data, f"{tar.name}/{key}", uid, max_pixels) if data else Reject(uid, "missing_image")
        caption = meta.get("caption") or (files.get("txt") or b"").decode("utf-8", "replace")
        yield uid, str(meta.get("source") or "unknown"), meta.get("lang"), caption.strip(), img


def pair_sample(uid, lang, caption, img) -> Sample | Reject:
    if isinstance(img, Reject):
        return img
    if lang not in formats.CAPTION_PROMPT:
        return Reject(uid, "unknown_lang", str(lang))
    if not caption:
        return Reject(uid, "empty_caption")
    return Sample(uid, "caption", formats.caption_prompt(lang), caption, lang, img)


def convert_pairs(input_dir: Path, dataset: str, images_dir: Path, cfg: dict):
    tars = sorted(input_dir.glob("*.tar"))
    if not tars:
        raise BadInput(f"{input_dir}: no pair shards (*.tar)")
    for tar in tars:
        for uid, source, lang, caption, img in iter_pairs(tar, cfg.get("max_pixels")):
            s = pair_sample(uid, lang, caption, img)
            if isinstance(s, Sample):
                s.extra["pair_source"] = source
            yield s
