"""Shards, in one place: how they are written, read, mixed, built and counted.

- `writer`: `ShardWriter` (atomic, byte-deterministic tars + sidecar parquet + stats json; one member
  set per shard), `shard_done`, `clean_stale_temps`, `family`.
- `reader`: the one tar reader every stage uses (`members`, `iter_tar_samples`, `scan`), which
  refuses a truncated tar and checks the sample count against the shard's stats sidecar.
- `mix`: weights -> exact per-group counts and an evenly interleaved order.
- `build`: training shards from scanned records (`qwenvl-data shards`): families, index, fingerprints.
- `tokens`: token counts for the index.
- `loaders`: the metadata other loaders want beside the shards (wids index, HF dataset card).
"""

from .reader import expected_count, iter_tar_samples, members, scan, split_member
from .writer import ShardWriter, check_key, clean_stale_temps, family, shard_done, shard_name

__all__ = [
    "ShardWriter",
    "check_key",
    "clean_stale_temps",
    "expected_count",
    "family",
    "iter_tar_samples",
    "members",
    "scan",
    "shard_done",
    "shard_name",
    "split_member",
]
