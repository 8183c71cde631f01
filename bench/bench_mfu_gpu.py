"""Model FLOPs utilisation of a stage-2 training step of the ~1B config (ViT-L/14 + 16-layer Qwen2) on one GPU.

    python bench/bench_mfu_gpu.py [--config 1b] [--batch-size 4] [--seq-len 2048] [--images-per-row 4]
                                  [--steps 20] [--compile]

Runs stand-alone on a CUDA machine with the repo installed (no data, no weights: random tokens and
images of the real shapes; the loader is benched by bench_train.py). bf16 autocast, fused AdamW, all
parameters trained (stage 2, 448 px). MFU = model FLOPs / step time / the GPU's dense bf16 peak, with
model FLOPs = 6 x params x tokens (LLM and ViT) + the attention matmuls (causal LLM, full ViT).
Target: >= 40% on an H100. Exits 0 with a note when there is no GPU. About 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

PEAK_BF16 = {
    "H100": 989e12,
    "H200": 989e12,
    "H800": 989e12,
    "A100": 312e12,
    "A800": 312e12,
    "L40S": 362e12,
    "B200": 2250e12,
}


def peak_flops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="1b")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--images-per-row", type=int, default=4)
    ap.add_argument("--image-size", type=int, default=448)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup-steps", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="torch.compile the ViT blocks and LLM layers")
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print(json.dumps({"bench": "mfu", "skipped": "no CUDA device on this machine"}))
        return 0
    from qwenvl_data.model.config import load_config
    from qwenvl_data.model.data import normalise
    from qwenvl_data.model.qwenvl import QwenVL

    torch.backends.cuda.matmul.allow_tf32 = True
    dev = torch.device("cuda")
    cfg = load_config(a.config)
    vocab = cfg.llm.vocab_size or 151_936
    pad_id = vocab - 1
    model = QwenVL(cfg, a.image_size, vocab, pad_id).to(dev)
    model.set_stage(2)
    if a.compile:
        for block in model.visual.transformer.resblocks:
            block.compile()
        for layer in model.llm.model.layers:
            layer.compile()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.05, fused=True)

    q, b, t, k = cfg.adapter.num_queries, a.batch_size, a.seq_len, a.images_per_row
    if k * (q + 2) > t:
        raise SystemExit(f"{k} images x {q + 2} tokens do not fit a {t}-token row")
    g = torch.Generator(device=dev).manual_seed(0)
    ids = torch.randint(0, vocab - 16, (b, t), device=dev, generator=g)
    for r in range(b):  # k images per row, spaced out, like a packed stage-2 row
        for i in range(k):
            start = i * (t // k)
            ids[r, start : start + q] = pad_id
    labels = ids.masked_fill(ids == pad_id, -100)
    images = normalise(
        torch.randint(0, 255, (b * k, a.image_size, a.image_size, 3), device=dev, dtype=torch.uint8, generator=g)
    )

    n_llm = sum(p.numel() for p in model.llm.parameters())
    n_vit = sum(p.numel() for p in model.visual.parameters())
    n_adapter = sum(p.numel() for p in model.adapter.parameters())
    patches = (a.image_size // cfg.vision.patch_size) ** 2 + 1
    L, d = model.llm.config.num_hidden_layers, model.llm.config.hidden_size
    Lv, dv = cfg.vision.layers, cfg.vision.width
    # The vocabulary projection runs only on labelled positions (qwenvl.next_token_loss): count it there.
    n_head = model.llm.get_output_embeddings().weight.numel()
    labelled = int((labels[:, 1:] != -100).sum())
    flops = (
        6 * (n_llm - n_head) * b * t
        + 6 * n_head * labelled
        + 6 * L * d * t * t * b  # LLM matmuls + causal attention (half of 12*L*d*t^2)
        + 6 * n_vit * b * k * patches
        + 12 * Lv * dv * patches**2 * b * k  # ViT, full attention
        + 6 * n_adapter * b * k * q
    )

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(ids, images, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(a.warmup_steps):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / a.steps
    name = torch.cuda.get_device_name()
    peak = peak_flops(name)
    print(
        json.dumps(
            {
                "bench": "mfu",
                "device": name,
                "config": a.config,
                "params_b": round((n_llm + n_vit + n_adapter) / 1e9, 3),
                "batch": b,
                "seq_len": t,
                "images": b * k,
                "image_size": a.image_size,
                "compile": a.compile,
                "step_s": round(dt, 4),
                "tokens_per_s": round(b * t / dt),
                "tflops": round(flops / dt / 1e12, 1),
                "mfu": round(flops / dt / peak, 4) if peak else None,
                "max_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
