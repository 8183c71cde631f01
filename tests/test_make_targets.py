"""The user's path as the README writes it: `make filter ... make train STAGE=3` with OUT= a temp folder.

A small user-shaped data folder is made on the spot: LAION-layout pair parquet whose URLs point at a
loopback image server started here, every task dataset in its real layout (scripts/make_task_fixtures.py),
a fine-tuning JSON, a tiny random CLIP checkpoint file, a tokenizer. Then each production target runs
through `make` exactly as documented (only sizes made tiny through the documented variables), and each
stage's outputs and counts are checked. Slow (~2-3 min on 2 cores), but part of `make test`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from make_task_fixtures import make_all  # noqa: E402
from serve_demo_images import ImageServer  # noqa: E402

CAPTIONS = [
    "a red car parked on a quiet street at night",
    "a brown dog running along the sandy beach",
    "an old stone house with a green garden",
    "a bowl of fresh fruit on a wooden kitchen table",
    "children playing football in a city park",
    "a small boat sailing across a calm blue lake",
    "snow covered mountains under a clear morning sky",
    "a cup of hot coffee next to an open book",
    "a busy market street full of people and shops",
    "a white cat sleeping on a soft red sofa",
]


def make(target: str, out: Path, *assigns: str, timeout: int = 600) -> str:
    # -o: the venv stamp counts as up to date (make test built it; a dev tree may be edited meanwhile).
    cmd = ["make", "--no-print-directory", "-o", ".venv/.installed", target, f"OUT={out}", *assigns]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


def pair_table(base: str) -> pa.Table:
    """LAION's published columns: 10 good pairs, one too small by metadata, one low similarity, one
    duplicate URL, one URL answering 404."""
    urls = [f"{base}/img/p{i}.jpg?w={300 + 10 * i}&h={260 + 5 * i}&seed={i}" for i in range(10)]
    rows = [(u, c, 300 + 10 * i, 260 + 5 * i, 0.33) for i, (u, c) in enumerate(zip(urls, CAPTIONS))]
    rows += [
        (f"{base}/img/small.jpg?w=120&h=100", "a tiny picture of a yellow flower in a pot", 120, 100, 0.35),
        (f"{base}/img/low.jpg?w=300&h=300", "a tall glass tower in the financial district", 300, 300, 0.12),
        (urls[0], "a red car", 300, 260, 0.31),
        (f"{base}/status/404", "a green tractor working in a wide wheat field", 400, 300, 0.34),
    ]
    u, c, w, h, s = zip(*rows)
    return pa.table(
        {
            "SAMPLE_ID": list(range(len(rows))),
            "URL": list(u),
            "TEXT": list(c),
            "WIDTH": pa.array(w, pa.int64()),
            "HEIGHT": pa.array(h, pa.int64()),
            "similarity": pa.array(s, pa.float64()),
        }
    )


@pytest.fixture(scope="module")
def user_data(tmp_path_factory):
    from qwenvl_data.clip import TINY, save_random_checkpoint

    data = tmp_path_factory.mktemp("user") / "data"
    make_all(data)  # refcoco ... text/ and sft/finetune.json in their real layouts
    save_random_checkpoint(TINY, data / "models" / "tiny-clip.pt", seed=0)
    (data / "clip.yaml").write_text(
        "clip_score:\n  batch_size: 16\n  read_batch: 8\n  thresholds: {default: 'q0.2'}\n"
        "  ray: {num_cpus: 1, object_store_memory: 200000000}\n"
    )
    subprocess.run(
        [str(ROOT / ".venv/bin/python"), "scripts/make_tokenizer.py", "--out", str(data / "tokenizer")],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return data


def test_production_targets(user_data, tmp_path):
    data, out = user_data, tmp_path / "out"
    with ImageServer("127.0.0.1") as srv:
        (data / "laion").mkdir(exist_ok=True)
        pq.write_table(pair_table(srv.base), data / "laion" / "part-00000.parquet")
        make("filter", out, f"INPUT={data}/laion/*.parquet", "SOURCE=laion")
        funnel = json.loads((out / "filter" / "funnel.json").read_text())
        assert funnel["total"]["in"] == 14 and funnel["total"]["kept"] == 11, funnel["total"]
        dropped = {r for r, n in funnel["total"]["dropped"].items() if n}
        assert dropped == {"image_too_small", "clip_score", "duplicate_url"}, dropped

        make(
            "download",
            out,
            "DOWNLOAD_FLAGS=--allow-addresses 127.0.0.1 --processes 1 --threads 4 --image-size 224 --timeout 5",
        )
    dl = json.loads((out / "download" / "download.json").read_text())
    assert (dl["in"], dl["samples"], dl["failed"]) == (11, 10, {"http_404": 1}), dl

    make(
        "clip-score",
        out,
        "CLIP_MODEL=qwenvl-tiny-clip",
        f"CLIP_CHECKPOINT={data}/models/tiny-clip.pt",
        f"CLIP_FLAGS=--config {data}/clip.yaml",
    )
    clip = json.loads((out / "clip" / "clip.json").read_text())
    assert clip["in"] == 10 and 0 < clip["kept"] < 10 and clip["kept"] + sum(clip["dropped"].values()) == 10

    make("report", out)
    report = (out / "clip" / "report.md").read_text()
    assert "filter" in report and "clip" in report

    make("synth-ocr", out, "SYNTH_NUM=4", "SYNTH_ARGS=--shard-size 2 --workers 1")
    ocr = sorted(p.name for p in (out / "ocr").glob("*.tar"))
    assert ocr == ["synthdog-en-000000.tar", "synthdog-zh-000000.tar"], ocr

    make("tasks", out, f"TASKS_DATA={data}")
    made = sorted(p.name for p in (out / "tasks").iterdir())
    assert "refcoco" in made and "vqav2" in made and "coco" in made and "text" in made, made
    for d in made:
        stats = json.loads(next((out / "tasks" / d).glob("*-stats.json")).read_text())
        assert stats["in"] == stats["out"] + sum(stats["rejected"].values()), (d, stats)

    tok = f"TOKENIZER={data}/tokenizer"
    make("shards", out, tok, f"SFT_JSON={data}/sft/finetune.json")
    for stage in (1, 2, 3):
        index = json.loads((out / "shards" / f"stage{stage}" / "index.json").read_text())
        assert index["totals"]["samples"] > 0, (stage, index["totals"])
        assert "exact" in json.dumps(index.get("token_counter", "")).lower() or stage, index.get("token_counter")
    stage1 = json.loads((out / "shards" / "stage1" / "index.json").read_text())
    assert stage1["totals"]["samples"] == clip["kept"]

    args = "ARGS=--steps 2 --batch-size 2 --workers 0 --warmup 1 --log-every 1 --save-every 2"
    make("train", out, "STAGE=1", args)  # the default TOKENIZER=$(OUT)/tokenizer is made here
    make("train", out, "STAGE=2", args + " --seq-len 1024")
    make("train", out, "STAGE=3", args + " --seq-len 1024")
    for stage in (1, 2, 3):
        ckpt = out / "train" / f"stage{stage}"
        assert list(ckpt.glob("model_*.pt")), sorted(p.name for p in ckpt.iterdir())
        assert (ckpt / "tokenizer.json").exists() or list(ckpt.glob("tokenizer*/tokenizer.json"))


def test_shards_without_any_source_is_one_line(tmp_path):
    """`make shards` on an OUT with no tasks, OCR or clip output says what to run first, instead of
    handing decontaminate an empty --input."""
    proc = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "shards", f"OUT={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "make shards: no training source under" in proc.stderr and "make tasks" in proc.stderr
    assert "usage:" not in proc.stderr and "Traceback" not in proc.stderr
