"""Local engine: a process pool over this machine's cores.

Map tasks write their URL candidates into hash-partitioned Arrow IPC spill files (`_work/spill/pNNNNN/`);
reduce tasks each read one partition's folder. No process ever holds every URL.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from qwenvl_data import storage


def _map_and_spill(job, spill: Path, chunk) -> int:
    # Spill files live on this machine for one run: Arrow IPC, uncompressed, costs no encoding.
    for part, table in job.map_chunk(chunk).items():
        path = spill / f"p{part:05d}" / f"c{chunk.index:06d}.arrow"
        with storage.atomic_write(path) as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    return chunk.num_rows


def _reduce(job, spill: Path, part: int) -> int:
    folder = spill / f"p{part:05d}"
    tables = []
    for p in sorted(folder.glob("c*.arrow")):
        with pa.OSFile(str(p), "rb") as source:
            tables.append(pa.ipc.open_file(source).read_all())
    return job.reduce_partition(part, tables)


def run(job, chunks, options) -> None:
    workers = options.workers or os.cpu_count() or 1
    total = sum(c.num_rows for c in chunks)
    # Spill files stay on this machine: under the output when it is local, else in a temp folder.
    local_out = "://" not in job.out or job.out.startswith("file://")
    spill = (
        Path(job.work.removeprefix("file://")) / "spill"
        if local_out
        else Path(tempfile.mkdtemp(prefix="qwenvl-spill-"))
    )
    try:
        _run(job, chunks, options, workers, total, spill)
    finally:
        if not local_out:
            shutil.rmtree(spill, ignore_errors=True)


def _run(job, chunks, options, workers, total, spill: Path):
    with ProcessPoolExecutor(max_workers=workers) as pool:
        bar = tqdm(
            total=total, unit="rows", unit_scale=True, desc="filter", disable=not options.progress, mininterval=1.0
        )
        futures = [pool.submit(_map_and_spill, job, spill, c) for c in chunks]
        for f in as_completed(futures):
            bar.update(f.result())
        bar.close()
        parts = sorted(int(p.name[1:]) for p in spill.glob("p*")) if spill.exists() else []
        for f in as_completed([pool.submit(_reduce, job, spill, p) for p in parts]):
            f.result()
