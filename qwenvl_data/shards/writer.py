"""Atomic, resumable webdataset shards: `{prefix}-{000000}.tar` + `.parquet` + `.json`.

- Members are written in insertion order with fixed metadata (mtime 0, uid/gid 0, mode 0644), so the
  same samples give byte-identical tars.
- Everything is written under a temporary name and renamed when complete; the stats `.json` is
  renamed last and marks the shard as finished, so a rerun skips finished shards (`shard_done`) and a
  kill never leaves half a shard under its final name.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.parquet as pq


def shard_name(prefix: str, shard_id: int) -> str:
    return f"{prefix}-{shard_id:06d}" if prefix else f"{shard_id:06d}"


def shard_done(out_dir: str | Path, shard_id: int, prefix: str = "shard") -> bool:
    base = Path(out_dir) / shard_name(prefix, shard_id)
    return base.with_suffix(".json").exists() and base.with_suffix(".tar").exists()


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


class ShardWriter:
    """Write one shard. Use as a context manager; `abort()` (or an exception) removes temp files."""

    def __init__(self, out_dir: str | Path, shard_id: int, prefix: str = "shard",
                 parquet_schema: pa.Schema | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.name = shard_name(prefix, shard_id)
        self.final = {ext: self.out_dir / f"{self.name}{ext}" for ext in (".tar", ".parquet", ".json")}
        self.tmp = {ext: self.out_dir / f".tmp-{os.getpid()}-{self.name}{ext}" for ext in self.final}
        self._tar = tarfile.open(self.tmp[".tar"], "w", format=tarfile.USTAR_FORMAT)
        self._rows: list[dict] = []
        self._schema = parquet_schema
        self._keys: set[str] = set()
        self.count = 0

    def add(self, key: str, files: Mapping[str, bytes | str | dict], row: Mapping[str, Any] | None = None):
        """Add one sample: files maps extension ('jpg', 'json', 'txt') to bytes, str or a json dict."""
        check_key(key)
        if key in self._keys:
            raise ValueError(f"duplicate sample key {key!r} in shard {self.name}")
        self._keys.add(key)
        for ext, payload in files.items():
            if isinstance(payload, dict):
                payload = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
            elif isinstance(payload, str):
                payload = payload.encode("utf-8")
            self._tar.addfile(_tarinfo(f"{key}.{ext}", len(payload)), io.BytesIO(payload))
        self._rows.append(dict(row) if row is not None else {"key": key})
        self.count += 1

    def close(self, stats: Mapping[str, Any] | None = None) -> Path:
        self._tar.close()
        table = pa.Table.from_pylist(self._rows, schema=self._schema) if self._rows or self._schema \
            else pa.table({"key": pa.array([], pa.string())})
        pq.write_table(table, self.tmp[".parquet"])
        stats = dict(stats or {})
        stats.setdefault("shard", self.name)
        stats.setdefault("count", self.count)
        self.tmp[".json"].write_text(json.dumps(stats, ensure_ascii=False, sort_keys=True, indent=1))
        for ext in (".tar", ".parquet", ".json"):  # the stats json last: it marks the shard done
            os.replace(self.tmp[ext], self.final[ext])
        return self.final[".tar"]

    def abort(self):
        try:
            self._tar.close()
        except Exception:
            pass
        for p in self.tmp.values():
            p.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


def iter_tar_samples(path: str | Path):
    """Yield (key, {ext: bytes}) from a webdataset tar, grouping consecutive members by key."""
    key, files = None, {}
    with tarfile.open(path, "r") as tar:
        for member in tar:
            if not member.isfile():
                continue
            base = member.name
            slash = base.rfind("/")
            dot = base.find(".", slash + 1)
            if dot < 0:
                continue
            k, ext = base[:dot], base[dot + 1:]
            if k != key and key is not None:
                yield key, files
                files = {}
            key = k
            files[ext] = tar.extractfile(member).read()
    if key is not None:
        yield key, files


def clean_stale_temps(out_dir: str | Path):
    """Remove temp files a killed run left behind (never a finished shard)."""
    for p in Path(out_dir).glob(".tmp-*"):
        p.unlink(missing_ok=True)
