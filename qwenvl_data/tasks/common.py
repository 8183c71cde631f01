"""What every converter shares: the task-sample dict, image files, and the shard sink with its funnel.

A converter is a generator of `Sample | Reject` over one dataset's files; `sink.TaskSink` writes the
samples into `{dataset}-{000000}.tar` shards (ShardWriter) and counts every reject by reason, so
`in == out + sum(rejected)` is checked by the job itself.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..boxes import BoxError, box_to_bins
from ..errors import BadInput
from ..images import ImageRejected, decode_fully, open_checked
from ..schema import first_error
from ..vocab import TASKS

# Members of a task shard other than json: the image format as stored by the dataset. A camera JPEG
# with a multi-picture (MPF) segment opens as MPO; its bytes are a plain JPEG whose first frame is the photo.
_IMAGE_FORMATS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png"}
DEFAULT_MAX_PIXELS = 40_000_000


@dataclass
class Sample:
    uid: str
    task: str
    prompt: str
    target: str
    lang: str = "en"
    image: ImageFile | None = None
    extra: dict = field(default_factory=dict)


def ref_and_region(uid: str, phrase: str, bins, image, extra: dict):
    """The two samples a referred region gives (RefCOCO and Visual Genome alike): `ref_grounding`
    (`<ref>phrase</ref>` -> `<box>`) and `grounded_caption` (`<ref>This</ref><box>` is -> phrase), in the
    phrase's own language (a Chinese expression is `zh`)."""
    from .. import formats
    from .text import guess_lang  # text imports this module

    lang = guess_lang(phrase)
    yield Sample(
        uid + ":ref",
        "ref_grounding",
        formats.ref_grounding_prompt(phrase),
        formats.boxes_text([bins]),
        lang,
        image,
        extra,
    )
    yield Sample(
        uid + ":region", "grounded_caption", formats.region_caption_prompt(bins), phrase, lang, image, dict(extra)
    )


@dataclass
class Reject:
    uid: str
    reason: str
    detail: str = ""


@dataclass
class ImageFile:
    data: bytes
    ext: str  # jpg | png
    width: int
    height: int
    ref: str  # the dataset-relative path, e.g. VG_100K_2/1.jpg


