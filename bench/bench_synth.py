"""Synthetic OCR pages per second per core, English and Chinese, at 1024 px on the long side.

    .venv/bin/python bench/bench_synth.py --pages 200 [--out bench_out/synth.json]

Two numbers per language: (1) one process rendering pages end to end (layout, drawing, warp,
effects, JPEG, quads binned, sample json) = pages/s per core; (2) the whole job (`write_shard`
over shards: plus tar + parquet writing) on a process pool, wall clock / cores. SynthDoG
(synthtiger 1.2.1) measured on this kind of machine: 0.63 (en) and 1.07 (zh) pages/s per core
(shared/ANCHORS.md), without line or word boxes.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from qwenvl_data.config import load_section
from qwenvl_data.ocr.render import load_resources, render_page
from qwenvl_data.pipelines.synth_ocr import ShardJob, run_jobs

SYNTHDOG = {"en": 0.63, "zh": 1.07}


def bench_render(lang: str, pages: int, cfg: dict) -> dict:
    res = load_resources(lang, cfg)
    for i in range(10):  # warm font and token caches, as a long-running worker has them
        render_page(cfg, res, 1, 10**6 + i)
    start, cpu0 = time.perf_counter(), time.process_time()
    lines = 0
    for i in range(pages):
        _, sample, _ = render_page(cfg, res, 1, i)
        lines += len(sample["lines"])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {
        "pages": pages,
        "seconds": round(wall, 2),
        "pages_per_s_per_core": round(pages / wall, 2),
        "pages_per_cpu_second": round(pages / cpu, 2),
        "lines_per_page": round(lines / pages, 1),
    }


def bench_job(lang: str, pages: int, cfg: dict, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        size = max(1, pages // (2 * workers))
        jobs = [
            ShardJob("synth", f"synthdog-{lang}", i, out, cfg, lang=lang, seed=2, first=s, count=min(size, pages - s))
            for i, s in enumerate(range(0, pages, size))
        ]
        start = time.perf_counter()
        run_jobs(jobs, "local", workers, None)
        wall = time.perf_counter() - start
        mb = sum(p.stat().st_size for p in Path(out).glob("*.tar")) / 1e6
    return {
        "pages": pages,
        "workers": workers,
        "seconds": round(wall, 2),
        "pages_per_s": round(pages / wall, 2),
        "pages_per_s_per_core": round(pages / wall / workers, 2),
        "mb_written": round(mb, 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default="bench_out/synth.json")
    args = ap.parse_args()
    cfg = load_section("synth_ocr")
    report = {"long_side": cfg["long_side"], "cores": os.cpu_count(), "results": {}}
    for lang in ("en", "zh"):
        r = {"render": bench_render(lang, args.pages, cfg), "job": bench_job(lang, args.pages, cfg, args.workers)}
        per_core = r["render"]["pages_per_s_per_core"]
        r["vs_synthdog_per_core"] = round(per_core / SYNTHDOG[lang], 1)
        report["results"][lang] = r
        print(
            f"{lang}: {per_core} pages/s per core (one process, {r['render']['lines_per_page']} lines/page), "
            f"job {r['job']['pages_per_s']} pages/s on {args.workers} workers "
            f"({r['job']['pages_per_s_per_core']}/core); SynthDoG {SYNTHDOG[lang]}/core "
            f"-> {r['vs_synthdog_per_core']}x"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
