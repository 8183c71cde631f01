"""CLIP scoring on CPU with the tiny model: images/s per core, and the pipeline's overhead.

    .venv/bin/python bench/bench_clip.py --images 512 --out bench_out/clip.json

Three numbers on the same images (JPEGs of 256x256 in download-shaped shards):
- forward: the model alone (image + text towers) on already preprocessed tensors, 1 torch thread;
- preprocess: decode + the model's eval transform, 1 core;
- end to end: `qwenvl-data clip-score` (Ray Data on a local 2-CPU Ray started beforehand, so its
  start-up is reported apart), from shards in to kept shards + scores.parquet out.
The overhead ratio is end-to-end wall time / forward time: how much the job costs beyond the model.
The job also runs on 4x the images; the difference gives the steady-state rate (and its ratio to the
forward alone) apart from the fixed start-up of actors (torch import, model load).
With the tiny model, decode dominates; with ViT-B-32 and up the forward does (see bench_clip_gpu.py).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_io import write_result
from PIL import Image

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_shards(root: Path, n: int, per_shard: int = 256) -> list[bytes]:
    from qwenvl_data.shards import ShardWriter

    rng = np.random.default_rng(0)
    images = []
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    for _ in range(n):
        a, b = rng.uniform(0.005, 0.05, 2)
        rgb = np.stack([np.sin(xx * a), np.cos(yy * b), np.sin((xx + yy) * a)], -1) * 127 + 128
        buf = io.BytesIO()
        Image.fromarray(rgb.astype(np.uint8)).save(buf, "JPEG", quality=90)
        images.append(buf.getvalue())
    for s in range(0, n, per_shard):
        with ShardWriter(root, s // per_shard, prefix="") as w:
            for i in range(s, min(n, s + per_shard)):
                key = f"{s // per_shard:06d}{i:05d}"
                meta = {
                    "schema": "sample",
                    "uid": f"b:{i}",
                    "source": "laion",
                    "lang": "en",
                    "caption": f"a picture number {i}",
                    "status": "success",
                    "key": key,
                }
                w.add(key, {"jpg": images[i], "txt": meta["caption"], "json": meta}, {"key": key, "status": "success"})
            w.close()
    return images


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--out", default="bench_out/clip.json")
    a = p.parse_args()

    import torch

    from qwenvl_data import clip
    from qwenvl_data.images import decode_rgb

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench-clip-"))
    try:
        images = make_shards(work / "dl", a.images)
        ckpt = clip.save_random_checkpoint(clip.TINY, work / "tiny.pt")
        captions = [f"a picture number {i}" for i in range(a.images)]
        pp = clip.image_preprocess(clip.TINY)
        t = time.perf_counter()
        pixels = np.stack([pp(decode_rgb(b, None)).numpy() for b in images])
        preprocess_s = time.perf_counter() - t
        scorer = clip.ClipScorer(clip.TINY, str(ckpt))
        scorer.scores(pixels[:8], captions[:8])  # warm-up
        t = time.perf_counter()
        for s in range(0, a.images, a.batch):
            scorer.scores(pixels[s : s + a.batch], captions[s : s + a.batch])
        forward_s = time.perf_counter() - t

        import ray

        t = time.perf_counter()
        ray.init(num_cpus=2, object_store_memory=200 * 1024 * 1024, include_dashboard=False)
        ray_init_s = time.perf_counter() - t
        cfg = work / "cfg.yaml"
        cfg.write_text(f"clip_score:\n  batch_size: {a.batch}\n  read_batch: 64\n  thresholds: {{default: 'q0.3'}}\n")
        from qwenvl_data.pipelines import cli

        def end_to_end(folder: Path) -> float:
            t = time.perf_counter()
            code = cli.main(
                [
                    "clip-score",
                    "--input",
                    str(folder),
                    "--output",
                    str(folder) + "-clip",
                    "--model",
                    clip.TINY,
                    "--checkpoint",
                    str(ckpt),
                    "--config",
                    str(cfg),
                ]
            )
            assert code == 0
            return time.perf_counter() - t

        e2e_s = end_to_end(work / "dl")
        # The same job on 4x the images: the difference is the steady-state cost, the rest is the
        # fixed cost of starting actors (torch + model load) and tasks.
        make_shards(work / "dl4", 4 * a.images)
        e2e4_s = end_to_end(work / "dl4")
        marginal = 3 * a.images / max(e2e4_s - e2e_s, 1e-9)
        ray.shutdown()
        result = {
            "images": a.images,
            "model": clip.TINY,
            "batch": a.batch,
            "forward_images_per_s_1core": round(a.images / forward_s, 1),
            "preprocess_images_per_s_1core": round(a.images / preprocess_s, 1),
            "end_to_end_images_per_s": round(a.images / e2e_s, 1),
            "end_to_end_images_per_s_per_core": round(a.images / e2e_s / 2, 1),
            "overhead_ratio_e2e_over_forward": round(e2e_s / forward_s, 2),
            "steady_images_per_s": round(marginal, 1),
            "steady_images_per_s_per_core": round(marginal / 2, 1),
            "steady_overhead_ratio": round((1 / marginal) / (forward_s / a.images), 2),
            "fixed_startup_s": round(e2e_s - a.images / marginal, 2),
            "ray_init_s": round(ray_init_s, 2),
            "end_to_end_s": round(e2e_s, 2),
            "forward_s": round(forward_s, 3),
            "cpus": 2,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_result(a.out, result)


if __name__ == "__main__":
    main()
