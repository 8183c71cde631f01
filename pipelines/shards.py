"""`qwenvl-data shards --stage 1|2|3 --input DIR... --output DIR`: mixed training shards + index.

    qwenvl-data shards --stage 1 --input out/clip --output out/shards/stage1
    qwenvl-data shards --stage 2 --input out/tasks/* out/ocr --output out/shards/stage2 --tokenizer tok/
    qwenvl-data shards --stage 3 --input sft/finetune.json out/tasks/* --output out/shards/stage3

- Stage 1: caption samples from pair shards, mixed across sources by configured weights (Table 2).
- Stage 2: task samples (schema task/ocr), mixed across tasks by configured weights (Table 3); one
  sample per training sample: packing into sequences of vocab.STAGE_SETTINGS[2]['seq_len'] tokens happens in the training loader.
- Stage 3: ChatML conversations from fine-tuning JSON, plus task samples as chat turns.
Writes `OUT/stage{N}-{000000}.tar` (+ `.parquet`, `.json`) and `OUT/index.json`; checks that every
input sample is written, rejected with a reason, or left unused by the mix.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

from qwenvl_data.config import load_section
from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.vocab import STAGE_SETTINGS
from qwenvl_data.mix import choose, interleave, plan_counts
from qwenvl_data.outdir import own_output
from qwenvl_data.shards import ShardWriter, clean_stale_temps, shard_done
from qwenvl_data.tasks.common import Reject
from qwenvl_data.tasks.tokens import TokenCounter
from qwenvl_data.tasks.training import build_stage12, build_stage3, read_records, scan_pairs, scan_sft, \
    scan_tasks


def add_arguments(p):
    p.add_argument("--stage", type=int, required=True, choices=(1, 2, 3))
    p.add_argument("--input", nargs="+", required=True, metavar="PATH",
                   help="folders of shards (stage 1: pair shards; 2, 3: task shards); stage 3 also "
                        "fine-tuning JSON files")
    p.add_argument("--output", required=True, help="folder for the training shards and index.json")
    p.add_argument("--config", help="YAML with a 'shards:' section overriding configs/shards.yaml")
    p.add_argument("--tokenizer", help="local tokenizer folder (tokenizer.json or transformers files) "
                                       "for exact token counts; without it the index holds an estimate")
    p.add_argument("--num-samples", type=int, help="total samples; groups repeat when short (default: "
                                                   "the most samples the weights allow without repeating)")
    p.add_argument("--all", action="store_true", help="ignore the weights: every sample once")
    p.add_argument("--shard-size", type=int, help="samples per output shard")
    p.add_argument("--seed", type=int, help="seed of the mix (default from config)")
    p.add_argument("--stage3-mask", choices=("official", "answers"),
                   help="stage-3 loss mask: official (finetune.py: answers + <|im_start|>, <|im_end|>, \\n of "
                        "every turn) or answers (answer + <|im_end|> only); default from config")


def input_files(stage: int, inputs) -> list[Path]:
    files: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            files += sorted(q for q in p.rglob("*.tar") if not q.name.startswith(".tmp-"))
        elif p.is_file() and p.suffix in (".tar", ".json"):
            files.append(p)
        else:
            raise UsageError(f"{raw}: no such shard folder, .tar or .json file (--input)")
    if any(f.suffix == ".json" for f in files) and stage != 3:
        raise UsageError("fine-tuning JSON files are stage-3 input only")
    if not files:
        raise UsageError(f"no input shards under {' '.join(map(str, inputs))}")
    return files


def scan(stage: int, files):
    """(records by group, scan rejects {reason: n}, inputs seen)."""
    groups: dict[str, list] = {}
    rejected: dict[str, int] = {}
    seen = 0
    for f in files:
        items = scan_sft(f) if f.suffix == ".json" else scan_pairs(f) if stage == 1 else scan_tasks(f)
        for item in items:
            seen += 1
            if isinstance(item, Reject):
                rejected[item.reason] = rejected.get(item.reason, 0) + 1
            else:
                groups.setdefault(item.group, []).append(item)
    return groups, rejected, seen


def user_weights(user_config, stage: int):
    """The user's weights replace the defaults whole (a merge would keep default groups alive)."""
    if not user_config:
        return "default"
    import yaml
    data = yaml.safe_load(Path(user_config).read_text(encoding="utf-8")) or {}
    section = ((data.get("shards") or {}).get(f"stage{stage}") or {})
    return section["weights"] if "weights" in section else "default"