class ImageCache:
    """Read each image file once for the consecutive samples that share it (refs, regions, QAs).

    File names come from annotation files: one that is absolute, holds `..` or resolves (through a
    link) outside the image root is rejected as `unsafe_path`, never read.
    """

    def __init__(self, root: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.root = Path(root)
        self._root_real = self.root.resolve()
        self.max_pixels = max_pixels
        self._last: tuple[str, ImageFile | Reject] | None = None

    def get(self, rel: str, uid: str) -> ImageFile | Reject:
        if self._last and self._last[0] == rel:
            img = self._last[1]
            return Reject(uid, img.reason, img.detail) if isinstance(img, Reject) else img
        img = self._load(rel, uid)
        self._last = (rel, img)
        return img

    def _load(self, rel, uid: str) -> ImageFile | Reject:
        if not isinstance(rel, str) or not rel or "\x00" in rel:
            return Reject(uid, "bad_record", f"image name {rel!r}")
        path = self.root / rel
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or rel.startswith("~"):
            return Reject(uid, "unsafe_path", f"{rel!r}: image names must stay inside {self.root}")
        try:
            path.resolve().relative_to(self._root_real)
        except ValueError:
            return Reject(uid, "unsafe_path", f"{rel!r} leads outside {self.root}")
        return load_image(path, rel, uid, self.max_pixels)


def load_image(path: Path, ref: str, uid: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageFile | Reject:
    try:
        data = path.read_bytes()
    except OSError:
        return Reject(uid, "missing_image", f"{path}: not found")
    return image_from_bytes(data, ref, uid, max_pixels)


def image_from_bytes(
    data: bytes, ref: str, uid: str, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> ImageFile | Reject:
    """The stored image after the checks download applies (qwenvl_data/images.py): header and pixel
    limit before decoding, then a full decode (a truncated file fails here, not in training)."""
    try:
        img = open_checked(data, max_pixels)
        fmt, (w, h) = img.format, img.size
        if fmt in _IMAGE_FORMATS:
            decode_fully(img)
    except ImageRejected as e:
        return Reject(uid, e.reason, f"{ref}: {e}")
    if fmt not in _IMAGE_FORMATS:
        return Reject(uid, "unsupported_format", f"{ref}: {fmt}")
    return ImageFile(data, _IMAGE_FORMATS[fmt], w, h, ref)


def number(v) -> float | None:
    """A finite float from an annotation value (int, float or numeric string), else None ("12px", None, nan)."""
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def scale_or_reject(img: ImageFile, ann_w, ann_h, uid: str):
    """(sx, sy) from the annotated image size to the stored file's, or a Reject when the size is unusable."""
    w = img.width if ann_w is None else number(ann_w)
    h = img.height if ann_h is None else number(ann_h)
    if not w or not h or w <= 0 or h <= 0:
        return Reject(uid, "bad_image_size", f"annotated size {ann_w!r}x{ann_h!r}")
    return img.width / w, img.height / h


def bins_or_reject(box, width: float, height: float, uid: str):
    """Pixel [x1,y1,x2,y2] -> bins (clipped to the image), or a Reject with the box's reason."""
    vals = [number(v) for v in box] if isinstance(box, (list, tuple)) and len(box) == 4 else [None]
    nums = [v for v in vals if v is not None]
    if len(nums) != 4:
        return Reject(uid, "invalid_box", f"box {box!r} is not four numbers")
    try:
        return box_to_bins(nums, width, height)
    except BoxError as e:
        return Reject(uid, e.reason, str(e))


def xywh_to_xyxy(b):
    """[x, y, w, h] -> [x1, y1, x2, y2]; a box that is not four numbers is returned as it is, for
    bins_or_reject to reject with the values named."""
    if not isinstance(b, (list, tuple)) or len(b) != 4:
        return b
    x, y, w, h = (number(v) for v in b)
    if None in (x, y, w, h):
        return list(b)
    return [x, y, x + w, y + h]


def scaled(box, sx: float, sy: float):
    """A box times the (sx, sy) scale; values that are not numbers stay as they are."""
    if not isinstance(box, (list, tuple)):
        return box
    nums = [number(v) for v in box]
    return [v if n is None else n * (sx if i % 2 == 0 else sy) for i, (v, n) in enumerate(zip(box, nums))]


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


_TASKS = frozenset(TASKS)


def _size_ok(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def task_error(obj: dict) -> str | None:
    """None when a task sample json conforms to schemas/task.schema.json, else the first problem.

    The same rules as the schema, checked in plain Python (jsonschema costs ~1 ms a sample, more than
    the conversion itself); the schema file stays the contract and the tests hold the two together.
    """
    ok = (
        obj.get("schema") in ("task", "ocr")
        and isinstance(obj.get("uid"), str)
        and obj["uid"]
        and isinstance(obj.get("source"), str)
        and obj["source"]
        and obj.get("task") in _TASKS
        and obj.get("lang") in ("en", "zh")
        and isinstance(obj.get("prompt"), str)
        and isinstance(obj.get("target"), str)
        and obj["target"]
        and "width" in obj
        and "height" in obj
    )
    if ok:
        if obj["task"] == "text":
            ok = obj["prompt"] == "" and obj["width"] is None and obj["height"] is None
        else:
            ok = _size_ok(obj["width"]) and _size_ok(obj["height"])
    if ok:
        return None
    return first_error("task", obj) or "does not match schema 'task'"


def sample_json(s: Sample, source: str) -> dict:
    obj = {
        "schema": "task",
        "uid": s.uid,
        "source": source,
        "task": s.task,
        "lang": s.lang,
        "prompt": s.prompt,
        "target": s.target,
        "width": s.image.width if s.image else None,
        "height": s.image.height if s.image else None,
    }
    if s.image:
        obj["image_ref"] = s.image.ref
    obj.update(s.extra)
    return obj
