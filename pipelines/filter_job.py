"""The filter as two picklable steps that every engine wraps: map a chunk, reduce a URL partition.

- `map_chunk(chunk)`: read one parquet row group, normalise its source layout, apply rules 1–10, write
  the rejected rows, and return the surviving candidates split by URL-hash partition.
- `reduce_partition(part, tables)`: keep one row per normalised URL (rule 11), write the kept pairs and
  the `duplicate_url` rejects.
Both write their funnel counts to `_work/counts/` under deterministic names, so a retried task simply
overwrites its own file and the driver sums what is there.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from qwenvl_data import funnel
from qwenvl_data.dedup import normalise_url, partition_of, pick_winners
from qwenvl_data.errors import BadInput
from qwenvl_data.rules import PairRules
from qwenvl_data.sources import Layout, normalise

PAIR_SCHEMA = pa.schema([
    ("uid", pa.string()), ("source", pa.string()), ("url", pa.string()), ("caption", pa.string()),
    ("caption_raw", pa.string()), ("width", pa.int64()), ("height", pa.int64()), ("score", pa.float64()),
    ("lang", pa.string()), ("lang_score", pa.float64()),
], metadata={b"qwenvl.schema": b"pair"})
REJECT_SCHEMA = pa.schema([
    ("uid", pa.string()), ("source", pa.string()), ("reason", pa.string()), ("reasons", pa.list_(pa.string())),
    ("url", pa.string()), ("caption_raw", pa.string()),
], metadata={b"qwenvl.schema": b"reject"})
CANDIDATE_COLUMNS = [f.name for f in PAIR_SCHEMA] + ["url_norm"]


@dataclass(frozen=True)
class Chunk:
    index: int          # global, deterministic: the order of (file, row group) in the plan
    path: str
    source: str
    file_stem: str
    row_group: int
    row_offset: int     # row number of the row group's first row within its file (for uids)
    num_rows: int
    columns: tuple      # ((field, column name), ...) resolved for this file


def open_parquet(path: str) -> pq.ParquetFile:
    if "://" in path:
        fs, p = fsspec.core.url_to_fs(path)
        return pq.ParquetFile(fs.open(p, "rb"))
    return pq.ParquetFile(path, memory_map=True)


class FilterJob:
    def __init__(self, rules: PairRules, layouts: dict[str, Layout], out_dir: str, num_partitions: int,
                 source_order: list[str]):
        self.rules = rules
        self.layouts = layouts
        self.out = str(out_dir)
        self.num_partitions = num_partitions
        self.source_rank = {s: i for i, s in enumerate(source_order)}

    # Outputs go through fsspec, so --output may be a shared mount or an object store (gs://, s3://)
    # that every worker of a Beam or Ray cluster can reach. Each file is written under a temporary name
    # and moved into place, so a retried task never leaves half a file.
    @property
    def work(self) -> str:
        return self.out.rstrip("/") + "/_work"

    def _put(self, path: str, write):
        fs, p = fsspec.core.url_to_fs(path)
        parent, name = p.rsplit("/", 1)
        fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{os.getpid()}-{name}"
        with fs.open(tmp, "wb") as f:
            write(f)
        fs.mv(tmp, p)

    def _write_counts(self, name: str, counts: dict):
        self._put(f"{self.work}/counts/{name}.json", lambda f: f.write(json.dumps(counts).encode()))

    def _write(self, table: pa.Table, path: str, schema: pa.Schema):
        table = table.select(schema.names).cast(schema)
        self._put(path, lambda f: pq.write_table(table, f, compression="zstd"))

    # map
    def map_chunk(self, chunk: Chunk) -> dict[int, pa.Table]:
        layout = self.layouts[chunk.source]
        cols = dict(chunk.columns)
        try:
            raw = open_parquet(chunk.path).read_row_group(chunk.row_group,
                                                          columns=sorted({c for c in cols.values() if c}))
        except Exception as e:
            raise BadInput(f"{chunk.path}: row group {chunk.row_group} cannot be read "
                           f"({type(e).__name__}: {str(e)[:200]})") from None
        t = normalise(raw, layout, cols, chunk.source, chunk.file_stem, chunk.row_offset)
        t = self.rules.apply(t, layout)
        counts: dict = {}
        funnel.add(counts, chunk.source, "in", t.num_rows)
        rejected = pc.is_valid(t["reason"])
        rej = t.filter(rejected)
        if rej.num_rows:
            for reason, n in zip(*np.unique(rej["reason"].to_numpy(zero_copy_only=False), return_counts=True)):
                funnel.add(counts, chunk.source, "dropped", int(n), reason)
            self._write(rej, f"{self.out}/rejects/map-{chunk.index:06d}.parquet", REJECT_SCHEMA)
        self._write_counts(f"map-{chunk.index:06d}", counts)
        alive = t.filter(pc.invert(rejected))
        alive = alive.set_column(alive.schema.get_field_index("width"), "width",
                                 pc.cast(alive["width"], pa.int64(), safe=False))
        alive = alive.set_column(alive.schema.get_field_index("height"), "height",
                                 pc.cast(alive["height"], pa.int64(), safe=False))
        alive = alive.append_column("url_norm", normalise_url(alive["url"].combine_chunks()))
        alive = alive.select(CANDIDATE_COLUMNS)
        parts = partition_of(alive["url_norm"].combine_chunks(), self.num_partitions)
        out = {}
        for p in np.unique(parts):
            out[int(p)] = alive.filter(pa.array(parts == p))
        return out

    # reduce
    def reduce_partition(self, part: int, tables: list[pa.Table]) -> int:
        t = pa.concat_tables(tables) if tables else pa.table({c: [] for c in CANDIDATE_COLUMNS})
        keep = pick_winners(t, self.source_rank)
        kept = t.filter(pa.array(keep))
        kept = kept.take(pc.sort_indices(kept, [("uid", "ascending")]))
        dups = t.filter(pa.array(~keep))
        counts: dict = {}
        for src in set(t["source"].to_pylist()):
            funnel.add(counts, src, "kept", 0)
        if kept.num_rows:
            for (src, lang), n in _group_counts(kept, ["source", "lang"]).items():
                funnel.add(counts, src, "kept", n)
                funnel.add(counts, src, "kept_by_lang", n, lang)
            self._write(kept, f"{self.out}/pairs/part-{part:05d}.parquet", PAIR_SCHEMA)
        if dups.num_rows:
            n = dups.num_rows
            dups = dups.append_column("reason", pa.array(["duplicate_url"] * n, pa.string()))
            dups = dups.append_column("reasons", pa.array([["duplicate_url"]] * n, pa.list_(pa.string())))
            for (src,), k in _group_counts(dups, ["source"]).items():
                funnel.add(counts, src, "dropped", k, "duplicate_url")
            self._write(dups, f"{self.out}/rejects/dup-{part:05d}.parquet", REJECT_SCHEMA)
        self._write_counts(f"reduce-{part:05d}", counts)
        return kept.num_rows


def _group_counts(t: pa.Table, keys: list[str]) -> dict[tuple, int]:
    g = t.group_by(keys).aggregate([([], "count_all")])
    cols = [g[k].to_pylist() for k in keys]
    return {tuple(vals): n for *vals, n in zip(*cols, g["count_all"].to_pylist())}


def read_counts(out_dir: str) -> dict:
    fs, p = fsspec.core.url_to_fs(str(out_dir).rstrip("/") + "/_work/counts")
    files = sorted(fs.glob(p + "/*.json")) if fs.exists(p) else []
    return funnel.merge(*[json.loads(fs.cat_file(f)) for f in files])
