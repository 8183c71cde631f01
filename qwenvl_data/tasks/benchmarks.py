"""Read the evaluation splits of the benchmarks (configs/decontaminate.yaml) into a decontam.EvalSet.

Each benchmark is one of the task datasets read for its evaluation splits with the same readers the
converters use, so the ids agree with the ones the training samples carry:

- refcoco, refcoco+, refcocog: the refs of the listed splits (val, testA, testB; RefCOCOg val, test)
  -> COCO image ids ("coco:1") and the COCO images (from --images, default DIR/images) to hash
- vqav2, gqa, textvqa, docvqa, chartqa, ai2d, ocrvqa, dvqa: every question of the listed splits ->
  question uids ("vqav2:770"), image ids and image files
An image file that is missing is not an error (test-split images are often not downloaded): the ids
still match. A benchmark folder or split file that is missing is reported, and skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..decontam import EvalSet, hash_images
from ..errors import BadInput
from .common import read_json, require
from .refcoco import find_refs
from .safe_pickle import safe_load
from .vqa import NOT_SPLIT, READERS, read_split

REF_SETS = ("refcoco", "refcoco+", "refcocog")


def _refcoco(d: Path, dataset: str, split: str, images: Path):
    refs_path = find_refs(d, dataset)
    refs = safe_load(refs_path.read_bytes(), str(refs_path))
    inst = read_json(require(d / "instances.json", "COCO instances of the refs"))
    names = {im.get("id"): im.get("file_name") for im in inst.get("images", []) if isinstance(im, dict)}
    seen = set()
    for ref in refs if isinstance(refs, list) else []:
        if isinstance(ref, dict) and ref.get("split") == split and ref.get("image_id") not in seen:
            seen.add(ref.get("image_id"))
            name = names.get(ref.get("image_id"))
            yield None, f"coco:{ref.get('image_id')}", images / name if isinstance(name, str) else None


def _vqa(d: Path, dataset: str, split: str, images: Path):
    for row in read_split(dataset, d, split):
        if row.answer is not NOT_SPLIT:
            yield row.uid, row.image_id, images / row.image


def _missing(e: BadInput) -> bool:
    """A file or folder that is not there (skipped, reported), not one that is broken (an error)."""
    return ": missing (" in str(e) or ": no " in str(e)


def read_benchmark(name: str, spec: dict, root: Path, skipped: list[str]):
    """(question uid | None, image id, image path | None) for every record of a benchmark's splits;
    the splits whose files are not there are added to `skipped` with the reason."""
    dataset = spec.get("dataset") or name
    if dataset not in REF_SETS and dataset not in READERS:
        raise BadInput(
            f"decontaminate.benchmarks.{name}: no reader for dataset {dataset!r} "
            f"(one of {', '.join(REF_SETS + tuple(READERS))})"
        )
    d = root / (spec.get("path") or dataset)
    images = root / spec["images"] if spec.get("images") else d / "images" if dataset in REF_SETS else d
    read = _refcoco if dataset in REF_SETS else _vqa
    for split in spec.get("splits") or []:
        if not d.is_dir():
            skipped.append(f"{split}: {d} not found")
            continue
        try:
            yield from read(d, dataset, split, images)
        except BadInput as e:
            if not _missing(e):
                raise
            skipped.append(f"{split}: {e}")
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise BadInput(
                f"benchmark {name} ({dataset}, split {split}) under {d}: unexpected record layout "
                f"({type(e).__name__}: {e})"
            ) from None


def load_benchmarks(benchmarks: dict, root: Path, method: str, max_distance: int, max_pixels=40_000_000):
    """(EvalSet, per-benchmark summary {eval_questions, eval_images, hashed, skipped})."""
    ev = EvalSet(method=method, max_distance=max_distance)
    summary: dict[str, dict] = {}
    for name, spec in benchmarks.items():
        if spec is None:  # a shipped benchmark switched off in the user's config
            continue
        if not isinstance(spec, dict):
            raise BadInput(f"decontaminate.benchmarks.{name}: expected a mapping, got {type(spec).__name__}")
        info = summary[name] = {
            "splits": list(spec.get("splits") or []),
            "eval_questions": 0,
            "eval_images": 0,
            "hashed": 0,
            "skipped": [],
        }
        paths: dict[str, Path | None] = {}
        for question, image_id, path in read_benchmark(name, spec, root, info["skipped"]):
            ev.add(name, image_id, question)
            info["eval_questions"] += question is not None
            paths.setdefault(image_id, path)
        info["eval_images"] = len(paths)
        blobs = [p.read_bytes() if p is not None and p.is_file() else b"" for p in paths.values()]
        hashes, ok = hash_images(blobs, method, max_pixels)
        ev.add_hashes(name, hashes[ok])
        info["hashed"] = int(np.count_nonzero(ok))
    return ev, summary