def stage_weights(stage: int, cfg: dict, groups, use_all: bool, user_config=None):
    section = cfg.get(f"stage{stage}") or {}
    weights = user_weights(user_config, stage)
    weights = None if use_all else section.get("weights") if weights == "default" else weights
    if weights is not None and section.get("default_weight") is not None:
        weights = {g: weights.get(g, section["default_weight"]) for g in set(weights) | set(groups)}
    return weights


def plan_streams(groups: dict, counts: dict, seed: int):
    """Chosen records per (group, source) stream, in file order, and each stream's count."""
    rng = random.Random(seed)
    streams: dict[str, list] = {}
    for g in sorted(groups):
        recs = groups[g]
        for i in choose(len(recs), counts.get(g, 0), rng):
            streams.setdefault(f"{g}/{recs[i].source}", []).append(recs[i])
    return streams


class IndexBook:
    """Per-shard and total counts of samples, images and tokens by task/source and language."""

    def __init__(self):
        self.shards: list[dict] = []
        self.by_task: dict = {}
        self.by_source: dict = {}
        self.totals = {"samples": 0, "images": 0, "tokens": 0}

    def add(self, obj: dict, tokens: int, shard: dict):
        for book, name in ((self.by_task, obj["task"]), (self.by_source, obj["source"]),
                           (shard["by_task"], obj["task"])):
            cell = book.setdefault(name, {}).setdefault(obj["lang"], {"samples": 0, "tokens": 0})
            cell["samples"] += 1
            cell["tokens"] += tokens
        for d in (self.totals, shard):
            d["samples"] += 1
            d["images"] += len(obj["images"])
            d["tokens"] += tokens


def write_shards(streams, counts_by_stream, stage, out_dir, shard_size, seed, build, counter):
    book, rejected = IndexBook(), {}
    iters = {name: read_records(recs) for name, recs in streams.items()}
    writer, shard_id, shard = None, 0, None

    def close():
        nonlocal writer, shard_id
        if writer is not None:
            writer.close({k: v for k, v in shard.items() if k != "name"})
        book.shards.append(shard)
        writer, shard_id = None, shard_id + 1

    for name in interleave(counts_by_stream, seed):
        record, files = next(iters[name])
        built = build(record, files)
        if isinstance(built, Reject):
            rejected[built.reason] = rejected.get(built.reason, 0) + 1
            continue
        obj, members = built
        tokens = counter.count(obj["segments"], end_of_text=stage in (1, 2))
        obj["tokens"] = tokens
        if shard is None or shard["samples"] >= shard_size:
            if shard is not None:
                close()
            shard = {"name": f"stage{stage}-{shard_id:06d}", "samples": 0, "images": 0, "tokens": 0,
                     "by_task": {}}
            # a finished shard from an earlier run of the same plan is kept, not rewritten
            writer = None if shard_done(out_dir, shard_id, f"stage{stage}") else \
                ShardWriter(out_dir, shard_id, f"stage{stage}")
        if writer is not None:
            key = f"{book.totals['samples']:09d}"
            writer.add(key, {**members, "json": obj}, {"key": key, "uid": obj["uid"], "task": obj["task"],
                                                       "lang": obj["lang"], "source": obj["source"],
                                                       "images": len(obj["images"]), "tokens": tokens})
        book.add(obj, tokens, shard)
    if shard is not None:
        close()
    return book, rejected


