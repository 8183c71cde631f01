"""`make bench-filter`: rows/s per core of the pair filter on each engine, against the parquet floor.

    python bench/bench_filter.py --rows 1000000 --engines local,beam,ray

Generates N LAION-like noisy rows (fixed seed), measures the floor (pyarrow reading and writing the same
parquet, one core, no filtering) and fastText alone on the captions, then runs the filter on each engine
with all cores. Prints a Markdown table (wall-clock rows/s per core, and rows per CPU second of the filter
and its workers, which a busy shared machine does not distort); writes bench_out/filter.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from bench_io import write_result

from qwenvl_data.synthetic_pairs import generate


def _children_cpu() -> float:
    """User + system CPU seconds of every finished child process so far (the filter and its workers)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--engines", default="local,beam,ray")
    ap.add_argument("--work", default="bench_out/filter")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    (work / "in").mkdir(parents=True)
    t = generate(args.rows, seed=0)
    files = 4
    per = -(-args.rows // files)
    for i in range(files):
        pq.write_table(t.slice(i * per, per), work / "in" / f"laion-{i}.parquet", row_group_size=65_536)
    cores = args.workers

    # floor: pyarrow read + write of the same parquet, one core
    t0 = time.perf_counter()
    for p in sorted((work / "in").glob("*.parquet")):
        pq.write_table(pq.read_table(p), work / f"floor-{p.name}")
    floor = args.rows / (time.perf_counter() - t0)

    # fastText alone on every caption, one core
    from qwenvl_data.text.langid import predict

    caps = [c[:256] for c in t["TEXT"].to_pylist() if c]
    predict(caps[:100])
    t0 = time.perf_counter()
    predict(caps)
    fasttext_rate = len(caps) / (time.perf_counter() - t0)

    results = {
        "rows": args.rows,
        "cores": cores,
        "floor_rows_per_s_per_core": round(floor),
        "fasttext_rows_per_s_per_core": round(fasttext_rate),
        "engines": {},
    }
    for engine in args.engines.split(","):
        out = work / f"out-{engine}"
        cmd = [
            sys.executable,
            "-m",
            "qwenvl_data.pipelines.cli",
            "filter",
            "--input",
            str(work / "in"),
            "--source",
            "laion",
            "--output",
            str(out),
            "--engine",
            engine,
            "--workers",
            str(cores),
            "--no-progress",
        ]
        t0, cpu0 = time.perf_counter(), _children_cpu()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
        fun = json.loads((out / "funnel.json").read_text())
        per_core = args.rows / wall / cores
        results["engines"][engine] = {
            "wall_s": round(wall, 2),
            "job_s": fun["seconds"],
            "rows_per_s_per_core": round(per_core),
            # CPU seconds of the run and its workers (start-up included): the same measure on a busy
            # machine, where wall time also counts other people's work
            "cpu_s": round(cpu, 2),
            "rows_per_cpu_s": round(args.rows / cpu) if cpu > 0 else 0,
            "kept": fun["total"]["kept"],
            "ratio_to_floor": round(per_core / floor, 3),
        }
    local = results["engines"].get("local", {}).get("rows_per_s_per_core")
    print(f"\n## Filter benchmark: {args.rows:,} rows, {cores} cores\n")
    print(f"floor (pyarrow read+write, 1 core): {floor:,.0f} rows/s; fastText alone: {fasttext_rate:,.0f} captions/s\n")
    print("| engine | wall s (incl. start-up) | rows/s per core | x floor | x local | CPU s | rows per CPU s | kept |")
    print("|---|---|---|---|---|---|---|---|")
    for e, r in results["engines"].items():
        rel = f"{r['rows_per_s_per_core'] / local:.2f}" if local else "-"
        print(
            f"| {e} | {r['wall_s']} | {r['rows_per_s_per_core']:,} | {r['ratio_to_floor']} | {rel} | {r['cpu_s']} "
            f"| {r['rows_per_cpu_s']:,} | {r['kept']:,} |"
        )
    write_result(Path("bench_out") / "filter.json", results, echo=False)


if __name__ == "__main__":
    main()
