"""`qwenvl-data validate PATH...`: check parquet files and webdataset shards against schemas/.

- `.tar`: every sample's `.json` against the schema it names in its "schema" key (default "sample").
- `.parquet`: every row against the schema named in the file's metadata key `qwenvl.schema`
  (default "pair"); a shard's sidecar parquet (a `.tar` of the same name beside it) is skipped.
- a directory: every `.tar` and `.parquet` under it.
Exit 1 naming the first bad file/row/sample and field; 0 when everything conforms.
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.outdir import refuse_in_progress
from qwenvl_data.schema import first_error, load_schema
from qwenvl_data.shards import iter_tar_samples

SCHEMA_KEY = b"qwenvl.schema"


def add_arguments(p):
    p.add_argument("paths", nargs="+", metavar="PATH", help="parquet files, tar shards or directories")
    p.add_argument("--schema", help="force this schema (name under schemas/, e.g. pair)")


def _expand(paths):
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            yield from sorted(q for q in p.rglob("*") if q.suffix in (".tar", ".parquet")
                              and not q.name.startswith(".tmp-"))
        elif p.exists():
            yield p
        else:
            raise UsageError(f"{raw}: no such file or directory")


def _schema_name(name: str | None, default: str) -> str:
    name = name or default
    try:
        load_schema(name)
    except KeyError:
        raise BadInput(f"unknown schema '{name}' (no schemas/{name}.schema.json)") from None
    return name


def validate_parquet(path: Path, force: str | None = None) -> int:
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise BadInput(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from None
    meta = pf.schema_arrow.metadata or {}
    name = _schema_name(force or (meta.get(SCHEMA_KEY) or b"").decode() or None, "pair")
    row_no = 0
    for batch in pf.iter_batches(batch_size=8192):
        for row in batch.to_pylist():
            err = first_error(name, row)
            if err:
                raise BadInput(f"{path}: row {row_no} (uid={row.get('uid')!r}) does not match "
                               f"schema '{name}': {err}")
            row_no += 1
    return row_no


def validate_tar(path: Path, force: str | None = None) -> int:
    n = 0
    try:
        for key, files in iter_tar_samples(path):
            if "json" not in files:
                raise BadInput(f"{path}: sample '{key}' has no .json member")
            try:
                sample = json.loads(files["json"])
            except (ValueError, RecursionError) as e:  # RecursionError: nested deeper than the parser goes
                raise BadInput(f"{path}: sample '{key}': .json is not valid JSON ({type(e).__name__}: "
                               f"{str(e)[:120]})") from None
            if not isinstance(sample, dict):
                raise BadInput(f"{path}: sample '{key}': .json is not an object")
            name = _schema_name(force or sample.get("schema"), "sample")
            err = first_error(name, sample)
            if err:
                raise BadInput(f"{path}: sample '{key}' does not match schema '{name}': {err}")
            n += 1
    except (OSError, EOFError) as e:
        raise BadInput(f"{path}: not a readable tar file ({e})") from None
    except Exception as e:  # tarfile.ReadError and friends
        if isinstance(e, BadInput):
            raise
        raise BadInput(f"{path}: not a readable tar file ({type(e).__name__}: {e})") from None
    return n


def run(args) -> int:
    total = 0
    for raw in args.paths:  # a folder a run has not finished (killed, failed, or still running)
        refuse_in_progress(raw)
    files = list(_expand(args.paths))
    for path in files:
        if path.suffix == ".tar":
            total += validate_tar(path, args.schema)
        elif path.suffix == ".parquet":
            if path.with_suffix(".tar").exists() and not args.schema:
                continue  # a shard's sidecar index
            total += validate_parquet(path, args.schema)
        else:
            raise UsageError(f"{path}: cannot validate a '{path.suffix}' file (expected .parquet or .tar)")
    print(f"ok: {total} records in {len(files)} files conform")
    return 0