def run(args) -> int:
    t0 = time.time()
    cfg = load_section("shards", args.config)
    stage, out = args.stage, Path(args.output)
    seed = int(args.seed if args.seed is not None else cfg.get("seed", 0))
    size = int(args.shard_size or cfg.get("shard_size") or 1000)
    if size < 1 or (args.num_samples is not None and args.num_samples < 0):
        raise UsageError("--shard-size must be >= 1 and --num-samples >= 0")
    files = input_files(stage, args.input)
    groups, scan_rejected, seen = scan(stage, files)
    if not groups:
        raise BadInput(f"no usable samples in {len(files)} input files (rejected: {scan_rejected})")
    weights = stage_weights(stage, cfg, groups, args.all, args.config)
    if weights is None and args.num_samples is not None:
        raise UsageError(f"--num-samples needs mixing weights; stage {stage} is set to use every sample once "
                         f"(set shards.stage{stage}.weights, or drop --all)")
    counts = plan_counts({g: len(r) for g, r in groups.items()}, weights, args.num_samples)
    streams = plan_streams(groups, counts, seed)
    counter = TokenCounter(args.tokenizer)
    s3 = cfg.get("stage3") or {}
    mask = args.stage3_mask or s3.get("mask") or "official"
    if mask not in ("official", "answers"):
        raise UsageError(f"shards.stage3.mask is {mask!r}: expected official or answers")
    if stage == 3:
        def build(r, f):
            return build_stage3(r, f, s3.get("system") or "You are a helpful assistant.",
                                float(s3.get("zh_instruction_fraction") or 0.0), mask)
    else:
        def build(r, f):
            return build_stage12(r, f, stage)
    with own_output(out, stage="shards", inputs=[("--input", p) for p in args.input]):
        clean_stale_temps(out)
        book, build_rejected = write_shards(streams, {n: len(v) for n, v in streams.items()}, stage, out,
                                            size, seed, build, counter)
        index = make_index(stage, seed, weights, groups, counts, streams, book, scan_rejected, build_rejected,
                           seen, counter, [str(f) for f in files], time.time() - t0)
        (out / "index.json").write_text(json.dumps(index, ensure_ascii=False, indent=1, sort_keys=True))
        t = index["totals"]
        print(f"stage {stage}: {t['samples']} samples, {t['images']} images, {t['tokens']} tokens "
              f"({'exact' if counter.exact else 'estimated'}) in {len(book.shards)} shards; "
              f"rejected {sum(index['rejected'].values())}, unused {index['inputs']['unused']}")
        return 0


def make_index(stage, seed, weights, groups, counts, streams, book, scan_rej, build_rej, seen, counter,
               inputs, seconds):
    unique = {g: min(counts.get(g, 0), len(groups[g])) for g in groups}  # choose(): full passes first
    mix = {g: {"weight": None if weights is None else weights.get(g), "available": len(groups[g]),
               "selected": counts.get(g, 0), "unused": len(groups[g]) - unique[g],
               "repeats": counts.get(g, 0) - unique[g]} for g in sorted(groups)}
    rejected = dict(scan_rej)
    for k, v in build_rej.items():
        rejected[k] = rejected.get(k, 0) + v
    selected = sum(counts.values())
    unused = sum(m["unused"] for m in mix.values())
    if book.totals["samples"] + sum(build_rej.values()) != selected or \
            seen != sum(len(r) for r in groups.values()) + sum(scan_rej.values()):
        raise BadInput(f"stage {stage}: accounting error: {seen} in, {selected} selected, "
                       f"{book.totals['samples']} written, rejected {rejected}")
    return {"schema": "index", "stage": stage, "seed": seed, "group_by": "source" if stage == 1 else "task",
            "token_counter": {"name": counter.name, "exact": counter.exact},
            "settings": dict(STAGE_SETTINGS[stage]),
            "packing": "none: one sample per training sample; the stage-2 loader packs "
                       f"{STAGE_SETTINGS[2]['seq_len']}-token sequences (settings.seq_len)",
            "inputs": {"files": inputs, "samples": seen, "usable": seen - sum(scan_rej.values()),
                       "unused": unused},
            "mix": mix, "rejected": rejected, "totals": book.totals, "by_task": book.by_task,
            "by_source": book.by_source, "shards": book.shards, "seconds": round(seconds, 3)}
