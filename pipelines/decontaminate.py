"""`qwenvl-data decontaminate --input DIR... --output DIR --eval-root DATA`: drop benchmark images and questions.

    qwenvl-data decontaminate --input out/tasks/* out/clip --output out/decontam --eval-root data

Reads the evaluation splits named in configs/decontaminate.yaml (paths under --eval-root), then copies
every input shard folder to `OUT/<folder name>/`, leaving out each sample whose image is an evaluation
image (same dataset id, or a perceptual hash within the configured Hamming distance) or whose question
is an evaluation question (qwenvl_data/decontam.py). Writes `OUT/decontamination.json` (per benchmark:
training samples removed from which source, how they matched; per source: in, out, removed; hashing
speed), which `shards` copies into its index.json, and `OUT/decontamination-removed.jsonl` (one line
per removed sample). Per source: in == out + removed. --input, --eval-root and --output may be `s3://`
(any fsspec URL): staged through a local temp folder (qwenvl_data/staging.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq

from qwenvl_data.config import load_section
from qwenvl_data.decontam import HASH_SIZES
from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.outdir import own_output, refuse_in_progress
from qwenvl_data.shards import ShardWriter, iter_tar_samples
from qwenvl_data.shards.loaders import WIDS_INDEX, write_loader_index
from qwenvl_data.staging import staged_args
from qwenvl_data.tasks.benchmarks import load_benchmarks
from qwenvl_data.vocab import is_image_ext

REPORT = "decontamination.json"
_SHARD = re.compile(r"^(?:(?P<prefix>.*)-)?(?P<id>\d+)$")


def add_arguments(p):
    p.add_argument("--input", nargs="+", required=True, metavar="DIR", help="shard folders: task shards, pair shards")
    p.add_argument("--output", required=True, help="folder for the filtered copies (one subfolder per input)")
    p.add_argument("--eval-root", required=True, help="folder holding the benchmarks' datasets (configured paths)")
    p.add_argument("--config", help="YAML with a 'decontaminate:' section overriding configs/decontaminate.yaml")


def _check_folders(inputs: list[Path], out: Path):
    names = [p.name for p in inputs]
    for p in inputs:
        if not p.is_dir():
            raise UsageError(f"{p}: no such shard folder (--input)")
        refuse_in_progress(p)  # a tasks / clip-score run that did not finish is not a training source yet
        if names.count(p.name) > 1:
            raise UsageError(f"two inputs are named {p.name!r}: each becomes OUT/{p.name}, rename one")
    ours = (out / REPORT).exists() or (out / "decontamination-removed.jsonl").exists()
    if out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".qwenvl.")) and not ours:
        raise UsageError(f"{out}: not empty and not a previous decontaminate output; choose an empty folder")


def _sample_parts(files: dict):
    try:
        meta = json.loads(files.get("json") or b"{}")
    except ValueError:
        meta = {}
    blob = next((v for k, v in files.items() if is_image_ext(k)), None)
    return (meta if isinstance(meta, dict) else {}), blob


def filter_shard(tar: Path, out_dir: Path, source: str, ev, removed_log, report: dict) -> tuple[int, int]:
    """Copy one shard without its contaminated samples; (in, removed)."""
    m = _SHARD.match(tar.stem)
    prefix, shard_id = (m.group("prefix") or "", int(m.group("id"))) if m else (tar.stem, 0)
    try:
        samples = list(iter_tar_samples(tar))
    except Exception as e:  # noqa: BLE001 - a broken tar is bad input, whatever tarfile raises
        raise BadInput(f"{tar}: not a readable tar shard ({type(e).__name__}: {e})") from None
    parts = [_sample_parts(f) for _, f in samples]
    hits = ev.match([p[0] for p in parts], [p[1] for p in parts])
    side = tar.with_suffix(".parquet")
    try:
        table = pq.read_table(side) if side.exists() else None
    except Exception as e:  # noqa: BLE001 - an unreadable sidecar is bad input, whatever arrow raises
        raise BadInput(f"{side}: not a readable sidecar parquet ({type(e).__name__}: {e})") from None
    rows = (
        {str(r.get("key")): r for r in table.to_pylist()} if table is not None and "key" in table.column_names else {}
    )
    writer = ShardWriter(out_dir, shard_id, prefix, table.schema if rows else None)
    by_task: dict[str, dict[str, int]] = {}
    try:
        for (key, files), (meta, _), hit in zip(samples, parts, hits):
            if hit:
                removed_log.write(
                    json.dumps(
                        {"source": source, "shard": tar.name, "key": key, "uid": meta.get("uid"), "benchmarks": hit},
                        ensure_ascii=False,
                    )
                    + "\n"
                )
                for bench, how in hit.items():
                    b = report[bench]
                    b["removed"][source] = b["removed"].get(source, 0) + 1
                    b["by"][how] = b["by"].get(how, 0) + 1
                continue
            writer.add(key, files, rows.get(key) if rows else {"key": key, "uid": meta.get("uid")})
            if meta.get("task"):
                per = by_task.setdefault(meta["task"], {})
                per[meta.get("lang")] = per.get(meta.get("lang"), 0) + 1
        stats_path = tar.with_suffix(".json")
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        stats = stats if isinstance(stats, dict) else {}
        stats.update({"shard": tar.stem, "count": writer.count, "decontaminated_from": str(tar)})
        if "by_task" in stats:
            stats["by_task"] = by_task
        writer.close(stats)
    except BaseException:
        writer.abort()
        raise
    if writer.name != tar.stem:  # img2dataset's 5-digit names (00000.tar) stay as they were
        for ext in (".tar", ".parquet", ".json"):
            os.replace(out_dir / f"{writer.name}{ext}", out_dir / f"{tar.stem}{ext}")
    side = tar.with_name(f"{tar.stem}_stats.json")  # img2dataset's own stats: its count is checked by readers
    if side.exists():
        try:
            img_stats = json.loads(side.read_text(encoding="utf-8"))
        except ValueError:
            img_stats = None
        if isinstance(img_stats, dict):
            img_stats.update({"successes": writer.count, "decontaminated_removed": len(samples) - writer.count})
            (out_dir / side.name).write_text(json.dumps(img_stats, indent=1, sort_keys=True))
    return len(samples), len(samples) - writer.count


def run(args) -> int:
    with staged_args(args, stage="decontaminate", inputs=("input", "eval_root")) as a:
        return _run(a)


def _run(args) -> int:
    t0 = time.time()
    cfg = load_section("decontaminate", args.config)
    method, dist = cfg["hash"]["method"], cfg["hash"]["max_distance"]
    if method not in HASH_SIZES or not isinstance(dist, int) or isinstance(dist, bool) or not 0 <= dist <= 64:
        raise UsageError(
            f"decontaminate.hash: method must be one of {', '.join(HASH_SIZES)} and max_distance an "
            f"integer 0..64, got {method!r}, {dist!r}"
        )
    inputs, out, root = [Path(p) for p in args.input], Path(args.output), Path(args.eval_root)
    if not root.is_dir():  # the copies are still made (and the report says so): make shards runs without it
        print(f"decontaminate: --eval-root {root} not found: no benchmark is checked")
    _check_folders(inputs, out)
    with own_output(out, stage="decontaminate", inputs=[("--input", p) for p in inputs]):
        ev, summary = load_benchmarks(cfg.get("benchmarks") or {}, root, method, dist, cfg.get("max_pixels"))
        report = {name: {**info, "removed": {}, "by": {}} for name, info in summary.items()}
        sources: dict[str, dict[str, int]] = {}
        out.mkdir(parents=True, exist_ok=True)
        (out / REPORT).unlink(missing_ok=True)  # written last: its presence marks a finished run
        with open(out / "decontamination-removed.jsonl", "w", encoding="utf-8") as log:
            for src in inputs:
                dest = out / src.name
                if dest.exists():
                    shutil.rmtree(dest)
                dest.mkdir(parents=True)
                n_in = n_removed = 0
                for tar in sorted(q for q in src.rglob("*.tar") if not q.name.startswith(".tmp-")):
                    (dest / tar.parent.relative_to(src)).mkdir(parents=True, exist_ok=True)
                    a, b = filter_shard(tar, dest / tar.parent.relative_to(src), src.name, ev, log, report)
                    n_in, n_removed = n_in + a, n_removed + b
                for f in sorted(src.rglob("*")):  # per-dataset stats and rejects travel along, unchanged
                    to = dest / f.relative_to(src)
                    if (
                        f.is_file()
                        and f.suffix in (".json", ".jsonl")
                        and not to.exists()
                        and f.name != WIDS_INDEX
                        and not f.with_suffix(".tar").exists()
                        and not f.name.startswith(".qwenvl")
                    ):
                        to.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(f, to)
                for folder in sorted({t.parent for t in dest.rglob("*.tar")}):
                    write_loader_index(folder)  # the loaders' index and card describe the filtered shards
                sources[src.name] = {"in": n_in, "out": n_in - n_removed, "removed": n_removed}
        _write_report(out, method, dist, root, report, sources, ev, t0)
    return 0


def _write_report(out: Path, method: str, dist: int, root: Path, report: dict, sources: dict, ev, t0: float):
    totals = {k: sum(s[k] for s in sources.values()) for k in ("in", "out", "removed")}
    speed = ev.hashed / ev.hash_seconds if ev.hash_seconds else None
    doc = {
        "schema": "decontamination",
        "stage": "decontaminate",
        "hash": {"method": method, "max_distance": dist},
        "eval_root": str(root),
        "benchmarks": report,
        "sources": sources,
        "totals": totals,
        "hashing": {
            "training_images_hashed": ev.hashed,
            "seconds": round(ev.hash_seconds, 3),
            "images_per_second_per_core": round(speed, 1) if speed else None,
        },
        "seconds": round(time.time() - t0, 3),
    }
    (out / REPORT).write_text(json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True))
    print(table(doc))


def table(doc: dict) -> str:
    """The report as a plain-text table: benchmark, evaluation images, removed per source."""
    lines = [f"{'benchmark':<10} {'eval imgs':>9} {'eval qs':>8} {'removed':>8}  from (id/question/hash)"]
    for name, b in sorted(doc["benchmarks"].items()):
        src = ", ".join(f"{k} {v}" for k, v in sorted(b["removed"].items())) or "-"
        how = "/".join(str(b["by"].get(k, 0)) for k in ("id", "question", "hash"))
        skip = f"  (skipped: {'; '.join(b['skipped'])})" if b["skipped"] else ""
        lines.append(
            f"{name:<10} {b['eval_images']:>9} {b['eval_questions']:>8} {sum(b['removed'].values()):>8}"
            f"  {src} ({how}){skip}"
        )
    t, h = doc["totals"], doc["hashing"]
    lines.append(
        f"total: {t['in']} in, {t['out']} kept, {t['removed']} removed; {h['training_images_hashed']} "
        f"images hashed at {h['images_per_second_per_core']} per second (one core)"
    )
    return "\n".join(lines)
