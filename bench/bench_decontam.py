"""Cost of decontamination matching, one process (= per core): images hashed per second, and the
Hamming search of those hashes against a benchmark-sized set of evaluation hashes.

    .venv/bin/python bench/bench_decontam.py --images 300 --eval-hashes 150000 --out bench_out/decontam.json

Images: JPEGs of 640x480 (COCO-sized) and 256x256 (img2dataset's default output), photo-like noise.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_io import write_result  # noqa: E402

from qwenvl_data.decontam import HashIndex, hash_images  # noqa: E402


def photos(n: int, w: int, h: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
        noise = rng.integers(-12, 12, (h, w, 3))
        img = Image.fromarray(np.clip(np.asarray(img, np.int16) + noise, 0, 255).astype(np.uint8))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--eval-hashes", type=int, default=150_000, help="size of the evaluation hash set searched")
    p.add_argument("--out", default="bench_out/decontam.json")
    a = p.parse_args(argv)
    result = {"images": a.images, "eval_hashes": a.eval_hashes}
    for w, h in ((640, 480), (256, 256)):
        blobs = photos(a.images, w, h)
        for method in ("dhash", "phash"):
            t0 = time.perf_counter()
            hashes, ok = hash_images(blobs, method)
            dt = time.perf_counter() - t0
            assert ok.all()
            result[f"{method}_{w}x{h}_images_per_s"] = round(a.images / dt, 1)
    ref = np.random.default_rng(1).integers(0, 2**63, a.eval_hashes, dtype=np.int64).astype(np.uint64)
    t0 = time.perf_counter()
    index = HashIndex(ref, 6)
    result["index_build_s"] = round(time.perf_counter() - t0, 3)
    queries = np.concatenate([hashes] * 10)
    t0 = time.perf_counter()
    index.query(queries)
    result["search_queries_per_s"] = round(len(queries) / (time.perf_counter() - t0), 1)
    write_result(a.out, result)


if __name__ == "__main__":
    main()
