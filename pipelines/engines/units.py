"""Map a function over independent work units (shards), with resume and progress, on any engine.

    results = map_units(write_shard, jobs, engine="local"|"ray", workers=4, ray_address=None,
                        done=lambda job: shard_done(...), desc="synth-ocr")

- Resume: units for which `done(unit)` is true are skipped (their result is None in the returned
  list); a unit writes its own marker last (e.g. a shard's stats json), so a killed run redoes only
  unfinished units.
- `local`: in this process when workers <= 1 (or one unit), else a process pool of `workers`.
  `ray`: one Ray task per unit on a local Ray or the cluster at `ray_address`
  (pipelines/engines/ray_setup.py). Same function, same units: identical outputs on both engines.
- Progress: a tqdm bar of units (stderr, at most one refresh a second) on every engine.
`fn` and the units must be picklable (module-level function, plain dataclasses).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tqdm import tqdm

from qwenvl_data.pipelines.engines.ray_setup import one_line_errors, ray_session

ENGINES = ("local", "ray")


def map_units(
    fn: Callable[[Any], Any],
    units: Sequence,
    engine: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    done: Callable[[Any], bool] | None = None,
    desc: str = "units",
    progress: bool = True,
    object_store_memory: float | None = 2e8,
) -> list:
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: one of {ENGINES}")
    results: list = [None] * len(units)
    todo = [i for i, u in enumerate(units) if not (done and done(u))]
    workers = int(workers or os.cpu_count() or 1)
    bar = tqdm(total=len(todo), unit="unit", desc=desc, disable=not progress or not todo, mininterval=1.0)
    try:
        if engine == "ray":
            _ray(fn, units, todo, results, workers, ray_address, object_store_memory, bar)
        elif workers <= 1 or len(todo) <= 1:
            for i in todo:
                results[i] = fn(units[i])
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
                futures = {pool.submit(fn, units[i]): i for i in todo}
                for f in as_completed(futures):
                    results[futures[f]] = f.result()
                    bar.update()
    finally:
        bar.close()
    return results


def _ray(fn, units, todo, results, workers, address, object_store_memory, bar):
    with ray_session(address, workers, object_store_memory) as ray, one_line_errors():
        task = ray.remote(num_cpus=1)(fn)
        pending = {task.remote(units[i]): i for i in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                results[pending.pop(ref)] = ray.get(ref)
                bar.update()
