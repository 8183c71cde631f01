"""Synthetic grounding scenes for `make prove`, written as datasets in the layouts our converters read.

- A scene is a few shapes (circle, square, triangle) of different colours and sizes at random places
  on a plain background. Every object gets a referring expression in English and in Chinese that
  picks it out (`the small red circle`, `左边的蓝色方块`): colour and shape, plus size or side only when
  another object shares them (and size now and then when nothing does), so the words must be read
  against the pixels and a text-only model cannot guess the box.
- Written as Visual Genome (`image_data.json`, `region_descriptions.json`, `VG_100K/{id}.jpg`) for
  `qwenvl-data tasks --dataset vg-regions`, and as download-stage pair shards (captions, `sample`
  schema) for `qwenvl-data shards --stage 1`. Train and held-out sets are separate folders made from
  separate seeds, so no image is in both.
- Everything depends only on (seed, scene number): reruns give identical bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from qwenvl_data.shards import ShardWriter

COLOURS = {
    "red": ((215, 40, 40), "红色"),
    "green": ((40, 170, 70), "绿色"),
    "blue": ((45, 75, 215), "蓝色"),
    "yellow": ((235, 200, 30), "黄色"),
    "purple": ((140, 60, 180), "紫色"),
}
SHAPES = {"circle": "圆形", "square": "方块", "triangle": "三角形"}
SIZES = {"small": ((0.16, 0.22), "小的"), "large": ((0.30, 0.38), "大的")}
SIDES = {"left": "左边的", "right": "右边的"}


@dataclass
class Obj:
    colour: str
    shape: str
    size: str
    box: tuple[int, int, int, int]  # pixels x1 y1 x2 y2 (exclusive right/bottom)
    en: str = ""
    zh: str = ""


def _place(rng: random.Random, side: int, boxes: list, frac: tuple[float, float]):
    for _ in range(200):
        s = int(side * rng.uniform(*frac))
        x, y = rng.randrange(2, side - s - 2), rng.randrange(2, side - s - 2)
        box = (x, y, x + s, y + s)
        if all(box[2] + 4 <= b[0] or b[2] + 4 <= box[0] or box[3] + 4 <= b[1] or b[3] + 4 <= box[1] for b in boxes):
            return box
    return None


def _describe(objs: list[Obj], rng: random.Random):
    """Fill each object's English and Chinese expression: the fewest attributes that pick it out."""
    for o in objs:
        twins = [t for t in objs if t is not o and (t.colour, t.shape) == (o.colour, o.shape)]
        size = side = None
        if twins and all(t.size != o.size for t in twins):
            size = o.size
        elif twins:  # same colour, shape and size: the side tells them apart (scenes hold at most two)
            cx, tx = (o.box[0] + o.box[2]) / 2, (twins[0].box[0] + twins[0].box[2]) / 2
            side = "left" if cx < tx else "right"
        elif rng.random() < 0.3:
            size = o.size
        words = ([size] if size else []) + [o.colour, o.shape]
        o.en = "the " + " ".join(words) + (f" on the {side}" if side else "")
        o.zh = (SIDES[side] if side else "") + (SIZES[size][1] if size else "") + COLOURS[o.colour][1] + SHAPES[o.shape]


def caption(objs: list[Obj], lang: str) -> str:
    if lang == "zh":
        parts = [SIZES[o.size][1] + COLOURS[o.colour][1] + SHAPES[o.shape] for o in objs]
        return ("、".join(parts[:-1]) + "和" + parts[-1]) if len(parts) > 1 else parts[0]
    parts = [f"a {o.size} {o.colour} {o.shape}" for o in objs]
    return (", ".join(parts[:-1]) + " and " + parts[-1]) if len(parts) > 1 else parts[0]


