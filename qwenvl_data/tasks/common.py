"""What every converter shares: the task-sample dict, image files, and the shard sink with its funnel.

A converter is a generator of `Sample | Reject` over one dataset's files; `TaskSink` writes the
samples into `{dataset}-{000000}.tar` shards (ShardWriter) and counts every reject by reason, so
`in == out + sum(rejected)` is checked by the job itself.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from PIL import Image

from ..boxes import BoxError, box_to_bins
from ..errors import BadInput
from ..schema import first_error
from ..shards import ShardWriter, shard_done

# Members of a task shard other than json: the image format as stored by the dataset.
_IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png"}


@dataclass
class Sample:
    uid: str
    task: str
    prompt: str
    target: str
    lang: str = "en"
    image: "ImageFile | None" = None
    extra: dict = field(default_factory=dict)


@dataclass
class Reject:
    uid: str
    reason: str
    detail: str = ""


@dataclass
class ImageFile:
    data: bytes
    ext: str            # jpg | png
    width: int
    height: int
    ref: str            # the dataset-relative path, e.g. VG_100K_2/1.jpg


class ImageCache:
    """Read each image file once for the consecutive samples that share it (refs, regions, QAs)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._last: tuple[str, ImageFile | Reject] | None = None

    def get(self, rel: str, uid: str) -> ImageFile | Reject:
        if self._last and self._last[0] == rel:
            img = self._last[1]
            return Reject(uid, img.reason, img.detail) if isinstance(img, Reject) else img
        img = load_image(self.root / rel, rel, uid)
        self._last = (rel, img)
        return img


def load_image(path: Path, ref: str, uid: str) -> ImageFile | Reject:
    try:
        data = path.read_bytes()
    except OSError:
        return Reject(uid, "missing_image", f"{path}: not found")
    return image_from_bytes(data, ref, uid)


def image_from_bytes(data: bytes, ref: str, uid: str) -> ImageFile | Reject:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()  # checks the file structure without decoding all pixels
        with Image.open(io.BytesIO(data)) as im:
            fmt, (w, h) = im.format, im.size
    except Exception as e:
        return Reject(uid, "bad_image", f"{ref}: {type(e).__name__}")
    if fmt not in _IMAGE_FORMATS:
        return Reject(uid, "bad_image", f"{ref}: unsupported format {fmt}")
    return ImageFile(data, _IMAGE_FORMATS[fmt], w, h, ref)


def bins_or_reject(box, width: float, height: float, uid: str):
    """Pixel [x1,y1,x2,y2] -> bins (clipped to the image), or a Reject with the box's reason."""
    try:
        return box_to_bins(box, width, height)
    except BoxError as e:
        return Reject(uid, e.reason, str(e))


def xywh_to_xyxy(b):
    x, y, w, h = (float(v) for v in b)
    return x, y, x + w, y + h


def read_json(path: Path):
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except OSError as e:
        raise BadInput(f"{path}: cannot read ({e.strerror or e})") from None
    except ValueError as e:
        raise BadInput(f"{path}: not valid JSON ({e})") from None


def require(path: Path, what: str) -> Path:
    if not path.exists():
        raise BadInput(f"{path}: missing ({what})")
    return path


_TASKS = frozenset(("caption", "vqa", "grounding", "ref_grounding", "grounded_caption", "ocr", "text"))


