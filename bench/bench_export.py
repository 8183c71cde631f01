"""Throughput and peak memory of `qwenvl-data export` (stage-3 shards -> both JSON formats), one process.

    .venv/bin/python bench/bench_export.py --shards 20 --per-shard 1000 --out bench_out/export.json

Writes SHARDS stage-3 shards of PER_SHARD one-picture, one-exchange chats (64x48 JPEG), then exports
them; peak RSS is measured in a child process that only exports, at 1 shard and at SHARDS shards
(flat memory: the two agree however many samples there are).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from qwenvl_data import formats
from qwenvl_data.shards import ShardWriter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_io import write_result  # noqa: E402

CHILD = """import resource, sys, time
from qwenvl_data.pipelines.cli import main
t = time.time()
assert main(["export", "--input", sys.argv[1], "--output", sys.argv[2]]) == 0
print(time.time() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_shards(d: Path, shards: int, per: int):
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 90, 90)).save(buf, "JPEG")
    turns = [
        ("user", formats.picture_prefix(["img0.jpg"]) + "What is in the picture?"),
        ("assistant", "A grey square."),
    ]
    segs = formats.chat_segments(turns)
    for s in range(shards):
        with ShardWriter(d, s, "stage3") as w:
            for i in range(per):
                w.add(
                    f"{s * per + i:09d}",
                    {
                        "img0.jpg": buf.getvalue(),
                        "json": {
                            "schema": "train",
                            "uid": f"u{s}-{i}",
                            "stage": 3,
                            "task": "chat",
                            "lang": "en",
                            "source": "b",
                            "images": ["img0.jpg"],
                            "segments": segs,
                        },
                    },
                )
            w.close()


def export(src: Path, dst: Path) -> tuple[float, float]:
    r = subprocess.run([sys.executable, "-c", CHILD, str(src), str(dst)], capture_output=True, text=True, check=True)
    seconds, rss_kb = r.stdout.split()[-2:]
    return float(seconds), int(rss_kb) / 1024


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=20)
    ap.add_argument("--per-shard", type=int, default=1000)
    ap.add_argument("--out", default="bench_out/export.json")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "one", Path(tmp) / "many"
        write_shards(small, 1, a.per_shard)
        write_shards(big, a.shards, a.per_shard)
        _, rss_small = export(small, Path(tmp) / "out1")
        seconds, rss_big = export(big, Path(tmp) / "outN")
        n = a.shards * a.per_shard
        json_bytes = sum(f.stat().st_size for f in (Path(tmp) / "outN").glob("*.json"))
        write_result(
            a.out,
            {
                "bench": "export",
                "samples": n,
                "seconds": round(seconds, 2),
                "samples_per_s": round(n / seconds),
                "peak_rss_mb_1_shard": round(rss_small),
                f"peak_rss_mb_{a.shards}_shards": round(rss_big),
                "json_mb": round(json_bytes / 2**20, 1),
            },
        )


if __name__ == "__main__":
    main()
