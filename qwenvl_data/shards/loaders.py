"""What other loaders want beside our shards: a wids index (`wids-index.json`).

wids (`wids.ShardListDataset("OUT/wids-index.json")`) needs each shard's sample count up front; we
take it from the shard's stats sidecar (reader.expected_count), or count the tar when it has none.
URLs are relative to the index, so a folder can be moved or synced as a whole. The file is
byte-deterministic (sorted shards, no timestamps). Every stage that writes shards calls
`write_loader_index(out_dir)` when it finishes.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .reader import expected_count, scan

WIDS_INDEX = "wids-index.json"


def write_loader_index(out_dir: str | Path, names: list[str] | None = None) -> Path:
    """Write OUT/wids-index.json over `names` (shard stems) or every finished `*.tar` in the folder."""
    out = Path(out_dir)
    if names is None:
        names = sorted(p.stem for p in out.glob("*.tar") if not p.name.startswith(".tmp-"))
    shardlist = []
    for name in sorted(names):
        tar = out / f"{name}.tar"
        n = expected_count(tar)
        shardlist.append({"url": tar.name, "nsamples": n if n is not None else len(scan(tar, check_count=False))})
    index = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": out.name, "shardlist": shardlist}
    tmp = out / f".tmp-{os.getpid()}-{WIDS_INDEX}"
    tmp.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out / WIDS_INDEX)
    return out / WIDS_INDEX
