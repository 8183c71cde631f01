"""Benchmark decontamination: which training samples show an evaluation image or ask an evaluation question.

Three matches, cheapest first (docs: `qwenvl-data decontaminate`):
- dataset ids: task samples carry the id of their image in the dataset's own namespace (`image_id`,
  and VG's `coco_id`: "coco:1", "vg:2", "openimages:abc"); a benchmark's split files give the same ids.
- questions: a VQA sample whose uid is a benchmark question ("vqav2:770", "docvqa:50").
- pixels: a perceptual hash of every image (web pairs and re-encoded copies share no ids). pHash (DCT of
  a 32x32 grey image, the 8x8 lowest frequencies against their median: 64 bits) or dHash (signs of the
  horizontal gradient of a 9x8 grey image); a training image whose hash is within `max_distance` bits
  (Hamming) of an evaluation image's is that image. Hashes are computed in numpy batches; distances are
  XOR + popcount of a batch against every evaluation hash.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

HASH_SIZES = {"phash": (32, 32), "dhash": (9, 8)}  # (width, height) of the grey thumbnail
_BITS = 1 << np.arange(63, -1, -1, dtype=np.uint64)


def _dct_matrix(n: int) -> np.ndarray:
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT32 = _dct_matrix(32)


def thumbnail(data: bytes, method: str = "phash", max_pixels: int | None = 40_000_000) -> np.ndarray | None:
    """The grey thumbnail one hash is computed from (float32 [h, w]), or None if the bytes are no image."""
    w, h = HASH_SIZES[method]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img: Image.Image = Image.open(io.BytesIO(data))
            if max_pixels is not None and img.size[0] * img.size[1] > max_pixels:
                return None
            img.draft("L", (w * 4, h * 4))  # JPEG: libjpeg's DCT scaling, far cheaper than a full decode
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            return np.asarray(img.convert("L").resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0), np.float32)
    except Exception:  # noqa: BLE001 - whatever Pillow raises, the image is not hashable
        return None


def hash_batch(thumbs: np.ndarray, method: str = "phash") -> np.ndarray:
    """64-bit hashes (uint64 [n]) of a stack of thumbnails [n, h, w], all at once."""
    if len(thumbs) == 0:
        return np.zeros(0, np.uint64)
    if method == "dhash":
        bits = thumbs[:, :, 1:] > thumbs[:, :, :-1]  # [n, 8, 8]
    else:
        freq = _DCT32[:8] @ thumbs.astype(np.float64) @ _DCT32[:8].T  # the 8x8 lowest of the 2-D DCT
        low = freq.reshape(len(thumbs), 64)
        med = np.median(low[:, 1:], axis=1, keepdims=True)  # the DC term would skew the median
        bits = (low > med).reshape(-1, 8, 8)
    return (bits.reshape(len(thumbs), 64).astype(np.uint64) * _BITS).sum(axis=1, dtype=np.uint64)


def hash_images(blobs: list[bytes], method: str = "phash", max_pixels: int | None = 40_000_000):
    """(hashes uint64 [n], ok bool [n]) for a list of encoded images; unreadable ones are not ok."""
    w, h = HASH_SIZES[method]
    thumbs = [thumbnail(b, method, max_pixels) if b else None for b in blobs]
    ok = np.array([t is not None for t in thumbs], bool)
    stack = (
        np.stack([t if t is not None else np.zeros((h, w), np.float32) for t in thumbs])
        if thumbs
        else np.zeros((0, h, w), np.float32)
    )
    return hash_batch(stack, method), ok


class HashIndex:
    """Every reference hash within `max_distance` bits of a query, found without comparing all pairs.

    Multi-index hashing: the 64 bits are cut into max_distance + 1 blocks; two hashes at most
    max_distance bits apart agree exactly on at least one block (pigeonhole). Each block's values are
    sorted once; a query's candidates are the references sharing one of its blocks (searchsorted), and
    only those are compared (XOR + popcount). With wide thresholds (blocks under 8 bits) or few
    references, every pair is compared instead.
    """

    def __init__(self, ref: np.ndarray, max_distance: int):
        self.ref, self.max_distance = np.asarray(ref, np.uint64), max_distance
        k = max_distance + 1
        self.blocks: list[tuple[int, np.uint64, np.ndarray, np.ndarray]] = []
        if k <= 8 and len(self.ref) >= 4096:
            bounds = np.linspace(0, 64, k + 1).astype(int)
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                mask = np.uint64((1 << int(hi - lo)) - 1)
                values = (self.ref >> np.uint64(lo)) & mask
                order = np.argsort(values, kind="stable")
                self.blocks.append((int(lo), mask, order, values[order]))

    def query(self, query: np.ndarray, chunk: int = 4096) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for i in range(0, len(query), chunk):
            out += self._query(np.asarray(query[i : i + chunk], np.uint64))
        return out

    def _brute(self, q: np.ndarray) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for i in range(0, len(q), 64):
            hit = np.bitwise_count(q[i : i + 64, None] ^ self.ref[None, :]) <= self.max_distance
            out += [np.flatnonzero(row) for row in hit]
        return out

    def _query(self, q: np.ndarray) -> list[np.ndarray]:
        if not self.blocks:
            return self._brute(q)
        qi_parts, ri_parts = [], []
        for lo, mask, order, sorted_values in self.blocks:
            qb = (q >> np.uint64(lo)) & mask
            start = np.searchsorted(sorted_values, qb, "left")
            counts = np.searchsorted(sorted_values, qb, "right") - start
            if counts.sum() > 20_000_000:  # hashes crowd into a few block values: compare every pair
                return self._brute(q)
            offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            qi_parts.append(np.repeat(np.arange(len(q)), counts))
            ri_parts.append(order[np.repeat(start, counts) + offsets])
        qi, ri = np.concatenate(qi_parts), np.concatenate(ri_parts)
        keep = np.bitwise_count(q[qi] ^ self.ref[ri]) <= self.max_distance
        pairs = np.unique(np.stack([qi[keep], ri[keep]], axis=1), axis=0) if keep.any() else np.zeros((0, 2), int)
        cuts = np.searchsorted(pairs[:, 0], np.arange(len(q) + 1))
        return [pairs[a:b, 1] for a, b in zip(cuts[:-1], cuts[1:])]


def near(query: np.ndarray, ref: np.ndarray, max_distance: int) -> list[np.ndarray]:
    """For each query hash, the indices of the reference hashes within max_distance bits."""
    return HashIndex(ref, max_distance).query(query)


@dataclass
class EvalSet:
    """Everything the benchmarks' evaluation splits hold that a training sample could repeat."""

    method: str = "phash"
    max_distance: int = 8
    ids: dict[str, set] = field(default_factory=dict)  # "coco:1" -> {benchmark, ...}
    questions: dict[str, set] = field(default_factory=dict)  # "vqav2:770" -> {benchmark}
    hashes: list[int] = field(default_factory=list)
    hash_bench: list[str] = field(default_factory=list)
    hashed: int = 0  # training images hashed by match(), and the seconds it took
    hash_seconds: float = 0.0
    _index: HashIndex | None = None

    def add(self, bench: str, image_id: str | None = None, question: str | None = None):
        if image_id:
            self.ids.setdefault(image_id, set()).add(bench)
        if question:
            self.questions.setdefault(question, set()).add(bench)

    def add_hashes(self, bench: str, hashes: np.ndarray):
        self.hashes += [int(h) for h in hashes]
        self.hash_bench += [bench] * len(hashes)
        self._index = None

    def match(self, metas: list[dict], blobs: list[bytes | None]) -> list[dict[str, str]]:
        """For each training sample, {benchmark: how} ("id", "question" or "hash"); {} if clean."""
        found: list[dict[str, str]] = []
        need = []
        for i, m in enumerate(metas):
            hit: dict[str, str] = {}
            for key in (m.get("image_id"), m.get("coco_id")):
                for b in self.ids.get(key, ()) if isinstance(key, str) else ():
                    hit.setdefault(b, "id")
            if m.get("task") in ("vqa", None) and isinstance(m.get("uid"), str):
                for b in self.questions.get(m["uid"], ()):
                    hit.setdefault(b, "question")
            found.append(hit)
            if not hit and blobs[i]:
                need.append(i)
        if need and self.hashes:
            if self._index is None:
                self._index = HashIndex(np.array(self.hashes, np.uint64), self.max_distance)
            t0 = time.perf_counter()
            hashes, ok = hash_images([blobs[i] or b"" for i in need], self.method)
            self.hashed += len(need)
            self.hash_seconds += time.perf_counter() - t0
            for i, good, idx in zip(need, ok, self._index.query(hashes)):
                for j in idx if good else ():
                    found[i].setdefault(self.hash_bench[j], "hash")
        return found


def reports_for(inputs) -> dict:
    """{"decontamination": report} when the input folders (or the folder above them) hold the
    `decontamination.json` of `qwenvl-data decontaminate`, for `shards` to copy into index.json; else {}."""
    from . import storage  # inputs may be URLs (s3://...)

    found: dict[str, dict] = {}
    for raw in inputs:
        for cand in (
            storage.join(raw, "decontamination.json"),
            storage.join(storage.parent(raw), "decontamination.json"),
        ):
            key = cand if storage.is_remote(cand) else str(Path(cand).resolve())
            try:
                if key not in found and storage.exists(cand) and not storage.isdir(cand):
                    found[key] = json.loads(storage.read_bytes(cand))
            except (OSError, ValueError):
                continue
    docs = list(found.values())
    return {"decontamination": docs[0] if len(docs) == 1 else docs} if docs else {}
