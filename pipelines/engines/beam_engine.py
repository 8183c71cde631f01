"""Beam engine: chunks → rules (FlatMap of Arrow tables keyed by URL partition) → GroupByKey → dedup.

Runs on the FnApiRunner here (DirectRunner first tries Prism, which downloads a binary); pass any other
runner's options after `--` (e.g. `-- --runner=DataflowRunner --project=... --temp_location=gs://...`).
"""

from __future__ import annotations

import os


def _emit(chunk, job):
    yield from job.map_chunk(chunk).items()


def _reduce(kv, job):
    part, tables = kv
    return job.reduce_partition(part, list(tables))


def pipeline_options(beam_args: list[str], workers: int):
    from apache_beam.options.pipeline_options import PipelineOptions

    args = list(beam_args)
    if not any(a.startswith("--runner") for a in args):
        args += ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    return PipelineOptions(args)


def run(job, chunks, options) -> None:
    import apache_beam as beam

    workers = options.workers or os.cpu_count() or 1
    with beam.Pipeline(options=pipeline_options(options.beam_args, workers)) as p:
        _ = (
            p
            | "plan chunks" >> beam.Create(chunks, reshuffle=True)
            | "apply row rules" >> beam.FlatMap(_emit, job)
            | "shuffle by url hash" >> beam.GroupByKey()
            | "dedup uids and urls, write" >> beam.Map(_reduce, job)
        )
