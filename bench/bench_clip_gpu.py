"""CLIP scoring throughput on one GPU: ViT-B-32 and ViT-L-14, bf16, batch 256, random weights.

    .venv/bin/python bench/bench_clip_gpu.py [--models ViT-B-32 ViT-L-14] [--batch 256] [--iters 10]

Two numbers per model:
- model: image + text towers on tensors already on the GPU (the ceiling);
- scorer: `ClipScorer.scores` on host float32 arrays, as the clip-score actor calls it (adds the
  host-to-device copy of the preprocessed pixels and tokenisation).
Weights are random (nothing is downloaded): the speed of a network does not depend on its weights.
Without CUDA it prints a note and exits 0. Anchors: Data-Juicer ~150 images/s (ViT-B/32, its issue
#199); NeMo Curator's CI floor 900 images/s on 8 GPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def timed(fn, iters: int) -> float:
    import torch

    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / iters


def bench(name: str, batch: int, iters: int) -> dict:
    import torch

    from qwenvl_data import clip

    scorer = clip.ClipScorer(name, None, device="cuda", precision="bf16", allow_random=True)
    size = clip.image_size(name)
    captions = [f"a photo of object number {i} on a table" for i in range(batch)]
    pixels_host = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
    pixels = torch.from_numpy(pixels_host).to("cuda", torch.bfloat16)
    tokens = scorer.tokenizer(captions).to("cuda")

    def model_only():
        with torch.inference_mode():
            img = scorer.model.encode_image(pixels, normalize=True)
            txt = scorer.model.encode_text(tokens, normalize=True)
            return (img * txt).sum(-1)

    model_s = timed(model_only, iters)
    scorer_s = timed(lambda: scorer.scores(pixels_host, captions), iters)
    return {
        "model": name,
        "batch": batch,
        "precision": "bf16",
        "device": torch.cuda.get_device_name(0),
        "model_images_per_s": round(batch / model_s, 1),
        "scorer_images_per_s": round(batch / scorer_s, 1),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["ViT-B-32", "ViT-L-14"])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--out", default="bench_out/clip_gpu.json")
    a = p.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("bench_clip_gpu: no CUDA device here; run it on a GPU machine (nothing measured)")
        return 0
    results = [bench(m, a.batch, a.iters) for m in a.models]
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=1)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
