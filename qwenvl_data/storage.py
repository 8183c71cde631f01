"""One place where stages touch files: local paths and any fsspec URL (s3://, gs://, memory://...).

Why: on Dataflow, a Ray cluster in the cloud or Spark, workers share object storage, not a mount, so
every input, output, resume marker, reject file, funnel, index and checkpoint goes through here.

- `atomic_write(url)` / `write_bytes` / `write_text` / `write_json`: a reader never sees half a file.
  Locally: a `.tmp-*` file in the same folder, then `os.replace`. On an object store a PUT is already
  all-or-nothing (an object appears only when its upload completes), so the object is written directly;
  multi-file results (a shard: tar, parquet, then its stats json) write their marker file last.
- `open`, `read_bytes`, `read_text`, `read_json`, `exists`, `isdir`, `glob`, `listdir`, `makedirs`,
  `remove`, `join`, `is_remote`, `local_path`: the rest of what stages need, URLs in and URLs out.
- `local_input(url)` / `staged_output(url)`: staging for stages that work on local folders (tasks,
  decontaminate, shards, export, the trainer's --data): a remote input is downloaded to a temp folder,
  a remote output is built in one and uploaded when the run succeeds (qwenvl_data/staging.py).
Credentials and endpoints come from the usual places (environment, ~/.aws, fsspec config), e.g.
`AWS_ENDPOINT_URL` / `FSSPEC_S3_ENDPOINT_URL` for an S3-compatible server.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec


def is_remote(url: str | os.PathLike) -> bool:
    s = str(url)
    return "://" in s and not s.startswith("file://")


def local_path(url: str | os.PathLike) -> str:
    return str(url).removeprefix("file://")


def fs_of(url: str | os.PathLike):
    """(filesystem, path inside it)."""
    return fsspec.core.url_to_fs(str(url))


def join(base: str | os.PathLike, *parts: str) -> str:
    s = str(base)
    if not is_remote(s):
        return str(Path(local_path(s), *parts))
    return "/".join([s.rstrip("/"), *(p.strip("/") for p in parts)])


def name(url: str | os.PathLike) -> str:
    return str(url).rstrip("/").rsplit("/", 1)[-1]


def parent(url: str | os.PathLike) -> str:
    s = str(url).rstrip("/")
    return s.rsplit("/", 1)[0] if is_remote(s) else str(Path(local_path(s)).parent)


def _url(fs, path: str, like: str) -> str:
    return fs.unstrip_protocol(path) if is_remote(like) else path


def exists(url) -> bool:
    fs, path = fs_of(url)
    return fs.exists(path)


def isdir(url) -> bool:
    fs, path = fs_of(url)
    return fs.isdir(path)


def glob(pattern) -> list[str]:
    """Sorted matches, as URLs of the pattern's kind (plain paths for local patterns)."""
    fs, path = fs_of(pattern)
    return sorted(_url(fs, p, str(pattern)) for p in fs.glob(path))


def listdir(url) -> list[str]:
    """Sorted names (not paths) directly under a folder; [] when it does not exist."""
    fs, path = fs_of(url)
    if not fs.exists(path):
        return []
    return sorted(name(p) for p in fs.ls(path, detail=False))


def makedirs(url) -> None:
    """A local folder is created; object stores have no folders (a no-op there)."""
    if not is_remote(url):
        os.makedirs(local_path(url), exist_ok=True)


def remove(url) -> None:
    fs, path = fs_of(url)
    if fs.exists(path):
        fs.rm(path, recursive=fs.isdir(path))


def open(url, mode: str = "rb", **kwargs):  # noqa: A001 - the storage module's open
    return fsspec.open(str(url), mode, **kwargs).open()


def read_bytes(url) -> bytes:
    fs, path = fs_of(url)
    return fs.cat_file(path)


def read_text(url) -> str:
    return read_bytes(url).decode("utf-8")


def read_json(url) -> Any:
    return json.loads(read_bytes(url))


@contextlib.contextmanager
def atomic_write(url, mode: str = "wb") -> Iterator[Any]:
    """Open `url` for writing; it appears under its name only once the block ends without error."""
    if is_remote(url):
        fs, path = fs_of(url)
        f = fs.open(path, mode, encoding=None if "b" in mode else "utf-8")
        try:
            yield f
        except BaseException:
            if hasattr(f, "discard"):  # an unfinished upload is never committed
                f.discard()
                f.closed = True
            raise
        f.close()
        return
    final = Path(local_path(url))
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{final.name}")
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(url, data: bytes) -> None:
    with atomic_write(url, "wb") as f:
        f.write(data)


