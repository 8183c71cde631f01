"""Atomic, resumable webdataset shards: `{prefix}-{000000}.tar` + `.parquet` + `.json`.

- Members are written in insertion order with fixed metadata (mtime 0, uid/gid 0, mode 0644), so the
  same samples give byte-identical tars.
- Every sample of a shard has the same member set (docs/CONTRACTS.md "One member set per shard
  family"): `add` refuses a sample whose members differ from the shard's first, so loaders that
  infer columns from the first samples (HF datasets, Ray Data, MDS) read the shard whole.
  `family(files)` names the member signature; writers that mix signatures roll one shard series per family.
- Resume checks what it resumes: the stats json records `fingerprint`, the sha256 of the tar (so of
  every sample's members as built from this run's inputs and settings). A rerun writes each shard
  again to a temporary name; `close` keeps a finished shard whose fingerprint matches (`reused`) and
  replaces one that differs, so a shard never describes other inputs than those of the last run.
- Everything is written under a temporary name and renamed when complete; the stats `.json` is
  renamed last and marks the shard as finished, so a rerun skips finished shards (`shard_done`) and a
  kill never leaves half a shard under its final name.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .. import storage
from ..vocab import IMAGE_EXTS, is_image_ext


def shard_name(prefix: str, shard_id: int) -> str:
    return f"{prefix}-{shard_id:06d}" if prefix else f"{shard_id:06d}"


def shard_done(out_dir: str | Path, shard_id: int, prefix: str = "shard") -> bool:
    base = storage.join(out_dir, shard_name(prefix, shard_id))
    return storage.exists(base + ".json") and storage.exists(base + ".tar")


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def check_key(key: str) -> str:
    # webdataset splits a member name at the first dot of its basename: keys must not hold dots.
    if not key or "." in key.rsplit("/", 1)[-1] or key.startswith("/") or ".." in key:
        raise ValueError(f"invalid sample key {key!r}: must be non-empty, relative, without dots")
    return key


def family(files) -> str:
    """The member signature of a sample as a shard-name part: its image extensions in member order
    (`jpg`, `png`, `jpg-png`, ...) or `text` when it holds no image."""
    exts = [name.rsplit(".", 1)[-1].lower() for name in files if name != "json" and is_image_ext(name)]
    return "-".join(exts) or "text"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def recorded_fingerprint(out_dir: str | Path, name: str) -> str | None:
    """The fingerprint a finished shard's stats json records (None: not finished, or from an older writer)."""
    try:
        return json.loads((Path(out_dir) / f"{name}.json").read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


class ShardWriter:
    """Write one shard. Use as a context manager; `abort()` (or an exception) removes temp files."""

    def __init__(
        self, out_dir: str | Path, shard_id: int, prefix: str = "shard", parquet_schema: pa.Schema | None = None
    ):
        # An object-store output (any fsspec URL) is staged in a local temp folder and uploaded on close.
        self.remote = storage.is_remote(out_dir)
        self.out_dir: str | Path = str(out_dir) if self.remote else Path(out_dir)
        stage = Path(tempfile.mkdtemp(prefix="qwenvl-shard-")) if self.remote else Path(out_dir)
        stage.mkdir(parents=True, exist_ok=True)
        self.name = shard_name(prefix, shard_id)
        self.final: dict[str, Any] = {
            ext: storage.join(out_dir, f"{self.name}{ext}") if self.remote else Path(out_dir) / f"{self.name}{ext}"
            for ext in (".tar", ".parquet", ".json")
        }
        self.tmp = {ext: stage / f".tmp-{os.getpid()}-{self.name}{ext}" for ext in self.final}
        self._tar = tarfile.open(self.tmp[".tar"], "w", format=tarfile.USTAR_FORMAT)
        self._rows: list[dict] = []
        self._schema = parquet_schema
        self._keys: set[str] = set()
        self.members: tuple[str, ...] | None = None
        self.count = 0
        self.fingerprint: str | None = None
        self.reused = False  # close() found a finished shard with the same fingerprint and kept it

    def add(self, key: str, files: Mapping[str, bytes | str | dict], row: Mapping[str, Any] | None = None):
        """Add one sample: files maps extension ('jpg', 'json', 'txt') to bytes, str or a json dict."""
        check_key(key)
        if key in self._keys:
            raise ValueError(f"duplicate sample key {key!r} in shard {self.name}")
        names = tuple(sorted(files))
        if self.members is None:
            self.members = names
        elif names != self.members:
            raise ValueError(
                f"sample {key!r} has members {list(names)}, shard {self.name} holds "
                f"{list(self.members)}: one member set per shard (write it to its own family)"
            )
        self._keys.add(key)
        for ext, payload in files.items():
            if isinstance(payload, dict):
                payload = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
            elif isinstance(payload, str):
                payload = payload.encode("utf-8")
            self._tar.addfile(_tarinfo(f"{key}.{ext}", len(payload)), io.BytesIO(payload))
        self._rows.append(dict(row) if row is not None else {"key": key})
        self.count += 1

    def close(self, stats: Mapping[str, Any] | None = None) -> Any:  # the .tar: a Path, or a URL on a store
        self._tar.close()
        table = (
            pa.Table.from_pylist(self._rows, schema=self._schema)
            if self._rows or self._schema
            else pa.table({"key": pa.array([], pa.string())})
        )
        pq.write_table(table, self.tmp[".parquet"])
        stats = dict(stats or {})
        stats.setdefault("shard", self.name)
        stats.setdefault("count", self.count)
        stats["fingerprint"] = self.fingerprint = _sha256(self.tmp[".tar"])
        if not self.remote and self._same_as_finished():
            self.reused = True  # a finished shard with these exact samples: kept as it is (resume)
            self.abort()
            return self.final[".tar"]
        self.tmp[".json"].write_text(json.dumps(stats, ensure_ascii=False, sort_keys=True, indent=1))
        for ext in (".tar", ".parquet", ".json"):  # the stats json last: it marks the shard done
            if self.remote:  # an object appears whole when its upload completes
                storage.put_file(self.tmp[ext], self.final[ext])
                self.tmp[ext].unlink()
            else:
                os.replace(self.tmp[ext], self.final[ext])
        if self.remote:
            shutil.rmtree(self.tmp[".tar"].parent, ignore_errors=True)
        return self.final[".tar"]

    def _same_as_finished(self) -> bool:
        tar, side = self.final[".tar"], self.final[".parquet"]
        return (
            isinstance(tar, Path)
            and isinstance(side, Path)
            and tar.exists()
            and side.exists()
            and recorded_fingerprint(self.out_dir, self.name) == self.fingerprint
        )

    def abort(self):
        try:
            self._tar.close()
        except Exception:
            pass
        for p in self.tmp.values():
            p.unlink(missing_ok=True)
        if self.remote:
            shutil.rmtree(self.tmp[".tar"].parent, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


def remove_stale_series(out_dir: str | Path, prefix: str, written: set[str]) -> list[str]:
    """Delete the finished shards of series `{prefix}-NNNNNN` / `{prefix}-{family}-NNNNNN` that this run did
    not write (an earlier run with more inputs made them): the folder then holds exactly this run's shards.
    A family is image extensions or `text`, so `vg` never touches `vg-regions-000000`. Returns the names."""
    fam = "(?:" + "|".join(map(re.escape, (*IMAGE_EXTS, "text"))) + ")"
    pattern = re.compile(rf"{re.escape(prefix)}(?:-{fam}(?:-{fam})*)?-\d{{6}}")
    stale = sorted(
        p.stem for p in Path(out_dir).glob(f"{prefix}-*.tar") if pattern.fullmatch(p.stem) and p.stem not in written
    )
    for name in stale:
        for ext in (".json", ".parquet", ".tar"):  # the stats json first: the shard stops being "done"
            (Path(out_dir) / f"{name}{ext}").unlink(missing_ok=True)
    return stale


def write_sorted_tar(src: str | Path, dst: str | Path) -> int:
    """Copy the tar `src` to `dst` with its samples sorted by key and the metadata ShardWriter uses
    (mtime 0, mode 0644, uid/gid 0, no owner names), so the same samples give the same bytes whatever
    order and clock they were written with (the download writer's tars). Returns the sample count."""
    from .reader import group, members

    samples = sorted(group(members(src)), key=lambda s: s[0])
    with open(src, "rb") as f, tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, found in samples:
            for ext in sorted(found):
                offset, size = found[ext]
                f.seek(offset)
                tar.addfile(_tarinfo(f"{key}.{ext}", size), io.BytesIO(f.read(size)))
    return len(samples)


def clean_stale_temps(out_dir: str | Path):
    """Remove temp files a killed run left behind (never a finished shard)."""
    storage.clean_stale_temps(out_dir)
