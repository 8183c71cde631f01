"""Local engine: a process pool over this machine's cores.

Map tasks write their URL candidates into hash-partitioned spill files (`_work/spill/pNNNNN/`); reduce
tasks each read one partition's folder. No process ever holds every URL.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pyarrow.parquet as pq
from tqdm import tqdm


def _map_and_spill(job, chunk) -> int:
    for part, table in job.map_chunk(chunk).items():
        path = job.work / "spill" / f"p{part:05d}" / f"c{chunk.index:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    return chunk.num_rows


def _reduce(job, part: int) -> int:
    folder = job.work / "spill" / f"p{part:05d}"
    tables = [pq.read_table(p) for p in sorted(folder.glob("c*.parquet"))]
    return job.reduce_partition(part, tables)


def run(job, chunks, options) -> None:
    workers = options.workers or os.cpu_count() or 1
    total = sum(c.num_rows for c in chunks)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        bar = tqdm(total=total, unit="rows", unit_scale=True, desc="filter", disable=not options.progress,
                   mininterval=1.0)
        futures = [pool.submit(_map_and_spill, job, c) for c in chunks]
        for f in as_completed(futures):
            bar.update(f.result())
        bar.close()
        spill = Path(job.work) / "spill"
        parts = sorted(int(p.name[1:]) for p in spill.glob("p*")) if spill.exists() else []
        for f in as_completed([pool.submit(_reduce, job, p) for p in parts]):
            f.result()
