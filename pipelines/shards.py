"""`qwenvl-data shards --stage 1|2|3 --input DIR... --output DIR`: mixed training shards + index.

    qwenvl-data shards --stage 1 --input out/clip --output out/shards/stage1
    qwenvl-data shards --stage 2 --input out/tasks/* out/ocr --output out/shards/stage2 --tokenizer tok/
    qwenvl-data shards --stage 3 --input sft/finetune.json out/tasks/* --output out/shards/stage3

- Stage 1: caption samples from pair shards, mixed across sources by configured weights (Table 2).
- Stage 2: task samples (schema task/ocr), mixed across tasks by configured weights (Table 3); one
  sample per training sample: packing into sequences of vocab.STAGE_SETTINGS[2]['seq_len'] tokens
  happens in the training loader.
- Stage 3: ChatML conversations from fine-tuning JSON, plus task samples as chat turns.
Writes `OUT/stage{N}-{family}-{000000}.tar` (+ `.parquet`, `.json`; one member set per family, see
qwenvl_data/shards/build.py), `OUT/index.json` and `OUT/wids-index.json`; checks that every input
sample is written, rejected with a reason (a repeated uid: `duplicate_uid`), or left unused by the mix.
--input, --tokenizer and --output may be `s3://` (any fsspec URL; a glob like `s3://b/tasks/*` is
expanded): staged through a local temp folder (qwenvl_data/staging.py; a rerun into a remote output
rebuilds every shard, index.json is uploaded last).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from qwenvl_data.config import load_section
from qwenvl_data.decontam import reports_for
from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.outdir import own_output
from qwenvl_data.shards import clean_stale_temps
from qwenvl_data.shards.build import make_index, write_shards
from qwenvl_data.shards.mix import choose, plan_counts
from qwenvl_data.shards.tokens import TokenCounter
from qwenvl_data.staging import staged_args
from qwenvl_data.tasks.common import Reject
from qwenvl_data.tasks.training import build_stage3, build_stage12, scan_pairs, scan_sft, scan_tasks


def add_arguments(p):
    p.add_argument("--stage", type=int, required=True, choices=(1, 2, 3))
    p.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH",
        help="folders of shards (stage 1: pair shards; 2, 3: task shards); stage 3 also fine-tuning JSON files",
    )
    p.add_argument("--output", required=True, help="folder for the training shards and index.json")
    p.add_argument("--config", help="YAML with a 'shards:' section overriding configs/shards.yaml")
    p.add_argument(
        "--tokenizer",
        help="local tokenizer folder (tokenizer.json or transformers files) "
        "for exact token counts; without it the index holds an estimate",
    )
    p.add_argument(
        "--num-samples",
        type=int,
        help="total samples; groups repeat when short (default: the most samples the weights allow without repeating)",
    )
    p.add_argument("--all", action="store_true", help="ignore the weights: every sample once")
    p.add_argument("--shard-size", type=int, help="samples per output shard")
    p.add_argument("--seed", type=int, help="seed of the mix (default from config)")
    p.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="skip (and list in index.json bad_files) an input tar that is truncated or unreadable instead of stopping",
    )
    p.add_argument(
        "--stage3-mask",
        choices=("official", "answers"),
        help="stage-3 loss mask: official (finetune.py: answers + <|im_start|>, <|im_end|>, \\n of "
        "every turn) or answers (answer + <|im_end|> only); default from config",
    )


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


def scan(stage: int, files, skip_bad_files: bool = False):
    """(records by group, scan rejects {reason: n}, inputs seen, bad files [{path, error}]).

    A uid seen before is rejected as `duplicate_uid` (the first one is kept). A truncated or
    unreadable tar stops the run with a one-line error, or with --skip-bad-files is listed and skipped."""
    groups: dict[str, list] = {}
    rejected: dict[str, int] = {}
    uids: set[str] = set()
    bad: list[dict] = []
    seen = 0
    for f in files:
        try:
            items = list(scan_sft(f) if f.suffix == ".json" else scan_pairs(f) if stage == 1 else scan_tasks(f))
        except BadInput as e:
            if not skip_bad_files:
                raise
            bad.append({"path": str(f), "error": str(e)})
            continue
        for item in items:
            seen += 1
            if not isinstance(item, Reject) and item.uid in uids:
                item = Reject(item.uid, "duplicate_uid")
            if isinstance(item, Reject):
                rejected[item.reason] = rejected.get(item.reason, 0) + 1
            else:
                uids.add(item.uid)
                groups.setdefault(item.group, []).append(item)
    return groups, rejected, seen, bad


def user_weights(user_config, stage: int):
    """The user's weights replace the defaults whole (a merge would keep default groups alive)."""
    if not user_config:
        return "default"
    import yaml

    data = yaml.safe_load(Path(user_config).read_text(encoding="utf-8")) or {}
    section = (data.get("shards") or {}).get(f"stage{stage}") or {}
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


