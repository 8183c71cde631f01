"""Demo of download + clip-score on this machine only: loopback image servers, no internet.

    python scripts/demo_download.py download --demo demo_out [--pairs 200]
    python scripts/demo_download.py clip-setup --demo demo_out

`download` takes up to N pairs from DEMO/filter/pairs (or makes N when the filter demo has not run),
points their URLs at a server on 127.0.0.1 that generates an image per pair (varied sizes, PNG,
alpha, CMYK) plus a share of bad answers (404, 500, HTML, truncated, tiny, strips, X-Robots-Tag
noai, a redirect to a second server on 127.0.0.2 that the run does not allow, a file:// URL, an exact
duplicate), and runs `qwenvl-data download --allow-addresses 127.0.0.1` into DEMO/download.
`clip-setup` saves a tiny random open_clip checkpoint and a config whose thresholds are quantiles
(a random model's scores are meaningless, so an absolute cut would keep all or nothing).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_demo_images import ImageServer, image_for  # noqa: E402

BAD = [
    "/status/404",
    "/status/500",
    "/html.jpg",
    "/truncated.jpg?w=640&h=480",
    "/img/dot.png?w=8&h=8",
    "/img/strip.jpg?w=2400&h=300",
    "/noai.jpg?w=400&h=300",
    "REDIRECT",
    "file:///etc/passwd",
    "DUP",
]


def demo_pairs(demo: Path, n: int) -> pa.Table:
    files = sorted((demo / "filter" / "pairs").glob("*.parquet"))
    if files:
        t = pa.concat_tables([pq.read_table(f) for f in files]).slice(0, n)
        if t.num_rows:
            return t.select(["uid", "source", "caption", "lang"])
    rng = np.random.default_rng(0)
    words = ["a", "red", "car", "dog", "on", "the", "beach", "city", "night", "old", "house", "garden"]
    caps = [" ".join(rng.choice(words, 6)) for _ in range(n)]
    langs = ["zh" if i % 5 == 0 else "en" for i in range(n)]
    caps = ["一只在海边的狗" if lang == "zh" else c for c, lang in zip(caps, langs)]
    return pa.table({"uid": [f"demo:{i}" for i in range(n)], "source": ["laion"] * n, "caption": caps, "lang": langs})


def urls_for(n: int, base: str, blocked: str, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    urls = []
    for i in range(n):
        if i % 10 == 9:  # one pair in ten gets a bad answer, each kind in turn
            bad = BAD[(i // 10) % len(BAD)]
            if bad == "REDIRECT":
                urls.append(f"{base}/redirect?to={blocked}/img/internal.jpg")
            elif bad == "DUP":
                urls.append(urls[0].replace("/img/p0.", "/img/dup."))
            else:
                urls.append(bad if bad.startswith("file:") else base + bad)
            continue
        short, ratio = int(rng.integers(220, 640)), float(rng.uniform(1.0, 2.5))
        w, h = (int(short * ratio), short) if i % 2 else (short, int(short * ratio))
        ext = "png" if i % 7 == 3 else "jpg"
        mode = "RGBA" if ext == "png" and i % 2 else ("CMYK" if ext == "jpg" and i % 17 == 6 else "RGB")
        urls.append(f"{base}/img/p{i}.{ext}?w={w}&h={h}&seed={i}&mode={mode}")
    return urls


def download(args):
    demo = Path(args.demo)
    pairs = demo_pairs(demo, args.pairs)
    inp = demo / "download_input" / "pairs"
    inp.mkdir(parents=True, exist_ok=True)
    with ImageServer("127.0.0.1") as srv, ImageServer("127.0.0.2") as internal:
        urls = urls_for(pairs.num_rows, srv.base, internal.base)
        table = pairs.append_column("url", pa.array(urls, pa.string()))
        table = table.append_column("caption_raw", table["caption"])
        pq.write_table(table, inp / "part-000.parquet")
        for url in urls:  # make the images before the timed run; the server then only sends bytes
            if "/img/" in url and url.startswith(srv.base):
                image_for(url[len(srv.base) :])
        print(
            f"demo-download: {table.num_rows} pairs served from {srv.base}; "
            f"{int(pc.sum(pc.match_substring(table['url'], '/img/p')).as_py())} good images"
        )
        cmd = [
            str(Path(sys.executable).parent / "qwenvl-data"),
            "download",
            "--input",
            str(inp),
            "--output",
            str(demo / "download"),
            "--allow-addresses",
            "127.0.0.1",
            "--timeout",
            "3",
            "--image-size",
            "256",
        ]
        print("+", " ".join(cmd), flush=True)
        code = subprocess.call(cmd)
        print(f"demo-download: the server on 127.0.0.2 (not allowed) received {len(internal.requests)} requests")
    return code


def clip_setup(args):
    from qwenvl_data.clip import TINY, save_random_checkpoint

    demo = Path(args.demo)
    ckpt = save_random_checkpoint(TINY, demo / "clip_model" / "tiny.pt", seed=0)
    (demo / "clip_model" / "clip_demo.yaml").write_text(
        "clip_score:\n  batch_size: 64\n  read_batch: 32\n"
        "  thresholds: {default: 'q0.2', by_lang: {zh: 'q0.2'}, by_source: {coco: null}}\n"
        "  ray: {num_cpus: 2, object_store_memory: 200000000}\n"
    )
    print(f"demo-clip: tiny random checkpoint {ckpt}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("step", choices=("download", "clip-setup"))
    p.add_argument("--demo", default="demo_out")
    p.add_argument("--pairs", type=int, default=200)
    a = p.parse_args()
    return download(a) if a.step == "download" else clip_setup(a)


if __name__ == "__main__":
    sys.exit(main())
