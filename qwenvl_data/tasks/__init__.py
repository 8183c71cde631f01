"""Dataset converters into Qwen-VL task samples (docs/CONTRACTS.md, schema "task").

The datasets, their converters and config sections are listed once, in `registry.DATASETS`; each
converter is `convert(input_dir, dataset, images_dir, cfg)` yielding `common.Sample | common.Reject`;
modules load only when their dataset is converted.
"""

from __future__ import annotations

from .registry import DATASETS, converter

__all__ = ["DATASETS", "converter"]
