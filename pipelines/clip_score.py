"""`qwenvl-data clip-score`: score every downloaded sample with an open_clip model, drop low scores.

    qwenvl-data clip-score --input OUT/download --output OUT/clip --model ViT-B-32 --checkpoint W.pt

A Ray Data job (pipelines/clip_stages.py): CPU tasks decode and preprocess each shard, an actor
pool embeds images and captions in batches (one GPU per actor when the cluster has GPUs), the driver
applies the per-source and per-language thresholds (configs/clip_score.yaml) to the small score
table, and CPU tasks write the kept samples.

Output, and why shards are rewritten rather than only a sidecar: the stage-1 shard writer and any
webdataset loader then read one directory of final samples with no join, while `scores.parquet`
(uid, clip_score, threshold, kept, reason for every input sample) keeps re-thresholding cheap: a
rerun with other thresholds reuses the scores when the model and checkpoint are the same.
  OUT/{000000}.tar + .parquet + .json   kept samples; each json adds clip_score and clip_model
  OUT/scores.parquet                     every sample, kept or not (schemas/clip_score.schema.json)
  OUT/clip.json                          counts per source and language, thresholds, seconds
"""

from __future__ import annotations

import json
import os
import tarfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from qwenvl_data import storage
from qwenvl_data.config import load_section
from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.outdir import own_output
from qwenvl_data.pipelines.clip_thresholds import apply_thresholds
from qwenvl_data.shards.loaders import write_loader_index
from qwenvl_data.shards.reader import scan

SCORES_META = {b"qwenvl.schema": b"clip_score"}


def add_arguments(p):
    p.add_argument("--input", required=True, help="download output directory (*.tar shards)")
    p.add_argument("--output", required=True, help="output directory for kept shards and scores")
    p.add_argument("--model", help="open_clip model name (default from config: ViT-B-32)")
    p.add_argument("--checkpoint", help="local weights file for --model")
    p.add_argument("--config", help="YAML file with a clip_score: section")
    p.add_argument("--ray-address", help="Ray cluster address; default: a local Ray started here")
    p.add_argument("--batch-size", type=int, help="images per inference batch")


def check_weights_file(path: str, key: str) -> None:
    """A weights file is checked here, not first inside a Ray actor (whose death would hide the reason):
    a zip-format torch file loads lazily (mmap, weights only), a .safetensors opens, a legacy torch file
    is a pickle stream; anything else is a usage error."""
    import zipfile

    try:
        if path.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(path, "pt"):
                return
        if zipfile.is_zipfile(path):
            import torch

            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            return
        with open(path, "rb") as f:
            legacy = f.read(1) == b"\x80"
    except Exception as e:  # noqa: BLE001 - whatever the loader says, the file is unusable
        raise UsageError(
            f"{key} {path}: not a loadable weights file ({type(e).__name__}: {' '.join(str(e).split())[:160]})"
        ) from None
    if not legacy:
        raise UsageError(f"{key} {path}: not a PyTorch (.pt/.bin) or .safetensors weights file")


def settings(args) -> dict:
    cfg = load_section("clip_score", args.config)
    for flag, key in (("model", "model"), ("checkpoint", "checkpoint"), ("batch_size", "batch_size")):
        if getattr(args, flag, None) is not None:
            cfg[key] = getattr(args, flag)
    if not cfg.get("checkpoint"):
        raise UsageError(
            f"no checkpoint for model {cfg['model']}: pass --checkpoint PATH (weights are never downloaded)"
        )
    for key in ("checkpoint", "zh_checkpoint"):
        if cfg.get(key) and not os.path.isfile(cfg[key]):
            raise UsageError(f"{key} {cfg[key]}: no such file")
        if cfg.get(key):
            check_weights_file(cfg[key], key)
    if cfg.get("zh_model") and not cfg.get("zh_checkpoint"):
        raise UsageError(f"zh_model {cfg['zh_model']} needs zh_checkpoint")
    from qwenvl_data.clip import model_config

    for key in ("model", "zh_model"):  # unknown names fail here, not inside a Ray actor
        if cfg.get(key):
            model_config(cfg[key])
    return cfg


def _abs(url: str) -> str:
    """Local paths absolute (Ray workers run elsewhere); URLs as given."""
    return str(url) if storage.is_remote(url) else str(Path(url).resolve())


