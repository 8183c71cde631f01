"""The filter as two picklable steps that every engine wraps: map a chunk, reduce a URL partition.

- `map_chunk(chunk)`: read one parquet row group, normalise its source layout, apply the row rules
  (rules.PIPELINE), write the rejected rows, and return the surviving candidates split by URL-hash partition.
- `reduce_partition(part, tables)`: the cross-row rules: one row per uid (`duplicate_uid`, the copy from
  the earliest input wins), then one per normalised URL (`duplicate_url`); write the kept pairs, the
  rejects, and the kept (uid, input order) pairs for the driver's cross-partition uid check.
- `resolve_duplicate_uids()` (driver, after every reduce): a uid kept in two URL partitions (same id,
  different URLs) keeps its earliest copy; the others move to the rejects as `duplicate_uid`.
Every step writes its funnel counts to `_work/counts/` under deterministic names, so a retried task
simply overwrites its own file and the driver sums what is there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from qwenvl_data import funnel, storage
from qwenvl_data.dedup import first_of_uid, normalise_url, partition_of, pick_winners, stable_hash
from qwenvl_data.errors import BadInput
from qwenvl_data.rules import PairRules
from qwenvl_data.sources import Layout, normalise

PAIR_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("source", pa.string()),
        ("url", pa.string()),
        ("caption", pa.string()),
        ("caption_raw", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("score", pa.float64()),
        ("lang", pa.string()),
        ("lang_score", pa.float64()),
    ],
    metadata={b"qwenvl.schema": b"pair"},
)
REJECT_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("source", pa.string()),
        ("reason", pa.string()),
        ("reasons", pa.list_(pa.string())),
        ("url", pa.string()),
        ("caption_raw", pa.string()),
    ],
    metadata={b"qwenvl.schema": b"reject"},
)
UID_SCHEMA = pa.schema([("uid", pa.string()), ("_order", pa.int64())])
CANDIDATE_SCHEMA = pa.schema(list(PAIR_SCHEMA) + [pa.field("url_norm", pa.string()), pa.field("_order", pa.int64())])
CANDIDATE_COLUMNS = CANDIDATE_SCHEMA.names
ROW_BITS = 32  # _order = chunk index << ROW_BITS | row within the chunk: the input order of every row


@dataclass(frozen=True)
class Chunk:
    index: int  # global, deterministic: the order of (file, row group) in the plan
    path: str
    source: str
    file_stem: str
    row_group: int
    row_offset: int  # row number of the row group's first row within its file (for uids)
    num_rows: int
    columns: tuple  # ((field, column name), ...) resolved for this file


def one_line(e: BaseException) -> str:
    """An exception's message on one line (pyarrow's span several)."""
    return " ".join(str(e).split())


def open_parquet(path: str) -> pq.ParquetFile:
    if "://" in path:
        fs, p = fsspec.core.url_to_fs(path)
        return pq.ParquetFile(fs.open(p, "rb"))
    return pq.ParquetFile(path, memory_map=True)


class FilterJob:
    def __init__(
        self, rules: PairRules, layouts: dict[str, Layout], out_dir: str, num_partitions: int, source_order: list[str]
    ):
        self.rules = rules
        self.layouts = layouts
        self.out = str(out_dir)
        self.num_partitions = num_partitions
        self.source_rank = {s: i for i, s in enumerate(source_order)}

    # Outputs go through qwenvl_data.storage, so --output may be a shared mount or an object store
    # (gs://, s3://) that every worker of a Beam or Ray cluster can reach. Each file is written atomically
    # (local: temp name + rename; object store: one PUT), so a retried task never leaves half a file.
    @property
    def work(self) -> str:
        return self.out.rstrip("/") + "/_work"

    def _put(self, path: str, write):
        with storage.atomic_write(path) as f:
            write(f)

    def _write_counts(self, name: str, counts: dict):
        self._put(f"{self.work}/counts/{name}.json", lambda f: f.write(json.dumps(counts).encode()))

    def _write(self, table: pa.Table, path: str, schema: pa.Schema):
        table = table.select(schema.names).cast(schema)
        # dictionary pages only for the few-valued columns: URLs, captions and uids are (nearly) all distinct
        few = [c for c in ("source", "lang", "reason", "reasons") if c in schema.names]
        self._put(path, lambda f: pq.write_table(table, f, compression="zstd", use_dictionary=few))

    # map
    def map_chunk(self, chunk: Chunk) -> dict[int, pa.Table]:
        layout = self.layouts[chunk.source]
        cols = dict(chunk.columns)
        try:
            raw = open_parquet(chunk.path).read_row_group(
                chunk.row_group, columns=sorted({c for c in cols.values() if c})
            )
        except Exception as e:
            raise BadInput(
                f"{chunk.path}: row group {chunk.row_group} cannot be read ({type(e).__name__}: {one_line(e)[:200]})"
            ) from None
        t = normalise(raw, layout, cols, chunk.source, chunk.file_stem, chunk.row_offset, chunk.path)
        t = t.append_column(
            "_order", pa.array((np.int64(chunk.index) << ROW_BITS) + np.arange(t.num_rows, dtype=np.int64))
        )
        t = self.rules.apply(t, layout)
        counts: dict = {}
        funnel.add(counts, chunk.source, "in", t.num_rows)
        rejected = pc.is_valid(t["reason"])
        rej = t.select(REJECT_SCHEMA.names).filter(rejected)  # only the columns each side keeps are copied
        if rej.num_rows:
            for reason, n in zip(*np.unique(rej["reason"].to_numpy(zero_copy_only=False), return_counts=True)):
                funnel.add(counts, chunk.source, "dropped", int(n), reason)
            self._write(rej, f"{self.out}/rejects/map-{chunk.index:06d}.parquet", REJECT_SCHEMA)
        self._write_counts(f"map-{chunk.index:06d}", counts)
        alive = t.select([c for c in CANDIDATE_COLUMNS if c != "url_norm"]).filter(pc.invert(rejected))
        for side in ("width", "height"):  # bad_metadata let through only whole numbers in range: a safe cast
            alive = alive.set_column(alive.schema.get_field_index(side), side, pc.cast(alive[side], pa.int64()))
        alive = alive.append_column("url_norm", normalise_url(alive["url"].combine_chunks()))
        alive = alive.select(CANDIDATE_COLUMNS)
        parts = partition_of(alive["url_norm"].combine_chunks(), self.num_partitions)
        order = np.argsort(parts, kind="stable")  # one take, then a slice per partition
        alive, parts = alive.take(pa.array(order)), parts[order]
        bounds = np.flatnonzero(np.diff(parts)) + 1
        return {
            int(parts[a]): alive.slice(a, b - a) for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(parts)]) if b > a
        }

    # reduce
    def reduce_partition(self, part: int, tables: list[pa.Table]) -> int:
        t = pa.concat_tables(tables) if tables else CANDIDATE_SCHEMA.empty_table()
        first = first_of_uid(t)
        uid_dups, t = t.filter(pa.array(~first)), t.filter(pa.array(first))
        keep = pick_winners(t, self.source_rank)
        kept = t.filter(pa.array(keep))
        kept = kept.take(pc.sort_indices(kept["_order"]))  # input order, whatever order the engine delivered
        dups = t.filter(pa.array(~keep))
        counts: dict = {}
        for src in set(pc.unique(uid_dups["source"]).to_pylist()) | set(pc.unique(t["source"]).to_pylist()):
            funnel.add(counts, src, "kept", 0)
        if kept.num_rows:
            for (src, lang), n in _group_counts(kept, ["source", "lang"]).items():
                funnel.add(counts, src, "kept", n)
                funnel.add(counts, src, "kept_by_lang", n, lang)
            self._write(kept, f"{self.out}/pairs/part-{part:05d}.parquet", PAIR_SCHEMA)
        self._write_dups(uid_dups, "duplicate_uid", f"uid-{part:05d}", counts)
        self._write_dups(dups, "duplicate_url", f"dup-{part:05d}", counts)
        self._write(kept, f"{self.work}/uids/part-{part:05d}.parquet", UID_SCHEMA)
        self._write_counts(f"reduce-{part:05d}", counts)
        return kept.num_rows

    def _write_dups(self, dups: pa.Table, reason: str, name: str, counts: dict):
        if not dups.num_rows:
            return
        n = dups.num_rows
        same = pa.repeat(pa.scalar(reason, pa.string()), n)
        dups = dups.append_column("reason", same)
        dups = dups.append_column("reasons", pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), same))
        for (src,), k in _group_counts(dups, ["source"]).items():
            funnel.add(counts, src, "dropped", k, reason)
        self._write(dups, f"{self.out}/rejects/{name}.parquet", REJECT_SCHEMA)

    # driver
    def resolve_duplicate_uids(self) -> int:
        """A uid kept in more than one URL partition keeps its earliest copy (smallest input order); the
        rest move from pairs/ to rejects/ as `duplicate_uid`. Reads only (uid hash, order) per kept row,
        then the uids of the few colliding rows."""
        fs, root = fsspec.core.url_to_fs(self.work + "/uids")
        files = sorted(fs.glob(root + "/part-*.parquet")) if fs.exists(root) else []
        if len(files) < 2:
            return 0
        hashes, orders, parts = [], [], []
        for f in files:
            with fs.open(f, "rb") as fh:
                t = pq.read_table(fh)
            hashes.append(stable_hash(t["uid"]))
            orders.append(t["_order"].to_numpy())
            parts.append(np.full(t.num_rows, int(f.rsplit("-", 1)[1].split(".")[0]), dtype=np.int64))
        h, order, part = np.concatenate(hashes), np.concatenate(orders), np.concatenate(parts)
        _, inv, cnt = np.unique(h, return_inverse=True, return_counts=True)
        suspect = cnt[inv] > 1
        if not suspect.any():
            return 0
        moved = 0
        for p in np.unique(part[suspect]):
            moved += self._move_uid_duplicates(int(p), order, part, suspect)
        return moved

    def _move_uid_duplicates(self, p: int, order, part, suspect) -> int:
        path = f"{self.out}/pairs/part-{p:05d}.parquet"
        fs, fp = fsspec.core.url_to_fs(path)
        with fs.open(fp, "rb") as fh:
            kept = pq.read_table(fh)
        with fs.open(fsspec.core.url_to_fs(f"{self.work}/uids/part-{p:05d}.parquet")[1], "rb") as fh:
            mine = pq.read_table(fh)
        others = set(order[suspect & (part != p)].tolist())
        if not others:
            return 0
        # exact uids of every suspect row elsewhere, then: a row loses if an earlier copy exists elsewhere
        earliest: dict[str, int] = {}
        for q in np.unique(part[suspect & (part != p)]):
            fs2, f2 = fsspec.core.url_to_fs(f"{self.work}/uids/part-{int(q):05d}.parquet")
            with fs2.open(f2, "rb") as fh:
                t = pq.read_table(fh)
            for uid, o in zip(t["uid"].to_pylist(), t["_order"].to_pylist()):
                if o in others:
                    earliest[uid] = min(earliest.get(uid, o), o)
        lose = np.array(
            [
                uid in earliest and earliest[uid] < o
                for uid, o in zip(mine["uid"].to_pylist(), mine["_order"].to_pylist())
            ],
            dtype=bool,
        )
        if not lose.any():
            return 0
        lost_uids = pa.array(mine["uid"].filter(pa.array(lose)))
        drop = pc.is_in(kept["uid"], value_set=lost_uids).to_numpy(zero_copy_only=False)
        gone, kept = kept.filter(pa.array(drop)), kept.filter(pa.array(~drop))
        counts: dict = {}
        for (src, lang), n in _group_counts(gone, ["source", "lang"]).items():
            funnel.add(counts, src, "kept", -n)
            funnel.add(counts, src, "kept_by_lang", -n, lang)
        self._write_dups(gone, "duplicate_uid", f"uidx-{p:05d}", counts)
        if kept.num_rows:
            self._write(kept, path, PAIR_SCHEMA)
        else:
            fs.rm(fp)
        self._write_counts(f"uidx-{p:05d}", counts)
        return gone.num_rows


def _group_counts(t: pa.Table, keys: list[str]) -> dict[tuple, int]:
    g = t.group_by(keys).aggregate([([], "count_all")])
    cols = [g[k].to_pylist() for k in keys]
    return {tuple(vals): n for *vals, n in zip(*cols, g["count_all"].to_pylist())}


def read_counts(out_dir: str) -> dict:
    fs, p = fsspec.core.url_to_fs(str(out_dir).rstrip("/") + "/_work/counts")
    files = sorted(fs.glob(p + "/*.json")) if fs.exists(p) else []
    return funnel.merge(*[json.loads(fs.cat_file(f)) for f in files])
