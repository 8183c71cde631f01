"""The three Ray Data stages of clip-score; module-level so Ray can ship them to workers.

1. `read_and_preprocess` (CPU tasks, one input shard per call): decode each sample's image safely,
   apply the model's eval transform, and yield blocks of `read_batch` rows holding float16 pixels,
   so no block grows with the shard.
2. `ScoreActor` (actor pool; one GPU each when the cluster has GPUs): batched image and caption
   embeddings, cosine similarity. Pixels are dropped here; only small score rows travel on.
3. `write_kept_shard` (CPU tasks, one output shard per call): copy the kept samples of one input
   shard into an output shard (ShardWriter: atomic, skipped when already done) with `clip_score`
   and `clip_model` added to each sample json.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tarfile

import numpy as np
import pyarrow as pa

from qwenvl_data import clip, storage
from qwenvl_data.errors import BadInput
from qwenvl_data.images import ImageRejected, decode_rgb
from qwenvl_data.shards import ShardWriter, iter_tar_samples, shard_done
from qwenvl_data.vocab import LANGUAGES, is_image_ext

SCORED = pa.schema(
    [
        ("shard", pa.string()),
        ("key", pa.string()),
        ("uid", pa.string()),
        ("source", pa.string()),
        ("lang", pa.string()),
        ("clip_score", pa.float32()),
        ("error", pa.string()),
    ]
)


@functools.lru_cache(maxsize=4)
def _transform(name: str):
    return clip.image_preprocess(name)


def _sample_fields(key: str, files: dict) -> tuple[dict, bytes | None]:
    try:
        meta = json.loads(files["json"]) if "json" in files else {}
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    image = next((files[e] for e in sorted(files) if e != "json" and is_image_ext(e)), None)
    caption = files["txt"].decode("utf-8", "replace") if "txt" in files else meta.get("caption")

    def text(value, default):  # a hostile json's list/number/object never reaches the string columns
        return value if isinstance(value, str) and value else default

    return {
        "key": key,
        "uid": text(meta.get("uid"), key),
        "source": text(meta.get("source"), "unknown"),
        "lang": meta.get("lang") if meta.get("lang") in LANGUAGES else None,
        "caption": text(caption, ""),
    }, image


def _samples(path: str):
    """iter_tar_samples (which refuses a truncated tar or one short of its stats sidecar's count), with an
    unreadable tar reported as bad input naming the file; a shard on an
    object store is fetched to a local temp file first (the reader seeks)."""
    try:
        with storage.local_copy(path) as local:
            yield from iter_tar_samples(local)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BadInput(f"{path}: not a readable tar shard ({' '.join(str(e).split())[:160]})") from None


def read_and_preprocess(batch: pa.Table, models: dict, read_batch: int, max_pixels: int | None):
    """One row (shard, path) in; blocks of preprocessed samples out."""
    for shard, path in zip(batch["shard"].to_pylist(), batch["path"].to_pylist()):
        rows: list[dict] = []
        for key, files in _samples(path):
            row, image = _sample_fields(key, files)
            row["shard"] = shard
            row["model"] = "zh" if row["lang"] == "zh" and models.get("zh") else "default"
            row["pixels"], row["error"] = None, None
            if image is None:
                row["error"] = "no_image"
            elif row["lang"] is None:  # the shards reject it as unknown_lang too; never guess "en"
                row["error"] = "unknown_lang"
            elif not row["caption"]:
                row["error"] = "no_caption"
            else:
                try:
                    tensor = _transform(models[row["model"]])(decode_rgb(image, max_pixels))
                    row["pixels"] = tensor.numpy().astype(np.float16).tobytes()
                except ImageRejected as e:
                    row["error"] = e.reason
            rows.append(row)
            if len(rows) == read_batch:
                yield pa.Table.from_pylist(rows)
                rows = []
        if rows:
            yield pa.Table.from_pylist(rows)


class ScoreActor:
    """Holds the model(s) for the life of the actor; scores one batch per call."""

    def __init__(self, models: dict, checkpoints: dict, device: str, precision: str, threads: int):
        import torch

        if device == "cpu":
            torch.set_num_threads(max(1, threads))
        self.scorers = {}
        for role, name in models.items():
            if name:  # a checkpoint on an object store is fetched to a temp file for the load
                with storage.local_copy(checkpoints[role]) as path:
                    self.scorers[role] = clip.ClipScorer(name, path, device, precision)
        self.sizes = {role: clip.image_size(name) for role, name in models.items() if name}

    def __call__(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        scores = np.full(n, np.nan, dtype=np.float32)
        roles = batch["model"].to_pylist()
        pixels = batch["pixels"].to_pylist()
        captions = batch["caption"].to_pylist()
        for role, scorer in self.scorers.items():
            idx = [i for i in range(n) if roles[i] == role and pixels[i] is not None]
            if not idx:
                continue
            s = self.sizes[role]
            arr = np.frombuffer(b"".join(pixels[i] for i in idx), np.float16).reshape(len(idx), 3, s, s)
            scores[idx] = scorer.scores(arr.astype(np.float32), [captions[i] for i in idx])
        out = {c: batch[c] for c in ("shard", "key", "uid", "source", "lang", "error")}
        out["clip_score"] = pa.array(scores, pa.float32(), mask=np.isnan(scores))
        return pa.table(out).select(SCORED.names).cast(SCORED)


def _kept_digest(output: str, shard: str) -> str | None:
    try:
        return storage.read_json(storage.join(output, f"{shard}.json")).get("kept_keys_sha256")
    except (OSError, ValueError):
        return None


def write_kept_shard(batch: pa.Table, output: str, labels: dict) -> pa.Table:
    """Rows (shard, path, keys, scores, roles) in: the kept samples of each shard written out."""
    written = []
    for row in batch.to_pylist():
        sid = int(row["shard"])
        digest = hashlib.sha256("\n".join(sorted(row["keys"])).encode()).hexdigest()
        if shard_done(output, sid, prefix="") and _kept_digest(output, row["shard"]) == digest:
            written.append({"shard": row["shard"], "written": 0})
            continue  # finished by an earlier run with the same kept samples (resume)
        kept = {k: (s, r) for k, s, r in zip(row["keys"], row["scores"], row["roles"])}
        with ShardWriter(output, sid, prefix="") as w:
            for key, files in _samples(row["path"]):
                if key not in kept:
                    continue
                score, role = kept[key]
                meta = json.loads(files["json"])
                meta.update(clip_score=round(float(score), 6), clip_model=labels[role])
                files = {**files, "json": meta}
                w.add(
                    key,
                    files,
                    {
                        "key": key,
                        "uid": meta.get("uid"),
                        "source": meta.get("source"),
                        "lang": meta.get("lang"),
                        "caption": meta.get("caption"),
                        "clip_score": meta["clip_score"],
                        "width": meta.get("width"),
                        "height": meta.get("height"),
                        "sha256": meta.get("sha256"),
                    },
                )
            w.close({"shard": row["shard"], "count": w.count, "in_shard": row["path"], "kept_keys_sha256": digest})
        written.append({"shard": row["shard"], "written": w.count})
    return pa.Table.from_pylist(written)