def run(args) -> int:
    with staged_args(args, stage="shards", inputs=("input", "tokenizer")) as a:
        return _run(a)


def _run(args) -> int:
    t0 = time.time()
    cfg = load_section("shards", args.config)
    stage, out = args.stage, Path(args.output)
    seed = int(args.seed if args.seed is not None else cfg.get("seed", 0))
    size = int(args.shard_size or cfg.get("shard_size") or 1000)
    if size < 1 or (args.num_samples is not None and args.num_samples < 0):
        raise UsageError("--shard-size must be >= 1 and --num-samples >= 0")
    files = input_files(stage, args.input)
    groups, scan_rejected, seen, bad_files = scan(stage, files, args.skip_bad_files)
    for b in bad_files:
        print(f"shards: skipped bad file: {b['error']}")
    if not groups:
        raise BadInput(f"no usable samples in {len(files)} input files (rejected: {scan_rejected})")
    weights = stage_weights(stage, cfg, groups, args.all, args.config)
    if weights is None and args.num_samples is not None:
        raise UsageError(
            f"--num-samples needs mixing weights; stage {stage} is set to use every sample once "
            f"(set shards.stage{stage}.weights, or drop --all)"
        )
    counts = plan_counts({g: len(r) for g, r in groups.items()}, weights, args.num_samples)
    streams = plan_streams(groups, counts, seed)
    counter = TokenCounter(args.tokenizer)
    s3 = cfg.get("stage3") or {}
    mask = args.stage3_mask or s3.get("mask") or "official"
    if mask not in ("official", "answers"):
        raise UsageError(f"shards.stage3.mask is {mask!r}: expected official or answers")
    if stage == 3:

        def build(r, f):
            return build_stage3(
                r,
                f,
                s3.get("system") or "You are a helpful assistant.",
                float(s3.get("zh_instruction_fraction") or 0.0),
                mask,
            )
    else:

        def build(r, f):
            return build_stage12(r, f, stage)

    with own_output(out, stage="shards", inputs=[("--input", p) for p in args.input]):
        clean_stale_temps(out)
        book, build_rejected, reused = write_shards(
            streams, {n: len(v) for n, v in streams.items()}, stage, out, size, seed, build, counter
        )
        index = make_index(
            stage,
            seed,
            weights,
            groups,
            counts,
            book,
            scan_rejected,
            build_rejected,
            seen,
            counter,
            [str(f) for f in files],
            time.time() - t0,
        )
        index["bad_files"] = bad_files
        if stage == 3:
            index["loss_mask"] = mask  # official (finetune.py preprocess) or answers
        # decontaminate's per-benchmark table, when the inputs (as given, URLs too) are its output
        index.update(reports_for(getattr(args, "staged_from", {}).get("input") or args.input))
        (out / "index.json").write_text(json.dumps(index, ensure_ascii=False, indent=1, sort_keys=True))
        t = index["totals"]
        print(
            f"stage {stage}: {t['samples']} samples, {t['images']} images, {t['tokens']} tokens "
            f"({'exact' if counter.exact else 'estimated'}) in {len(book.shards)} shards "
            f"({reused} unchanged from the last run); "
            f"rejected {sum(index['rejected'].values())}, unused {index['inputs']['unused']}"
        )
        return 0
