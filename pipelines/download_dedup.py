"""Exact duplicate images across all download shards: kept once (reason `duplicate_image`).

Runs after img2dataset, over the shard sidecar parquets (sha256 of the downloaded bytes). The
sample with the smallest key keeps its place, whatever order the workers finished in, so the result
is deterministic. Shards holding a dropped duplicate are rewritten: tar first, then parquet (status
`duplicate`), then stats json, each written atomically (storage); a kill in between is repaired by the rerun,
because the parquet still says `success` until the tar no longer holds the sample.
"""

from __future__ import annotations

import tarfile

import pyarrow as pa
import pyarrow.compute as pc

from qwenvl_data import storage


def duplicate_keys(tables: dict[str, pa.Table]) -> dict[str, str]:
    """{key of a duplicate sample: key of the sample that stays}, over all shards."""
    ok = [t.filter(pc.equal(t["status"], "success")).select(["key", "sha256"]) for t in tables.values()]
    ok = [t for t in ok if t.num_rows]
    if not ok:
        return {}
    allok = pa.concat_tables(ok)
    first = allok.group_by("sha256").aggregate([("key", "min"), ([], "count_all")])
    first = first.filter(pc.greater(first["count_all"], 1))
    if not first.num_rows:
        return {}
    joined = allok.join(first, "sha256", join_type="inner")
    dups = joined.filter(pc.not_equal(joined["key"], joined["key_min"]))
    return dict(zip(dups["key"].to_pylist(), dups["key_min"].to_pylist()))


def _rewrite_tar(path: str, drop: set[str]):
    with (
        storage.local_copy(path) as local,
        tarfile.open(local) as src,
        storage.atomic_write(path) as f,
        tarfile.open(fileobj=f, mode="w", format=src.format) as dst,
    ):
        for member in src:
            if member.name.split(".", 1)[0] not in drop:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)


def drop_duplicates(output: str, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Remove duplicate samples from their shards; returns the updated sidecar tables."""
    dups = duplicate_keys(tables)
    if not dups:
        return tables
    out = {}
    for shard, table in tables.items():
        keys = table["key"].to_pylist()
        hit = {k for k in keys if k in dups}
        if not hit:
            out[shard] = table
            continue
        _rewrite_tar(storage.join(output, f"{shard}.tar"), hit)
        full = storage.read_parquet(storage.join(output, f"{shard}.parquet"))
        is_dup = pc.is_in(full["key"], pa.array(sorted(hit), pa.string()))
        msgs = [
            f"duplicate_image: same image as sample {dups[k]}" if k in hit else m
            for k, m in zip(full["key"].to_pylist(), full["error_message"].to_pylist())
        ]
        full = full.set_column(
            full.schema.get_field_index("status"), "status", pc.if_else(is_dup, "duplicate", full["status"])
        )
        full = full.set_column(
            full.schema.get_field_index("error_message"), "error_message", pa.array(msgs, pa.string())
        )
        storage.write_parquet(full, storage.join(output, f"{shard}.parquet"))
        stats_path = storage.join(output, f"{shard}_stats.json")
        stats = storage.read_json(stats_path)
        stats["successes"] = int(pc.sum(pc.equal(full["status"], "success")).as_py() or 0)
        stats["duplicates"] = int(pc.sum(pc.equal(full["status"], "duplicate")).as_py() or 0)
        storage.write_json(stats_path, stats, indent=4)
        out[shard] = full.select(table.column_names)
    return out
