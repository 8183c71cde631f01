"""The one registry of datasets `qwenvl-data tasks` converts: name -> converter, config section, defaults.

The CLI choices (`tasks --dataset`), `tasks --list` (which `make tasks` reads as `TASK_DATASETS`) and the
config sections of configs/tasks.yaml all come from `DATASETS`; adding a converter means one entry here,
its module, and (if it has settings) its section in configs/tasks.yaml.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Dataset:
    module: str  # qwenvl_data.tasks.<module>
    function: str  # convert(input_dir, dataset, images_dir, cfg) -> Iterable[Sample | Reject]
    section: str | None  # the configs/tasks.yaml section its cfg comes from (None: no settings)
    images: str = ""  # default image root under --input ("" = --input itself)
    in_make: bool = True  # converted by `make tasks` (listed by `tasks --list`)


def _vqa() -> Dataset:
    return Dataset("vqa", "convert", None)


DATASETS: dict[str, Dataset] = {
    "refcoco": Dataset("refcoco", "convert", "refcoco", "images"),
    "refcoco+": Dataset("refcoco", "convert", "refcoco", "images"),
    "refcocog": Dataset("refcoco", "convert", "refcoco", "images"),
    "vg": Dataset("vg", "convert", None),
    "vg-regions": Dataset("vg", "convert", None, in_make=False),
    "vg-qa": Dataset("vg", "convert", None, in_make=False),
    "grit": Dataset("grit", "convert", "grit"),
    "vqav2": _vqa(),
    "gqa": _vqa(),
    "textvqa": _vqa(),
    "docvqa": _vqa(),
    "chartqa": _vqa(),
    "ocrvqa": _vqa(),
    "dvqa": _vqa(),
    "ai2d": _vqa(),
    "coco": Dataset("captions", "convert_coco", None),
    "pairs": Dataset("captions", "convert_pairs", None, in_make=False),
    "text": Dataset("text", "convert", "text"),
}


def make_datasets() -> list[str]:
    """The datasets `make tasks` converts, in registry order."""
    return [name for name, d in DATASETS.items() if d.in_make]


def converter(name: str):
    d = DATASETS[name]
    return getattr(importlib.import_module(f"qwenvl_data.tasks.{d.module}"), d.function)


def dataset_config(name: str, cfg: dict) -> dict:
    """The settings one dataset's converter reads: the shared image limits + its own section."""
    d = DATASETS[name]
    own = (cfg.get(d.section) or {}) if d.section else {}
    return {"max_pixels": cfg.get("max_pixels", 40_000_000), **own}
