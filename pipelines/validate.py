"""`qwenvl-data validate PATH...`: check parquet files and webdataset shards against schemas/.

- `.tar`: every sample's `.json` against the schema it names in its "schema" key (default "sample"),
  and the members it names present; a tar cut short (inside a header or at a member boundary) or
  holding fewer samples than its stats sidecar records fails, naming the file and the last sample.
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
from qwenvl_data.vocab import is_image_ext

SCHEMA_KEY = b"qwenvl.schema"


def add_arguments(p):
    p.add_argument("paths", nargs="+", metavar="PATH", help="parquet files, tar shards or directories")
    p.add_argument("--schema", help="force this schema (name under schemas/, e.g. pair)")
    p.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="go on past a bad file and list every one (the run still exits 1 if any is bad)",
    )


def _expand(paths):
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            yield from sorted(
                q for q in p.rglob("*") if q.suffix in (".tar", ".parquet") and not q.name.startswith(".tmp-")
            )
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
                raise BadInput(f"{path}: row {row_no} (uid={row.get('uid')!r}) does not match schema '{name}': {err}")
            row_no += 1
    return row_no


def missing_member(sample: dict, members) -> str | None:
    """The member a sample's json promises and its tar lacks: a train sample's `images`, the image of a
    pair sample (`image_format`) or of a task/OCR sample with a picture (width set), else None."""
    images = [m for m in members if m != "json" and is_image_ext(m)]
    if sample.get("schema") == "train":
        listed = sample.get("images") if isinstance(sample.get("images"), list) else []
        return next((m for m in listed if m not in members), None)
    if sample.get("schema") == "sample" and not images:
        return str(sample.get("image_format") or "jpg")
    if sample.get("schema") in ("task", "ocr") and sample.get("task") != "text" and not images:
        return "an image (jpg or png)"
    return None


def validate_tar(path: Path, force: str | None = None) -> int:
    """Samples in a tar that conform; the first problem (truncation, sidecar count, missing member,
    schema) is a BadInput naming the file and the sample."""
    n = 0
    for key, files in iter_tar_samples(path):  # refuses a truncated tar or one short of its sidecar count
        if "json" not in files:
            raise BadInput(f"{path}: sample '{key}' has no .json member")
        try:
            sample = json.loads(files["json"])
        except (ValueError, RecursionError) as e:  # RecursionError: nested deeper than the parser goes
            raise BadInput(
                f"{path}: sample '{key}': .json is not valid JSON ({type(e).__name__}: {str(e)[:120]})"
            ) from None
        if not isinstance(sample, dict):
            raise BadInput(f"{path}: sample '{key}': .json is not an object")
        name = _schema_name(force or sample.get("schema"), "sample")
        err = first_error(name, sample)
        if err:
            raise BadInput(f"{path}: sample '{key}' does not match schema '{name}': {err}")
        lost = missing_member(sample, files)
        if lost:
            raise BadInput(f"{path}: sample '{key}': member '{lost}' named by its json is missing")
        n += 1
    return n


def run(args) -> int:
    total = 0
    for raw in args.paths:  # a folder a run has not finished (killed, failed, or still running)
        refuse_in_progress(raw)
    files = list(_expand(args.paths))
    bad = []
    for path in files:
        if path.suffix not in (".tar", ".parquet"):
            raise UsageError(f"{path}: cannot validate a '{path.suffix}' file (expected .parquet or .tar)")
        if path.suffix == ".parquet" and path.with_suffix(".tar").exists() and not args.schema:
            continue  # a shard's sidecar index
        try:
            total += validate_tar(path, args.schema) if path.suffix == ".tar" else validate_parquet(path, args.schema)
        except BadInput as e:
            if not args.skip_bad_files:
                raise
            bad.append(str(e))
            print(f"bad: {e}")
    if bad:  # every file was checked; a bad one still fails the run
        raise BadInput(
            f"{len(bad)} of {len(files)} files are bad (listed above); {total} records in the others conform"
        )
    print(f"ok: {total} records in {len(files)} files conform")
    return 0
