"""Dataset converters into Qwen-VL task samples (docs/CONTRACTS.md, schema "task").

`CONVERTERS[name] = (module, function)`: each function is `convert(input_dir, dataset, images_dir, cfg)`
yielding `common.Sample | common.Reject`; modules load only when their dataset is converted.
"""
from __future__ import annotations

import importlib

CONVERTERS = {
    "refcoco": ("refcoco", "convert"), "refcoco+": ("refcoco", "convert"), "refcocog": ("refcoco", "convert"),
    "vg": ("vg", "convert"), "vg-regions": ("vg", "convert"), "vg-qa": ("vg", "convert"),
    "grit": ("grit", "convert"),
    "vqav2": ("vqa", "convert"), "gqa": ("vqa", "convert"), "textvqa": ("vqa", "convert"),
    "docvqa": ("vqa", "convert"), "chartqa": ("vqa", "convert"), "ocrvqa": ("vqa", "convert"),
    "dvqa": ("vqa", "convert"), "ai2d": ("vqa", "convert"),
    "coco": ("captions", "convert_coco"), "pairs": ("captions", "convert_pairs"),
    "text": ("text", "convert"),
}


def converter(name: str):
    module, func = CONVERTERS[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), func)
