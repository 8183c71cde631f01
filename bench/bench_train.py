"""`make bench-train`: CPU training throughput of the tiny model and the stage loader's speed.

    python bench/bench_train.py --out bench_out/train [--steps 10] [--samples 256]

Reports (JSON on stdout, one line per measurement):
- train: tokens/s and samples/s of stage-1 and stage-3 steps (forward + backward + AdamW), tiny config.
- loader: samples/s per worker of the stage-1 pipeline (tar read, JPEG decode, resize, tokenize, pad)
  against the floor: decoding + resizing the same JPEGs alone in one loop.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from qwenvl_data.model.config import load_config  # noqa: E402
from qwenvl_data.model.data import StageLoader, load_image, normalise  # noqa: E402
from qwenvl_data.model.fixtures import SAMPLE_TEXT, train_tokenizer, write_stage_shards  # noqa: E402
from qwenvl_data.model.qwenvl import QwenVL  # noqa: E402
from qwenvl_data.model.tokenizer import TextEncoder, load_tokenizer  # noqa: E402
from qwenvl_data.shards import iter_tar_samples  # noqa: E402


def bench_train(encoder, data, stage, image_size, steps, batch_size):
    model = QwenVL(load_config("tiny"), image_size, len(encoder.tok), encoder.pad_img)
    model.set_stage(stage)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, betas=(0.9, 0.98), eps=1e-6)
    batches = StageLoader(data, encoder, stage, image_size, 2048, batch_size, shuffle_buffer=64).batches()
    pre = [next(batches)[0] for _ in range(steps + 1)]  # loader time is measured separately
    tokens = samples = 0
    for i, b in enumerate(pre):
        if i == 1:
            t0 = time.perf_counter()
        loss = model(b["input_ids"], normalise(b["images"]), b["labels"])
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i >= 1:
            tokens, samples = tokens + b["input_ids"].numel(), samples + b["samples"]
    dt = time.perf_counter() - t0
    return {
        "bench": "train",
        "stage": stage,
        "image_size": image_size,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "tokens_per_s": round(tokens / dt),
        "samples_per_s": round(samples / dt, 1),
    }


def bench_loader(encoder, data, workers, samples):
    loader = StageLoader(data, encoder, 1, 224, 512, 16, workers=workers, shuffle_buffer=64)
    it = loader.batches()
    next(it)  # start-up (worker spawn, imports) is not throughput
    n, t0 = 0, time.perf_counter()
    while n < samples:
        n += next(it)[0]["samples"]
    dt = time.perf_counter() - t0
    return {
        "bench": "loader",
        "workers": max(1, workers),
        "processes": "main" if workers == 0 else "workers",
        "samples_per_s": round(n / dt, 1),
        "samples_per_s_per_worker": round(n / dt / max(1, workers), 1),
    }


def bench_decode_floor(data, samples):
    jpgs = [f["img0.jpg"] for tar in sorted(Path(data).glob("*.tar")) for _, f in iter_tar_samples(tar)]
    t0, n = time.perf_counter(), 0
    while n < samples:
        for j in jpgs:
            load_image(j, 224)
            n += 1
    dt = time.perf_counter() - t0
    size = Image.open(io.BytesIO(jpgs[0])).size
    return {"bench": "decode_floor", "samples_per_s": round(n / dt, 1), "jpeg_size": size, "to": 224}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench_out/train")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--samples", type=int, default=512)
    a = ap.parse_args(argv)
    out = Path(a.out)
    tok_dir = out / "tokenizer"
    if not tok_dir.exists():
        train_tokenizer(SAMPLE_TEXT * 20, tok_dir, 512)
    encoder = TextEncoder(load_tokenizer(tok_dir))
    for stage in (1, 3):
        if not (out / f"stage{stage}").exists():
            write_stage_shards(out / f"stage{stage}", stage, 256, shards=4)
    results = [
        bench_train(encoder, out / "stage1", 1, 224, a.steps, 8),
        bench_train(encoder, out / "stage3", 3, 448, a.steps, 4),
        bench_decode_floor(out / "stage1", a.samples),
    ]
    for w in (0, 1, 2):
        results.append(bench_loader(encoder, out / "stage1", w, a.samples))
    for r in results:
        print(json.dumps(r))
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
