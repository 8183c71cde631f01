"""Ray engine: Ray Data over the chunk plan; the URL dedup is a Ray Data groupby (a real shuffle).

Starts a local Ray on demand (sized by --workers) or joins a cluster with --ray-address.
"""

from __future__ import annotations

import os

import pyarrow as pa


class _MapChunks:
    def __init__(self, job):
        self.job = job

    def __call__(self, batch: pa.Table) -> pa.Table:
        from qwenvl_data.pipelines.filter_job import Chunk

        out = []
        for spec in batch.to_pylist():
            spec["columns"] = tuple(tuple(c) for c in spec["columns"])
            for part, table in self.job.map_chunk(Chunk(**spec)).items():
                out.append(table.append_column("part", pa.array([part] * table.num_rows, pa.int32())))
        if not out:
            from qwenvl_data.pipelines.filter_job import CANDIDATE_SCHEMA

            schema = pa.schema(list(CANDIDATE_SCHEMA) + [pa.field("part", pa.int32())])
            return schema.empty_table()
        return pa.concat_tables(out)


class _ReducePartition:
    def __init__(self, job):
        self.job = job

    def __call__(self, group: pa.Table) -> pa.Table:
        if group.num_rows == 0 or "uid" not in group.column_names:
            return pa.table({"part": pa.array([], pa.int32()), "kept": pa.array([], pa.int64())})
        part = int(group["part"][0].as_py())
        kept = self.job.reduce_partition(part, [group.drop_columns(["part"])])
        return pa.table({"part": [part], "kept": [kept]})


def run(job, chunks, options) -> None:
    from dataclasses import asdict

    import ray

    from qwenvl_data.pipelines.engines.ray_setup import start_ray, stop_ray

    started = start_ray(options.ray_address, options.workers or os.cpu_count(), 512 * 1024**2, options.progress)
    try:
        specs = [asdict(c) for c in chunks]
        ds = ray.data.from_items(specs, override_num_blocks=max(1, len(specs)))
        cands = ds.map_batches(
            _MapChunks,
            fn_constructor_args=(job,),
            batch_size=1,
            batch_format="pyarrow",
            concurrency=options.workers or os.cpu_count(),
        )
        # One hash partition of the shuffle per URL partition: Ray's default (200) would mean 200 tiny
        # shuffle tasks for a handful of groups. One reduce actor: a second one would wait for CPUs
        # that the map actors hold, and on a small node the pipeline would never finish.
        result = cands.groupby("part", num_partitions=job.num_partitions).map_groups(
            _ReducePartition, fn_constructor_args=(job,), batch_format="pyarrow", concurrency=1
        )
        result.materialize()
    finally:
        stop_ray(started)
