"""`qwenvl-data tasks --dataset NAME --input DIR --output DIR`: one dataset -> task-sample shards.

    qwenvl-data tasks --dataset refcoco --input data/refcoco --images data/coco --output out/tasks/refcoco
    qwenvl-data tasks --list          # the datasets `make tasks` converts (qwenvl_data/tasks/registry.py)

Writes `OUT/{dataset}-{000000}.tar` (+ `.parquet`, `.json`), `OUT/{dataset}-stats.json` (in, out,
rejected by reason, samples by task and language) and `OUT/{dataset}-rejects.jsonl`. A rerun skips the
shards a previous run finished. The job fails if in != out + rejected. --input, --images and --output
may be `s3://` (any fsspec URL): staged through a local temp folder (qwenvl_data/staging.py; a rerun
into a remote output rebuilds it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from qwenvl_data.config import load_section
from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.outdir import own_output
from qwenvl_data.shards import clean_stale_temps
from qwenvl_data.shards.loaders import write_loader_index
from qwenvl_data.staging import staged_args
from qwenvl_data.tasks.registry import DATASETS, converter, dataset_config, make_datasets
from qwenvl_data.tasks.sink import TaskSink


def add_arguments(p):
    p.add_argument("--dataset", choices=list(DATASETS), help="dataset to convert")
    p.add_argument("--list", action="store_true", help="print the datasets `make tasks` converts and exit")
    p.add_argument("--input", help="the dataset's folder, as downloaded")
    p.add_argument("--output", help="folder for the task shards")
    p.add_argument("--images", help="image root (default: --input; RefCOCO: INPUT/images)")
    p.add_argument("--config", help="YAML with a 'tasks:' section overriding configs/tasks.yaml")
    p.add_argument("--shard-size", type=int, help="samples per shard")


def convert_dataset(
    dataset: str, input_dir, output_dir, images_dir=None, cfg: dict | None = None, shard_size: int | None = None
) -> dict:
    """Convert one dataset; returns the stats written to {dataset}-stats.json."""
    if dataset not in DATASETS:
        raise UsageError(f"unknown dataset {dataset!r} (known: {', '.join(DATASETS)})")
    cfg = cfg if cfg is not None else load_section("tasks")
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise UsageError(f"{input_dir}: no such folder (--input)")
    if images_dir is None:
        images_dir = input_dir / DATASETS[dataset].images if DATASETS[dataset].images else input_dir
    size = shard_size or cfg.get("shard_size") or 1000
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise UsageError(f"shard size must be an integer >= 1, got {size!r}")
    clean_stale_temps(output_dir) if Path(output_dir).exists() else None
    sink = TaskSink(output_dir, dataset, size)
    t0 = time.time()
    try:
        sink.add_all(converter(dataset)(input_dir, dataset, Path(images_dir), dataset_config(dataset, cfg)))
    except (KeyError, TypeError, AttributeError) as e:
        sink.abort()
        raise BadInput(
            f"{dataset}: {input_dir}: unexpected record layout "
            f"({type(e).__name__}: {e}); is this the {dataset} download?"
        ) from None
    except BaseException:
        sink.abort()
        raise
    stats = sink.finish(round(time.time() - t0, 3))
    write_loader_index(output_dir)  # wids-index.json (qwenvl_data/shards/loaders.py)
    return stats


def run(args) -> int:
    if args.list:
        print("\n".join(make_datasets()))
        return 0
    missing = [f"--{k}" for k in ("dataset", "input", "output") if not getattr(args, k)]
    if missing:
        raise UsageError(f"{', '.join(missing)} required (or --list)")
    cfg = load_section("tasks", args.config)
    with (
        staged_args(args, stage="tasks", inputs=("input", "images")) as a,
        own_output(a.output, stage="tasks", inputs=[("--input", a.input), ("--images", a.images)]),
    ):
        stats = convert_dataset(args.dataset, a.input, a.output, a.images, cfg, args.shard_size)
    rej = ", ".join(f"{k} {v}" for k, v in sorted(stats["rejected"].items())) or "none"
    tasks = json.dumps(stats["by_task"], sort_keys=True)
    print(f"{args.dataset}: {stats['in']} in, {stats['out']} samples {tasks}, rejected: {rej}")
    return 0