def write_text(url, text: str) -> None:
    write_bytes(url, text.encode("utf-8"))


def write_json(url, obj: Any, **dumps_kwargs) -> None:
    dumps_kwargs.setdefault("ensure_ascii", False)
    write_text(url, json.dumps(obj, **dumps_kwargs))


def put_file(local: str | os.PathLike, url) -> None:
    """Copy a finished local file to `url` (atomically, as above)."""
    if not is_remote(url):
        final = Path(local_path(url))
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{final.name}")
        try:
            shutil.copyfile(local, tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return
    fs, path = fs_of(url)
    fs.put_file(str(local), path)


def clean_stale_temps(folder) -> None:
    """Remove the `.tmp-*` files a killed local run left in `folder` (object stores never have any)."""
    if not is_remote(folder):
        for p in Path(local_path(folder)).glob(".tmp-*"):
            p.unlink(missing_ok=True)


def write_parquet(table, url, **kwargs) -> None:
    import pyarrow.parquet as pq

    with atomic_write(url, "wb") as f:
        pq.write_table(table, f, **kwargs)


def read_parquet(url, **kwargs):
    import pyarrow.parquet as pq

    with open(url, "rb") as f:
        return pq.read_table(f, **kwargs)


@contextlib.contextmanager
def local_copy(url) -> Iterator[str]:
    """A local path holding `url`'s bytes: the path itself when local, else a temp download removed after."""
    if not is_remote(url):
        yield local_path(url)
        return
    import tempfile

    fs, path = fs_of(url)
    with tempfile.TemporaryDirectory(prefix="qwenvl-get-") as tmp:
        dest = os.path.join(tmp, name(url))
        fs.get_file(path, dest)
        yield dest


_NOT_STAGED = (".qwenvl.", ".tmp-")  # a run's lock / in-progress marker and unfinished temporaries never travel


def _staged(rel: str) -> bool:
    return not any(part.startswith(_NOT_STAGED) for part in rel.split("/"))


@contextlib.contextmanager
def local_input(url) -> Iterator[Any]:
    """A local path holding the file or folder `url` (None stays None): the path itself when local, else a
    recursive download to `TEMP/<name>` (the name kept: stages read it), removed after the block."""
    if url is None or not is_remote(url):
        yield None if url is None else local_path(url)
        return
    import tempfile

    from .errors import UsageError

    fs, path = fs_of(url)
    path = path.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="qwenvl-in-") as tmp:
        dest = os.path.join(tmp, name(url))
        if fs.isdir(path):
            rel = [f[len(path) + 1 :] for f in sorted(fs.find(path)) if f.startswith(path + "/")]
            rel = [r for r in rel if _staged(r)]
            for r in rel:
                os.makedirs(os.path.dirname(os.path.join(dest, r)), exist_ok=True)
            os.makedirs(dest, exist_ok=True)
            if rel:
                fs.get([f"{path}/{r}" for r in rel], [os.path.join(dest, r) for r in rel])
        elif fs.exists(path):
            fs.get_file(path, dest)
        else:
            raise UsageError(f"{url}: no such file or folder")
        yield dest


def _upload_order(rel: str) -> tuple:
    """Data first; then the .json files that mark a finished shard; then the folder's own summaries
    (stats, wids-index.json, reports); index.json very last: a reader that sees it sees everything."""
    is_json = rel.endswith(".json")
    return (is_json, is_json and "/" not in rel, rel == "index.json", rel)


@contextlib.contextmanager
def staged_output(url) -> Iterator[Any]:
    """A local folder to write `url`'s contents into: the path itself when local, else a temp folder
    whose files are uploaded under `url` when the block ends without error (data files first, then
    every .json marker one by one in sorted order, index.json last; see _upload_order). Nothing is
    uploaded after an error, and nothing already under `url` is removed (a rerun overwrites by name)."""
    if url is None or not is_remote(url):
        yield None if url is None else local_path(url)
        return
    import tempfile

    fs, path = fs_of(url)
    path = path.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="qwenvl-out-") as tmp:
        yield tmp
        root = Path(tmp)
        rel = sorted((p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()), key=_upload_order)
        rel = [r for r in rel if _staged(r)]
        data = [r for r in rel if not r.endswith(".json")]
        if data:  # in bulk (concurrently): none of them marks anything finished
            fs.put([str(root / r) for r in data], [f"{path}/{r}" for r in data])
        for r in rel[len(data) :]:
            fs.put_file(str(root / r), f"{path}/{r}")