def make_scene(
    seed: int, index: int, side: int = 224, twins: float = 0.25, counts: tuple = (2, 3, 3)
) -> tuple[bytes, list[Obj]]:
    """(JPEG bytes, objects) of scene `index` of `seed`; `twins`: the chance that an object after the first
    copies an earlier one's colour and shape (then its size or side must be read to tell them apart);
    `counts`: the object count is drawn from it."""
    rng = random.Random(seed * 1_000_003 + index)
    n = rng.choice(tuple(counts))
    objs: list[Obj] = []
    while len(objs) < n:
        if objs and rng.random() < twins:  # a twin of an earlier object: size or side must be read
            src = rng.choice(objs)
            colour, shape = src.colour, src.shape
        else:
            colour, shape = rng.choice(sorted(COLOURS)), rng.choice(sorted(SHAPES))
        size = rng.choice(sorted(SIZES))
        box = _place(rng, side, [o.box for o in objs], SIZES[size][0])
        if box is None:
            break
        objs.append(Obj(colour, shape, size, box))
    grey = rng.randrange(200, 240)
    img = Image.new("RGB", (side, side), (grey, grey + rng.randrange(-8, 9), grey + rng.randrange(-8, 9)))
    d = ImageDraw.Draw(img)
    for o in objs:
        fill = COLOURS[o.colour][0]
        x1, y1, x2, y2 = o.box
        if o.shape == "circle":
            d.ellipse((x1, y1, x2 - 1, y2 - 1), fill=fill)
        elif o.shape == "square":
            d.rectangle((x1, y1, x2 - 1, y2 - 1), fill=fill)
        else:
            d.polygon([((x1 + x2) / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], fill=fill)
    _describe(objs, rng)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue(), objs


def write_vg(
    out_dir: str | Path,
    seed: int,
    count: int,
    side: int = 224,
    first_id: int = 1,
    twins: float = 0.25,
    counts: tuple = (2, 3, 3),
) -> dict:
    """Scenes as a Visual Genome download: the region list holds an English and a Chinese region per
    object. Returns {'images': n, 'regions': n}."""
    out = Path(out_dir)
    (out / "VG_100K").mkdir(parents=True, exist_ok=True)
    images, regions, region_id = [], [], 1
    for i in range(count):
        image_id = first_id + i
        jpg, objs = make_scene(seed, i, side, twins, counts)
        (out / "VG_100K" / f"{image_id}.jpg").write_bytes(jpg)
        images.append(
            {
                "image_id": image_id,
                "width": side,
                "height": side,
                "coco_id": None,
                "flickr_id": None,
                "url": f"https://cs.stanford.edu/people/rak248/VG_100K/{image_id}.jpg",
            }
        )
        rs = []
        for o in objs:
            for phrase in (o.en, o.zh):
                x1, y1, x2, y2 = o.box
                rs.append(
                    {
                        "region_id": region_id,
                        "image_id": image_id,
                        "phrase": phrase,
                        "x": x1,
                        "y": y1,
                        "width": x2 - x1,
                        "height": y2 - y1,
                    }
                )
                region_id += 1
        regions.append({"id": image_id, "regions": rs})
    (out / "image_data.json").write_text(json.dumps(images))
    (out / "region_descriptions.json").write_text(json.dumps(regions, ensure_ascii=False))
    return {"images": count, "regions": region_id - 1}


def write_caption_pairs(
    out_dir: str | Path,
    seed: int,
    count: int,
    side: int = 224,
    shard_size: int = 1000,
    source: str = "scenes",
    twins: float = 0.25,
    counts: tuple = (2, 3, 3),
) -> int:
    """Scene captions as download-stage pair shards (KEY.jpg + KEY.txt + KEY.json, schema 'sample'):
    one sample per scene, the language alternating, so stage 1 sees both. Returns samples written."""
    written = 0
    for shard in range(-(-count // shard_size)):
        with ShardWriter(out_dir, shard, prefix="") as w:
            for i in range(shard * shard_size, min(count, (shard + 1) * shard_size)):
                jpg, objs = make_scene(seed, i, side, twins, counts)
                lang = ("en", "zh")[i % 2]
                key = f"{shard:05d}{i % shard_size:04d}"
                text = caption(objs, lang)
                meta = {
                    "schema": "sample",
                    "uid": f"{source}-s{seed}-{i:07d}",
                    "source": source,
                    "caption": text,
                    "lang": lang,
                    "key": key,
                    "width": side,
                    "height": side,
                    "original_width": side,
                    "original_height": side,
                    "sha256": hashlib.sha256(jpg).hexdigest(),
                    "status": "success",
                    "error_message": None,
                    "image_format": "jpg",
                }
                w.add(key, {"jpg": jpg, "txt": text, "json": meta}, {"key": key, "uid": meta["uid"], "lang": lang})
                written += 1
            w.close({"source": source})
    return written
