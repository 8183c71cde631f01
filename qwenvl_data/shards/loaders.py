"""What other loaders want beside our shards: a wids index and a Hugging Face dataset card.

- `wids-index.json`: wids (`wids.ShardListDataset("OUT/wids-index.json", localname=lambda url: url)`)
  needs each shard's sample count up front; we take it from the shard's stats sidecar
  (reader.expected_count), or count the tar. URLs are relative to the index, so a folder can be moved or
  synced as a whole. `localname` makes wids read local shards in place: by default it copies each one to
  /tmp/_wids_cache keyed by its path and never checks the copy again, so shards rewritten at the same path
  (a rerun into the same OUT) would be read stale.
- `README.md`, a dataset card with one config per shard family and its features: HF `datasets` infers a
  json column's struct from the first 5 samples and silently drops a key that first appears later (task
  extras like `objects` vary by task); `load_dataset("OUT", "<family>")` reads the features from the card
  instead, computed here from every sample's json. A family whose json types cannot be unified gets no
  features (HF infers them, as without a card).
Both files are byte-deterministic (sorted, no timestamps). Every stage that writes shards calls
`write_loader_index(out_dir)` when it finishes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import yaml

from .. import storage
from ..vocab import is_image_ext
from .reader import expected_count, iter_tar_samples, scan

WIDS_INDEX = "wids-index.json"
CARD = "README.md"
_DTYPES = {
    "string": "string",
    "large_string": "string",
    "int64": "int64",
    "double": "float64",
    "bool": "bool",
    "null": "null",
}


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
    _write(out / WIDS_INDEX, json.dumps(index, indent=1, sort_keys=True) + "\n")
    _write(out / CARD, dataset_card(out, names))
    return out / WIDS_INDEX


def _write(path: Path, text: str):
    storage.write_text(path, text)


def _family(name: str) -> str:
    base, _, counter = name.rpartition("-")
    return (base or "default") if counter.isdigit() and len(counter) == 6 else name


def dataset_card(out: Path, names: list[str]) -> str:
    """A dataset card: per family, `configs` (its tars) and `dataset_info` (its members' features)."""
    families: dict[str, list[str]] = {}
    for name in sorted(names):
        families.setdefault(_family(name), []).append(name)
    configs, infos = [], []
    for fam, shards in families.items():
        # the files by name: a glob like `stage3-jpg-*` would also match the `stage3-jpg-png` family
        configs.append({"config_name": fam, "data_files": [{"split": "train", "path": [f"{n}.tar" for n in shards]}]})
        features = family_features(out, shards)
        if features is not None:
            infos.append({"config_name": fam, "features": features})
    head = yaml.safe_dump({"configs": configs, "dataset_info": infos}, sort_keys=False, allow_unicode=True)
    return (
        f"---\n{head}---\n# {out.name}\n\nWebdataset shards written by qwenvl-data, one member set per "
        f'family (docs/CONTRACTS.md). `load_dataset("{out.name}", "<family>")` reads a family with '
        f'the features below; `wids.ShardListDataset("{out.name}/{WIDS_INDEX}", localname=lambda url: url)` '
        "reads them all, in place (without `localname`, wids copies each shard to /tmp/_wids_cache under its "
        "path and keeps reading that copy after the shards are rewritten there).\n"
    )


def family_features(out: Path, shards: list[str]) -> list | None:
    """HF features (YAML list form) of a family: image members, text, and the json's unified struct."""
    members: list[str] = []
    types: list[pa.DataType] = []
    chunk: list = []
    try:
        for name in shards:
            for _, files in iter_tar_samples(out / f"{name}.tar", check_count=False):
                members = members or sorted(files)
                if "json" in files:
                    chunk.append(json.loads(files["json"]))
                if len(chunk) >= 1000:
                    types.append(pa.array(chunk).type)
                    chunk = []
        if chunk:
            types.append(pa.array(chunk).type)
        struct = (
            pa.unify_schemas([pa.schema([("json", t)]) for t in types], promote_options="permissive").field("json").type
            if types
            else None
        )
        features = []
        for m in members:
            if m == "json":
                features.append({"name": m, **_yaml(struct)})
            else:
                features.append(
                    {
                        "name": m,
                        "dtype": "image"
                        if is_image_ext(m)
                        else "string"
                        if m.rsplit(".", 1)[-1] in ("txt", "text")
                        else "binary",
                    }
                )
        return features + [{"name": "__key__", "dtype": "string"}, {"name": "__url__", "dtype": "string"}]
    except (pa.ArrowException, ValueError, KeyError, RecursionError):
        return None


def _yaml(t: pa.DataType) -> dict:
    if pa.types.is_struct(t):
        return {"struct": [{"name": f.name, **_yaml(f.type)} for f in t]}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _yaml(t.value_type)
        return {"list": inner["dtype"] if "dtype" in inner else inner.get("struct", inner)}
    return {"dtype": _DTYPES[str(t)]}
