"""Engines run a FilterJob's two steps over a plan of chunks; one signature each:

    run(job: FilterJob, chunks: list[Chunk], options: EngineOptions) -> None

`local` (process pool + hash-partitioned spill files), `beam` (GroupByKey shuffle; FnApiRunner here,
any runner by pipeline options), `ray` (Ray Data groupby shuffle; local Ray or --ray-address).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

ENGINES = ("local", "beam", "ray")


@dataclass
class EngineOptions:
    workers: int = 0  # 0: one per core
    ray_address: str | None = None
    beam_args: list = field(default_factory=list)
    progress: bool = True


def get_engine(name: str):
    if name not in ENGINES:
        raise ValueError(name)
    return importlib.import_module(f"qwenvl_data.pipelines.engines.{name}_engine")
