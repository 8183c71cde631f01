"""Throughput of `tasks` (Visual Genome regions + QAs) and `shards --stage 2`, one process (= per core).

    .venv/bin/python bench/bench_shards.py --images 200 --regions 20 --out bench_out/shards.json

Builds a Visual Genome folder with IMAGES images of 640x480 (JPEG, ~30 kB) and REGIONS regions + 5
QAs each, converts it, then writes stage-2 shards from the result (every sample, estimated tokens).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from bench_io import write_result
from make_task_fixtures import _put, jpeg  # noqa: E402

from qwenvl_data.pipelines import shards  # noqa: E402
from qwenvl_data.pipelines.tasks import convert_dataset  # noqa: E402


def make_vg(d: Path, n_images: int, n_regions: int):
    rng = random.Random(0)
    metas, regions, qas = [], [], []
    for i in range(1, n_images + 1):
        _put(d / "VG_100K" / f"{i}.jpg", jpeg(640, 480, i))
        metas.append(
            {
                "image_id": i,
                "width": 640,
                "height": 480,
                "url": f"https://cs.stanford.edu/people/rak248/VG_100K/{i}.jpg",
            }
        )
        regions.append(
            {
                "id": i,
                "regions": [
                    {
                        "region_id": i * 1000 + j,
                        "image_id": i,
                        "phrase": f"a thing number {j} on the left",
                        "x": rng.randint(0, 500),
                        "y": rng.randint(0, 400),
                        "width": rng.randint(5, 140),
                        "height": rng.randint(5, 80),
                    }
                    for j in range(n_regions)
                ],
            }
        )
        qas.append(
            {
                "id": i,
                "qas": [
                    {"qa_id": i * 100 + j, "image_id": i, "question": f"What is item {j}?", "answer": f"item {j}"}
                    for j in range(5)
                ],
            }
        )
    _put(d / "image_data.json", metas)
    _put(d / "region_descriptions.json", regions)
    _put(d / "question_answers.json", qas)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--regions", type=int, default=20)
    p.add_argument("--out", default="bench_out/shards.json")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_vg(tmp / "vg", a.images, a.regions)
        t0 = time.perf_counter()
        stats = convert_dataset("vg", tmp / "vg", tmp / "tasks" / "vg")
        t_tasks = time.perf_counter() - t0
        parser = argparse.ArgumentParser()
        shards.add_arguments(parser)  # the command's own defaults: the bench follows new options
        args = parser.parse_args(["--stage", "2", "--input", str(tmp / "tasks"), "--output", str(tmp / "s2"), "--all"])
        t0 = time.perf_counter()
        shards.run(args)
        t_shards = time.perf_counter() - t0
    result = {
        "images": a.images,
        "samples": stats["out"],
        "tasks_samples_per_s_per_core": round(stats["out"] / t_tasks, 1),
        "shards_stage2_samples_per_s_per_core": round(stats["out"] / t_shards, 1),
        "tasks_seconds": round(t_tasks, 2),
        "shards_seconds": round(t_shards, 2),
    }
    write_result(a.out, result)


if __name__ == "__main__":
    main()
