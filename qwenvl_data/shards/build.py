"""Training shards from planned records (`qwenvl-data shards`): families, index, stale-shard cleanup.

- One shard series per member family (writer.family): `stage2-jpg-000000.tar` holds samples with
  `img0.jpg` + `json`, `stage2-png-...` OCR pages, `stage2-text-...` pure text, `stage3-jpg-png-...`
  two-image chats. Every loader then reads a family whole with one glob (docs/CONTRACTS.md).
- Samples go out in the mix order (mix.interleave); each family keeps that order, so a prefix of a
  family holds the family's share of the mix.
- Each shard is rewritten on every run and kept only when its fingerprint (writer.py) matches the
  finished one; shards of an earlier run that this run does not write are removed, so `index.json`
  and the tars always describe the same samples.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BadInput
from ..tasks.common import Reject
from ..vocab import STAGE_SETTINGS
from .loaders import write_loader_index
from .mix import interleave
from .writer import ShardWriter, family, shard_name


class IndexBook:
    """Per-shard and total counts of samples, images and tokens by task/source and language."""

    def __init__(self):
        self.shards: list[dict] = []
        self.by_task: dict = {}
        self.by_source: dict = {}
        self.totals = {"samples": 0, "images": 0, "tokens": 0}

    def add(self, obj: dict, tokens: int, shard: dict):
        for book, name in (
            (self.by_task, obj["task"]),
            (self.by_source, obj["source"]),
            (shard["by_task"], obj["task"]),
        ):
            cell = book.setdefault(name, {}).setdefault(obj["lang"], {"samples": 0, "tokens": 0})
            cell["samples"] += 1
            cell["tokens"] += tokens
        for d in (self.totals, shard):
            d["samples"] += 1
            d["images"] += len(obj["images"])
            d["tokens"] += tokens


def write_shards(streams, counts_by_stream, stage, out_dir, shard_size, seed, build, counter):
    """Build and write every planned sample; returns (IndexBook, build rejects {reason: n}, reused shards)."""
    book, rejected = IndexBook(), {}
    from ..tasks.training import read_records

    iters = {name: read_records(recs) for name, recs in streams.items()}
    open_: dict[str, tuple[ShardWriter, dict]] = {}
    next_id: dict[str, int] = {}
    reused = 0

    def close(fam: str):
        nonlocal reused
        writer, shard = open_.pop(fam)
        writer.close({k: v for k, v in shard.items() if k != "name"} | {"stage": stage})
        reused += writer.reused
        book.shards.append(shard)

    try:
        for name in interleave(counts_by_stream, seed):
            record, files = next(iters[name])
            built = build(record, files)
            if isinstance(built, Reject):
                rejected[built.reason] = rejected.get(built.reason, 0) + 1
                continue
            obj, members = built
            tokens = counter.count(obj["segments"], end_of_text=stage in (1, 2))
            obj["tokens"] = tokens
            fam = family(members)
            if fam in open_ and open_[fam][1]["samples"] >= shard_size:
                close(fam)
            if fam not in open_:
                sid = next_id.get(fam, 0)
                next_id[fam] = sid + 1
                prefix = f"stage{stage}-{fam}"
                shard = {
                    "name": shard_name(prefix, sid),
                    "family": fam,
                    "members": sorted([*members, "json"]),
                    "samples": 0,
                    "images": 0,
                    "tokens": 0,
                    "by_task": {},
                }
                open_[fam] = (ShardWriter(out_dir, sid, prefix), shard)
            writer, shard = open_[fam]
            key = f"{book.totals['samples']:09d}"
            writer.add(
                key,
                {**members, "json": obj},
                {
                    "key": key,
                    "uid": obj["uid"],
                    "task": obj["task"],
                    "lang": obj["lang"],
                    "source": obj["source"],
                    "images": len(obj["images"]),
                    "tokens": tokens,
                },
            )
            book.add(obj, tokens, shard)
        for fam in sorted(open_):
            close(fam)
    except BaseException:
        for writer, _ in open_.values():
            writer.abort()
        raise
    book.shards.sort(key=lambda s: s["name"])
    remove_stale(out_dir, stage, {s["name"] for s in book.shards})
    write_loader_index(out_dir, [s["name"] for s in book.shards])
    return book, rejected, reused


def remove_stale(out_dir, stage: int, keep: set[str]):
    """Delete the shards of an earlier run of this stage that this run did not write."""
    for tar in Path(out_dir).glob(f"stage{stage}-*.tar"):
        if tar.stem not in keep:
            for ext in (".json", ".parquet", ".tar"):  # the stats json first: the shard stops being "done"
                tar.with_suffix(ext).unlink(missing_ok=True)


def make_index(stage, seed, weights, groups, counts, book, scan_rej, build_rej, seen, counter, inputs, seconds):
    unique = {g: min(counts.get(g, 0), len(groups[g])) for g in groups}  # choose(): full passes first
    mix = {
        g: {
            "weight": None if weights is None else weights.get(g),
            "available": len(groups[g]),
            "selected": counts.get(g, 0),
            "unused": len(groups[g]) - unique[g],
            "repeats": counts.get(g, 0) - unique[g],
        }
        for g in sorted(groups)
    }
    rejected = dict(scan_rej)
    for k, v in build_rej.items():
        rejected[k] = rejected.get(k, 0) + v
    selected = sum(counts.values())
    unused = sum(m["unused"] for m in mix.values())
    if book.totals["samples"] + sum(build_rej.values()) != selected or seen != sum(
        len(r) for r in groups.values()
    ) + sum(scan_rej.values()):
        raise BadInput(
            f"stage {stage}: accounting error: {seen} in, {selected} selected, "
            f"{book.totals['samples']} written, rejected {rejected}"
        )
    families: dict[str, dict] = {}
    for s in book.shards:
        fam = families.setdefault(s["family"], {"members": s["members"], "shards": [], "samples": 0})
        fam["shards"].append(s["name"] + ".tar")
        fam["samples"] += s["samples"]
    return {
        "schema": "index",
        "stage": stage,
        "seed": seed,
        "group_by": "source" if stage == 1 else "task",
        "token_counter": {"name": counter.name, "exact": counter.exact},
        "settings": dict(STAGE_SETTINGS[stage]),
        "packing": "none: one sample per training sample; the stage-2 loader packs "
        f"{STAGE_SETTINGS[2]['seq_len']}-token sequences (settings.seq_len)",
        "inputs": {"files": inputs, "samples": seen, "usable": seen - sum(scan_rej.values()), "unused": unused},
        "mix": mix,
        "rejected": rejected,
        "totals": book.totals,
        "by_task": book.by_task,
        "by_source": book.by_source,
        "families": families,
        "wids_index": "wids-index.json",
        "shards": book.shards,
        "seconds": round(seconds, 3),
    }