def input_shards(input_dir: str) -> list[tuple[str, str]]:
    """(shard, path or URL) of every NNNNNN.tar under --input (a folder or any fsspec URL)."""
    root = _abs(input_dir)
    if not storage.isdir(root):
        raise UsageError(f"--input {input_dir}: not a directory")
    tars = [t for t in storage.glob(storage.join(root, "*.tar")) if not storage.name(t).startswith(".tmp-")]
    if not tars:
        raise UsageError(f"--input {input_dir}: no .tar shards")
    bad = [t for t in tars if not storage.name(t)[:-4].isdigit()]
    if bad:
        raise BadInput(f"{bad[0]}: shard names must be digits (000000.tar), as download writes them")
    for t in tars:  # a garbage or truncated file fails here, in one line, before any Ray work starts
        if not storage.is_remote(t):
            scan(t)  # the shard reader: truncation, and the sample count the download's _stats.json records
            continue
        try:
            with storage.open(t, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
                tar.next()
        except (tarfile.TarError, OSError) as e:
            raise BadInput(f"{t}: not a readable tar shard ({' '.join(str(e).split())[:160]})") from None
    return [(storage.name(t)[:-4], t) for t in tars]


def _labels(cfg: dict) -> dict:
    labels = {"default": f"{cfg['model']}@{Path(cfg['checkpoint']).name}"}
    labels["zh"] = f"{cfg['zh_model']}@{Path(cfg['zh_checkpoint']).name}" if cfg.get("zh_model") else labels["default"]
    return labels


def _start_ray(cfg: dict, address: str | None):
    """The one Ray start (pipelines/engines/ray_setup.py), sized by the config's `ray:` section."""
    import ray

    from qwenvl_data.pipelines.engines.ray_setup import start_ray

    local = cfg.get("ray") or {}
    start_ray(address, local.get("num_cpus"), local.get("object_store_memory"), progress=True)
    return ray


def _unwrap_errors(fn):
    """Run a Ray Data execution; a bad-input error raised in a worker comes back as that one line."""
    from qwenvl_data.pipelines.engines.ray_setup import one_line_errors

    with one_line_errors():
        return fn()


def score_all(cfg: dict, shards: list[tuple[str, str]], address: str | None) -> pa.Table:
    """Ray Data: read+preprocess (tasks) -> score (actor pool) -> the small score table."""
    from qwenvl_data.pipelines.clip_stages import SCORED, ScoreActor, read_and_preprocess

    ray = _start_ray(cfg, address)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    precision = cfg["precision"] if cfg["precision"] != "auto" else ("bf16" if gpus else "fp32")
    models = {"default": cfg["model"], "zh": cfg.get("zh_model")}
    checkpoints = {"default": cfg["checkpoint"], "zh": cfg.get("zh_checkpoint")}
    # CPU: one actor per cpus_per_actor cores (Ray fuses read+preprocess into the actors, so each
    # does the whole chain); GPU: one actor per GPU, fed by separate CPU read tasks.
    cpu_actors = max(1, int(ray.cluster_resources().get("CPU", 1)) // int(cfg["cpus_per_actor"]))
    actors = int(cfg.get("actors") or gpus or cpu_actors)
    ds = ray.data.from_items([{"shard": s, "path": p} for s, p in shards], override_num_blocks=len(shards))
    ds = ds.map_batches(
        read_and_preprocess,
        batch_size=1,
        batch_format="pyarrow",
        fn_kwargs={"models": models, "read_batch": int(cfg["read_batch"]), "max_pixels": 100_000_000},
    )
    ds = ds.map_batches(
        ScoreActor,
        batch_size=int(cfg["batch_size"]),
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        fn_constructor_kwargs={
            "models": models,
            "checkpoints": checkpoints,
            "device": "cuda" if gpus else "cpu",
            "precision": precision,
            "threads": int(cfg["cpus_per_actor"]),
        },
        num_gpus=1 if gpus else 0,
        num_cpus=0 if gpus else int(cfg["cpus_per_actor"]),
    )
    parts = [
        b for b in _unwrap_errors(lambda: list(ds.iter_batches(batch_format="pyarrow", batch_size=None))) if b.num_rows
    ]
    return pa.concat_tables([p.cast(SCORED) for p in parts]) if parts else SCORED.empty_table()


def load_or_score(cfg: dict, shards, output: str, address: str | None) -> pa.Table:
    """Reuse scores.parquet when it holds the same model's scores of the same shards (resume)."""
    path = storage.join(output, "scores.parquet")
    if storage.exists(path):
        old = storage.read_parquet(path)
        meta = (old.schema.metadata or {}).get(b"qwenvl.clip_models", b"{}")
        same_shards = set(old["shard"].to_pylist()) == {s for s, _ in shards} if old.num_rows else False
        if json.loads(meta) == _labels(cfg) and same_shards:
            # Reasons other than the threshold's own are scoring errors (decode_error, no_caption...).
            error = pc.if_else(pc.equal(old["reason"], "clip_score"), pa.scalar(None, pa.string()), old["reason"])
            return old.select(["shard", "key", "uid", "source", "lang", "clip_score"]).append_column("error", error)
    return score_all(cfg, shards, address)


def write_shards(cfg: dict, shards, scores: pa.Table, output: str, address: str | None) -> int:
    from qwenvl_data.pipelines.clip_stages import write_kept_shard

    kept = scores.filter(scores["kept"])
    items = []
    for shard, path in shards:
        rows = kept.filter(pc.equal(kept["shard"], shard))
        roles = ["zh" if lang == "zh" and cfg.get("zh_model") else "default" for lang in rows["lang"].to_pylist()]
        items.append(
            {
                "shard": shard,
                "path": path,
                "keys": rows["key"].to_pylist(),
                "scores": rows["clip_score"].to_pylist(),
                "roles": roles,
            }
        )
    ray = _start_ray(cfg, address)
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(
        write_kept_shard, batch_size=1, batch_format="pyarrow", fn_kwargs={"output": output, "labels": _labels(cfg)}
    )
    _unwrap_errors(ds.materialize)
    return sum(storage.read_json(storage.join(output, f"{s}.json"))["count"] for s, _ in shards)


def expected_samples(input_dir: str, shards) -> int | None:
    """Samples the download wrote (its sidecar parquets), to check that nothing was lost."""
    total = 0
    for shard, _ in shards:
        side = storage.join(input_dir, f"{shard}.parquet")
        if not storage.exists(side):
            return None
        status = storage.read_parquet(side, columns=["status"])["status"]
        total += int(pc.sum(pc.equal(status, "success")).as_py() or 0)
    return total


def run(args) -> int:
    cfg = settings(args)
    shards = input_shards(args.input)
    with own_output(args.output, stage="clip-score", inputs=[("--input", args.input)]):
        return _score(args, cfg, shards)


def _score(args, cfg: dict, shards) -> int:
    output = _abs(args.output)
    start = time.time()
    raw = load_or_score(cfg, shards, output, args.ray_address)
    expected = expected_samples(args.input, shards)
    if expected is not None and raw.num_rows != expected:
        raise BadInput(
            f"{args.input}: scored {raw.num_rows} samples but the shards' parquets list {expected} successes"
        )
    scores = apply_thresholds(raw, cfg["thresholds"])
    meta = {**SCORES_META, b"qwenvl.clip_models": json.dumps(_labels(cfg)).encode()}
    storage.write_parquet(scores.replace_schema_metadata(meta), storage.join(output, "scores.parquet"))
    n_kept = int(pc.sum(scores["kept"]).as_py() or 0)
    written = write_shards(cfg, shards, scores, output, args.ray_address)
    if written != n_kept:
        raise BadInput(f"{output}: the shards hold {written} samples but {n_kept} were kept")
    if not storage.is_remote(output):
        write_loader_index(output)  # wids-index.json (qwenvl_data/shards/loaders.py)
    summary = summarise(scores, cfg, time.time() - start, args.input)
    storage.write_json(storage.join(output, "clip.json"), summary, indent=1)
    dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items()) or "none"
    print(
        f"clip-score: {n_kept}/{scores.num_rows} samples kept under {output}; dropped: {dropped}; "
        f"{summary['seconds']} s"
    )
    return 0


def summarise(scores: pa.Table, cfg: dict, seconds: float, input_dir: str) -> dict:
    groups = scores.group_by(["source", "lang", "reason"]).aggregate([([], "count_all")]).to_pylist()
    sources: dict = {}
    for g in groups:
        s = sources.setdefault(g["source"], {"in": 0, "kept": 0, "dropped": {}, "kept_by_lang": {}})
        s["in"] += g["count_all"]
        if g["reason"] is None:
            s["kept"] += g["count_all"]
            s["kept_by_lang"][g["lang"]] = s["kept_by_lang"].get(g["lang"], 0) + g["count_all"]
        else:
            s["dropped"][g["reason"]] = s["dropped"].get(g["reason"], 0) + g["count_all"]
    dropped: dict = {}
    for s in sources.values():
        for r, n in s["dropped"].items():
            dropped[r] = dropped.get(r, 0) + n
    thresholds = scores.group_by(["source", "lang"]).aggregate([("threshold", "max")]).to_pylist()
    return {
        "stage": "clip-score",
        "input": _abs(input_dir),
        "models": _labels(cfg),
        "in": scores.num_rows,
        "kept": int(pc.sum(scores["kept"]).as_py() or 0),
        "dropped": dropped,
        "sources": sources,
        "thresholds": thresholds,
        "seconds": round(seconds, 2),
    }