def _size_ok(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def task_error(obj: dict) -> str | None:
    """None when a task sample json conforms to schemas/task.schema.json, else the first problem.

    The same rules as the schema, checked in plain Python (jsonschema costs ~1 ms a sample, more than
    the conversion itself); the schema file stays the contract and the tests hold the two together.
    """
    ok = (obj.get("schema") in ("task", "ocr") and isinstance(obj.get("uid"), str) and obj["uid"]
          and isinstance(obj.get("source"), str) and obj["source"] and obj.get("task") in _TASKS
          and obj.get("lang") in ("en", "zh") and isinstance(obj.get("prompt"), str)
          and isinstance(obj.get("target"), str) and obj["target"] and "width" in obj and "height" in obj)
    if ok:
        if obj["task"] == "text":
            ok = obj["prompt"] == "" and obj["width"] is None and obj["height"] is None
        else:
            ok = _size_ok(obj["width"]) and _size_ok(obj["height"])
    if ok:
        return None
    return first_error("task", obj) or "does not match schema 'task'"


def sample_json(s: Sample, source: str) -> dict:
    obj = {"schema": "task", "uid": s.uid, "source": source, "task": s.task, "lang": s.lang,
           "prompt": s.prompt, "target": s.target,
           "width": s.image.width if s.image else None, "height": s.image.height if s.image else None}
    if s.image:
        obj["image_ref"] = s.image.ref
    obj.update(s.extra)
    return obj


class TaskSink:
    """Write samples into rolling shards; count rejects; a finished shard is not rewritten on rerun."""

    def __init__(self, out_dir: str | Path, dataset: str, shard_size: int = 1000):
        self.out_dir, self.dataset, self.shard_size = Path(out_dir), dataset, shard_size
        self.prefix = dataset.replace("+", "plus")
        self.seen = self.out = 0
        self.rejected: dict[str, int] = {}
        self.by_task: dict[str, dict[str, int]] = {}
        self._rejects: list[dict] = []
        self._writer: ShardWriter | None = None
        self._shard_id, self._in_shard, self._shard_stats = 0, 0, {}
        self.skipped_shards = 0

    def add(self, item: Sample | Reject):
        self.seen += 1
        if isinstance(item, Reject):
            self.rejected[item.reason] = self.rejected.get(item.reason, 0) + 1
            if len(self._rejects) < 100_000:
                self._rejects.append({"uid": item.uid, "reason": item.reason, "detail": item.detail[:500]})
            return
        obj = sample_json(item, self.dataset)
        err = task_error(obj)
        if err:  # a converter bug, not a data problem: stop loudly with the sample named
            raise BadInput(f"{self.dataset}: sample {item.uid} does not match schema 'task': {err}")
        if self._in_shard == 0:
            self._open()
        key = f"{self.out:09d}"
        if self._writer is not None:
            files = {item.image.ext: item.image.data} if item.image else {}
            files["json"] = obj
            self._writer.add(key, files, {"key": key, "uid": item.uid, "task": item.task, "lang": item.lang})
        self.out += 1
        self._in_shard += 1
        per = self.by_task.setdefault(item.task, {})
        per[item.lang] = per.get(item.lang, 0) + 1
        shard_per = self._shard_stats.setdefault(item.task, {})
        shard_per[item.lang] = shard_per.get(item.lang, 0) + 1
        if self._in_shard >= self.shard_size:
            self._close()

    def add_all(self, items: Iterable[Sample | Reject]):
        for item in items:
            self.add(item)

    def _open(self):
        self._shard_stats = {}
        if shard_done(self.out_dir, self._shard_id, self.prefix):
            self._writer = None  # deterministic conversion: the finished shard already holds these
            self.skipped_shards += 1
        else:
            self._writer = ShardWriter(self.out_dir, self._shard_id, self.prefix)

    def _close(self):
        if self._writer is not None:
            self._writer.close({"dataset": self.dataset, "by_task": self._shard_stats})
        self._writer, self._in_shard = None, 0
        self._shard_id += 1

    def abort(self):
        if self._writer is not None:
            self._writer.abort()

    def finish(self, seconds: float | None = None) -> dict:
        if self._in_shard:
            self._close()
        n_rej = sum(self.rejected.values())
        if self.seen != self.out + n_rej:
            raise BadInput(f"{self.dataset}: accounting error: in {self.seen} != out {self.out} + "
                           f"rejected {n_rej}")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # JSON lines, not parquet: `validate DIR` reads every parquet as pair rows.
        with open(self.out_dir / f"{self.prefix}-rejects.jsonl", "w", encoding="utf-8") as f:
            for r in self._rejects:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        stats = {"dataset": self.dataset, "in": self.seen, "out": self.out, "rejected": self.rejected,
                 "by_task": self.by_task, "shards": self._shard_id, "skipped_shards": self.skipped_shards,
                 "seconds": seconds}
        (self.out_dir / f"{self.prefix}-stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True))
        return stats
