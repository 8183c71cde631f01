"""Every stage against a real S3 API on 127.0.0.1 (moto's server, s3fs as the client): inputs, outputs,
resume markers, rejects, funnels, indexes and checkpoints as s3:// URLs, and the same results as on a
local folder. No test touches a cloud.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qwenvl_data import storage
from qwenvl_data.shards import iter_tar_samples

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from s3_server import S3Server  # noqa: E402
from serve_demo_images import ImageServer  # noqa: E402
from test_make_targets import pair_table  # noqa: E402

CLI = [sys.executable, "-m", "qwenvl_data.pipelines.cli"]


def cli(*args: str) -> str:
    r = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{args}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        yield server


@pytest.fixture(scope="module")
def bucket(s3):
    return s3.make_bucket("qwenvl-test")


def test_storage_primitives(bucket):
    url = f"{bucket}/prim/a.json"
    storage.write_json(url, {"a": 1})
    assert storage.read_json(url) == {"a": 1} and storage.exists(url)
    with pytest.raises(KeyError), storage.atomic_write(f"{bucket}/prim/half.bin") as f:
        f.write(b"partial")
        raise KeyError("killed mid-write")
    assert not storage.exists(f"{bucket}/prim/half.bin")  # a failed write never appears
    assert storage.glob(f"{bucket}/prim/*") == [url]


def _tar_bytes(root: str) -> dict:
    return {storage.name(t): storage.read_bytes(t) for t in storage.glob(storage.join(root, "*.tar"))}


def test_pipeline_on_s3(bucket, tmp_path):
    """filter -> download -> clip-score with every input and output on S3; synth-ocr beside it; each
    compared with the same stage on a local folder."""
    from qwenvl_data.clip import TINY, save_random_checkpoint

    ckpt = save_random_checkpoint(TINY, tmp_path / "tiny.pt", seed=0)
    clip_cfg = tmp_path / "clip.yaml"
    clip_cfg.write_text(
        "clip_score:\n  batch_size: 16\n  read_batch: 8\n  thresholds: {default: 'q0.2'}\n"
        "  ray: {num_cpus: 1, object_store_memory: 200000000}\n"
    )
    with ImageServer("127.0.0.1") as srv:
        table = pair_table(srv.base)
        with storage.atomic_write(f"{bucket}/raw/part-00000.parquet") as f:
            pq.write_table(table, f)
        (tmp_path / "raw").mkdir()
        pq.write_table(table, tmp_path / "raw" / "part-00000.parquet")
        for root, raw in ((bucket, f"{bucket}/raw/*.parquet"), (str(tmp_path), str(tmp_path / "raw" / "*.parquet"))):
            cli("filter", "--input", raw, "--source", "laion", "--output", f"{root}/filter", "--workers", "1")
            cli(
                "download",
                "--input",
                f"{root}/filter/pairs",
                "--output",
                f"{root}/download",
                "--allow-addresses",
                "127.0.0.1",
                "--processes",
                "1",
                "--threads",
                "4",
                "--image-size",
                "224",
                "--timeout",
                "5",
            )
    local, remote = str(tmp_path), bucket
    for name in ("filter/funnel.json",):
        a, b = storage.read_json(f"{local}/{name}"), storage.read_json(f"{remote}/{name}")
        assert a["total"] == b["total"] and a["total"]["kept"] == 11
    uids = [
        sorted(
            pa.concat_tables([storage.read_parquet(p) for p in storage.glob(f"{r}/filter/pairs/*.parquet")])[
                "uid"
            ].to_pylist()
        )
        for r in (local, remote)
    ]
    assert uids[0] == uids[1] and len(uids[0]) == 11
    assert storage.glob(f"{remote}/filter/rejects/*.parquet")
    dl = [storage.read_json(f"{r}/download/download.json") for r in (local, remote)]
    assert [(d["in"], d["samples"], d["failed"]) for d in dl] == [(11, 10, {"http_404": 1})] * 2
    assert storage.glob(f"{remote}/download/failures/*.parquet") and storage.glob(f"{remote}/download/*_stats.json")

    for r in (local, remote):
        cli(
            "clip-score",
            "--input",
            f"{r}/download",
            "--output",
            f"{r}/clip",
            "--model",
            TINY,
            "--checkpoint",
            ckpt,
            "--config",
            clip_cfg,
        )
    clips = [storage.read_json(f"{r}/clip/clip.json") for r in (local, remote)]
    assert clips[0]["kept"] == clips[1]["kept"] and 0 < clips[0]["kept"] < 10
    scores = [storage.read_parquet(f"{r}/clip/scores.parquet").sort_by("uid") for r in (local, remote)]
    assert scores[0]["uid"].to_pylist() == scores[1]["uid"].to_pylist()
    assert scores[0]["kept"].to_pylist() == scores[1]["kept"].to_pylist()

    # A rerun on S3 resumes: every download shard and every clip shard is already done.
    out = cli(
        "download",
        "--input",
        f"{remote}/filter/pairs",
        "--output",
        f"{remote}/download",
        "--allow-addresses",
        "127.0.0.1",
        "--processes",
        "1",
    )
    assert "10/11" in out

    for r in (local, remote):
        cli("synth-ocr", "--output", f"{r}/ocr", "--num", "4", "--shard-size", "2", "--workers", "1")
    assert _tar_bytes(f"{local}/ocr") == _tar_bytes(f"{remote}/ocr") and len(_tar_bytes(f"{remote}/ocr")) == 2
    assert json.loads(storage.read_text(f"{remote}/ocr/synth_ocr.json"))["shards"] == 2


def test_train_checkpoints_on_s3(bucket, tmp_path):
    """Trainer checkpoints (model, optimizer, meta written last, tokenizer, log) on S3; --resume and the
    next stage's --init read them back from there."""
    root = Path(__file__).resolve().parents[1]
    py = [sys.executable]
    subprocess.run(
        py + ["scripts/make_tokenizer.py", "--out", str(tmp_path / "tok")], cwd=root, check=True, capture_output=True
    )
    for stage in (1, 2):
        subprocess.run(
            py
            + [
                "-m",
                "qwenvl_data.model.fixtures",
                "--out",
                str(tmp_path / f"s{stage}"),
                "--stage",
                str(stage),
                "--samples",
                "8",
            ],
            check=True,
            capture_output=True,
        )
    common = ["--workers", "0", "--batch-size", "2", "--warmup", "1", "--log-every", "1", "--save-every", "1"]

    def train(*args):
        r = subprocess.run(
            py + ["-m", "qwenvl_data.model.train", *args, *common], capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 0, r.stderr[-3000:]

    out1 = f"{bucket}/train/stage1"
    train(
        "--stage",
        "1",
        "--data",
        str(tmp_path / "s1"),
        "--out",
        out1,
        "--tokenizer",
        str(tmp_path / "tok"),
        "--config",
        "tiny",
        "--steps",
        "2",
        "--stop-at",
        "1",
    )
    assert storage.exists(f"{out1}/meta_000001.json") and storage.exists(f"{out1}/tokenizer/tokenizer.json")
    train("--stage", "1", "--data", str(tmp_path / "s1"), "--out", out1, "--steps", "2", "--resume")
    names = {storage.name(p) for p in storage.glob(f"{out1}/*")}
    assert {"model_000002.pt", "optim_000002.pt", "meta_000002.json", "log.jsonl"} <= names, names
    assert storage.read_json(f"{out1}/meta_000002.json")["step"] == 2
    train(
        "--stage",
        "2",
        "--data",
        str(tmp_path / "s2"),
        "--out",
        f"{bucket}/train/stage2",
        "--init",
        out1,
        "--steps",
        "1",
        "--seq-len",
        "1024",
    )
    assert storage.exists(f"{bucket}/train/stage2/model_000001.pt")


def test_tasks_shards_and_train_data_on_s3(bucket, tmp_path):
    """tasks and shards --stage 2 staged through a temp folder (s3 -> s3), the same as on local folders;
    qwenvl-train reads --data from s3."""
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("make_task_fixtures", root / "scripts" / "make_task_fixtures.py")
    fx = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fx)
    fx.coco(tmp_path / "raw" / "coco")
    fx.text(tmp_path / "raw" / "text")
    fs = storage.fs_of(bucket)[0]
    fs.put(str(tmp_path / "raw") + "/", "qwenvl-test/taskraw/", recursive=True)
    local = tmp_path / "local"
    for r, raw in ((bucket, f"{bucket}/taskraw"), (str(local), str(tmp_path / "raw"))):
        for d in ("coco", "text"):
            cli("tasks", "--dataset", d, "--input", f"{raw}/{d}", "--output", f"{r}/tasks/{d}", "--shard-size", "2")
    inputs = [f"{bucket}/tasks/*"]  # a remote glob is expanded
    cli("shards", "--stage", "2", "--input", *inputs, "--output", f"{bucket}/shards2", "--shard-size", "2")
    cli(
        "shards",
        "--stage",
        "2",
        "--input",
        local / "tasks/coco",
        local / "tasks/text",
        "--output",
        local / "shards2",
        "--shard-size",
        "2",
    )
    assert not storage.exists(f"{bucket}/shards2/.qwenvl.in-progress")
    assert not [p for p in storage.glob(f"{bucket}/shards2/*") if storage.name(p).startswith((".tmp-", ".qwenvl"))]
    for d in ("coco", "text"):
        names = {storage.name(p) for p in storage.glob(f"{bucket}/tasks/{d}/*")}
        assert {f"{d}-stats.json", "wids-index.json"} <= names and any(n.endswith(".tar") for n in names), names
        a, b = (storage.read_json(f"{r}/tasks/{d}/{d}-stats.json") for r in (local, bucket))
        assert (a["in"], a["out"], a["rejected"]) == (b["in"], b["out"], b["rejected"]) and a["out"] > 0

    def uids(r: str) -> list:
        out = []
        for t in storage.glob(f"{r}/shards2/*.tar"):
            with storage.local_input(t) as f:
                out += [json.loads(m["json"])["uid"] for _, m in iter_tar_samples(Path(f))]
        return sorted(out)

    assert uids(str(local)) == uids(bucket) and uids(bucket)
    ia, ib = storage.read_json(f"{local}/shards2/index.json"), storage.read_json(f"{bucket}/shards2/index.json")
    assert ia["totals"] == ib["totals"] and ia["rejected"] == ib["rejected"]
    assert storage.exists(f"{bucket}/shards2/wids-index.json")

    subprocess.run(
        [sys.executable, "scripts/make_tokenizer.py", "--out", str(tmp_path / "tok")],
        cwd=root,
        check=True,
        capture_output=True,
    )
    out = tmp_path / "train2"
    r = subprocess.run(
        [sys.executable, "-m", "qwenvl_data.model.train", "--stage", "2", "--data", f"{bucket}/shards2"]
        + ["--out", str(out), "--tokenizer", str(tmp_path / "tok"), "--config", "tiny", "--steps", "2"]
        + ["--seq-len", "1024", "--workers", "0", "--batch-size", "2", "--warmup", "1", "--save-every", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((out / "meta_000002.json").read_text())
    assert meta["step"] == 2 and meta["data"] == f"{bucket}/shards2"
