"""`qwenvl-data download` end to end against real loopback HTTP servers (127.0.0.1 allowed,
127.0.0.2 not): every pair ends as a sample or a failure with the reason the rules give, and a
killed run resumes without redoing finished shards or exposing half-written ones."""

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_download_netguard import serve

from qwenvl_data.schema import first_error

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "qwenvl_data.pipelines.cli"]


def write_pairs(folder: Path, urls: list[str], langs=None) -> list[str]:
    folder.mkdir(parents=True)
    n = len(urls)
    uids = [f"laion:t{i}" for i in range(n)]
    pq.write_table(
        pa.table(
            {
                "uid": uids,
                "source": ["laion"] * n,
                "url": urls,
                "caption": [f"a caption {i}" for i in range(n)],
                "caption_raw": [f"a caption {i}" for i in range(n)],
                "width": pa.nulls(n, pa.int64()),
                "height": pa.nulls(n, pa.int64()),
                "score": pa.nulls(n, pa.float64()),
                "lang": langs or ["en"] * n,
                "lang_score": [0.9] * n,
            }
        ),
        folder / "part-0.parquet",
    )
    return uids


def download(inp, out, *extra, config=None, **kw):
    cmd = CLI + ["download", "--input", str(inp), "--output", str(out), "--allow-addresses", "127.0.0.1", *extra]
    if config:
        cmd += ["--config", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT, **kw)


def tar_samples(folder: Path) -> dict:
    samples = {}
    for t in sorted(folder.glob("*.tar")):
        with tarfile.open(t) as tf:
            for m in tf:
                key, ext = m.name.split(".", 1)
                samples.setdefault(key, {})[ext] = tf.extractfile(m).read()
    return samples


@pytest.fixture(scope="module")
def servers():
    with serve.ImageServer("127.0.0.1") as a, serve.ImageServer("127.0.0.2") as b:
        yield a, b


@pytest.fixture(scope="module")
def run_cases(servers, tmp_path_factory):
    a, b = servers
    u = a.base
    cases = [  # (url, expected reason or None for a sample, generated image params for samples)
        (f"{u}/img/good.jpg?w=640&h=480&seed=1", None, (640, 480, 1, "RGB", "jpg")),
        (f"{u}/img/good.png?w=400&h=300&seed=2", None, (400, 300, 2, "RGB", "png")),
        (f"{u}/img/alpha.png?w=300&h=300&seed=3&mode=RGBA", None, (300, 300, 3, "RGBA", "png")),
        (f"{u}/img/cmyk.jpg?w=300&h=250&seed=4&mode=CMYK", None, (300, 250, 4, "CMYK", "jpg")),
        (f"{u}/redirect?to={u}/img/moved.jpg%3Fw%3D320%26h%3D240%26seed%3D5", None, (320, 240, 5, "RGB", "jpg")),
        (f"{u}/truncated.jpg?w=800&h=600", "decode_error", None),
        (f"{u}/html.jpg", "not_an_image", None),
        (f"{u}/status/404", "http_404", None),
        (f"{u}/status/500", "http_500", None),
        (f"{u}/slow.jpg?delay=6", "timeout", None),
        (f"{u}/img/dot.png?w=1&h=1", "image_too_small", None),
        (f"{u}/img/strip.png?w=10000&h=10", "aspect_ratio", None),
        (f"{u}/img/huge.jpg?w=1100&h=1000", "too_many_pixels", None),
        (f"{u}/noai.jpg?w=300&h=300", "opted_out", None),
        (f"{b.base}/img/second.jpg", "refused_address", None),
        (f"{u}/redirect?to={b.base}/img/second.jpg", "refused_address", None),
        ("file:///etc/passwd", "bad_scheme", None),
        (f"{u}/img/copy.jpg?w=640&h=480&seed=1", "duplicate_image", None),  # same bytes as case 0
    ]
    for url, _, _ in cases:  # generate the images before the timed run (this machine is shared)
        if "/img/" in url:
            serve.image_for(url.split(str(a.port), 1)[-1])
    tmp = tmp_path_factory.mktemp("dl")
    uids = write_pairs(tmp / "pairs", [c[0] for c in cases], langs=["zh"] + ["en"] * (len(cases) - 1))
    (tmp / "cfg.yaml").write_text(
        "download:\n  max_pixels: 1000000\n  min_image_side: 100\n"
        "  timeout: 3\n  image_size: 256\n  processes: 2\n  threads: 8\n"
        "  samples_per_shard: 10\n"
    )
    started = time.time()
    proc = download(tmp / "pairs", tmp / "out", config=tmp / "cfg.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(cases=cases, uids=uids, out=tmp / "out", proc=proc, a=a, b=b, seconds=time.time() - started)


def test_every_pair_ends_where_the_rules_say(run_cases):
    out, cases, uids = run_cases["out"], run_cases["cases"], run_cases["uids"]
    fails = pa.concat_tables([pq.read_table(p) for p in sorted((out / "failures").glob("*.parquet"))])
    got = dict(zip(fails["uid"].to_pylist(), fails["reason"].to_pylist()))
    want = {uid: c[1] for uid, c in zip(uids, cases) if c[1]}
    assert got == want
    samples = tar_samples(out)
    sample_uids = {json.loads(s["json"])["uid"] for s in samples.values()}
    assert sample_uids == {uid for uid, c in zip(uids, cases) if c[1] is None}
    summary = json.loads((out / "download.json").read_text())
    assert summary["in"] == len(cases) == summary["samples"] + sum(summary["failed"].values())
    assert summary["failed"]["refused_address"] == 2 and summary["sources"]["laion"]["in"] == len(cases)


def test_samples_carry_checked_metadata(run_cases):
    out, cases, uids = run_cases["out"], run_cases["cases"], run_cases["uids"]
    params = {uid: c[2] for uid, c in zip(uids, cases) if c[2]}
    for files in tar_samples(out).values():
        meta = json.loads(files["json"])
        assert first_error("sample", meta) is None, meta
        w, h, seed, mode, fmt = params[meta["uid"]]
        assert (meta["original_width"], meta["original_height"]) == (w, h)
        assert meta["sha256"] == hashlib.sha256(serve.make_image(w, h, seed, mode, fmt)).hexdigest()
        stored = Image.open(io.BytesIO(files["jpg"]))
        assert stored.size == (meta["width"], meta["height"]) and min(stored.size) == min(256, w, h)
        assert stored.mode == "RGB" and files["txt"].decode() == meta["caption"]
        assert meta["lang"] == ("zh" if meta["uid"] == uids[0] else "en")


def test_polite_and_safe_traffic(run_cases):
    a, b = run_cases["a"], run_cases["b"]
    assert b.requests == []  # the unallowed server saw nothing, not even via the redirect
    agents = {ua for _, ua in a.requests}
    assert agents and all("qwenvl-data" in ua for ua in agents)
    out = run_cases["out"]
    assert not list(out.glob(".tmp-*")) and not (out / "_tmp").exists()
    check = subprocess.run(CLI + ["validate", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert check.returncode == 0, check.stdout + check.stderr


def test_bad_input_is_one_line(tmp_path):
    (tmp_path / "pairs").mkdir()
    pq.write_table(pa.table({"url": ["http://127.0.0.1:9/x"]}), tmp_path / "pairs" / "a.parquet")
    proc = download(tmp_path / "pairs", tmp_path / "out")
    assert proc.returncode == 1 and "a.parquet: missing pair column(s) uid, source, lang, caption" in proc.stderr
    proc = download(tmp_path / "nope", tmp_path / "out")
    assert proc.returncode == 2 and "not a directory" in proc.stderr
    proc = download(tmp_path / "pairs", tmp_path / "out", "--allow-addresses", "localhost")
    assert proc.returncode == 2 and "'localhost' is not an IP" in proc.stderr


def test_kill_midway_then_resume(servers, tmp_path):
    a, _ = servers
    n, per_shard = 24, 4
    urls = [f"{a.base}/slow.jpg?delay=0.25&w=200&h=160&seed={i}" for i in range(n)]
    write_pairs(tmp_path / "pairs", urls)
    (tmp_path / "cfg.yaml").write_text(
        f"download:\n  processes: 1\n  threads: 2\n  samples_per_shard: {per_shard}\n  min_image_side: 100\n"
    )
    out = tmp_path / "out"
    cmd = CLI + [
        "download",
        "--input",
        str(tmp_path / "pairs"),
        "--output",
        str(out),
        "--allow-addresses",
        "127.0.0.1",
        "--config",
        str(tmp_path / "cfg.yaml"),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while len(list(out.glob("*_stats.json"))) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the job and its worker processes, mid-shard
    proc.wait()
    done = sorted(out.glob("*_stats.json"))
    assert 2 <= len(done) < n // per_shard, "the kill should land midway"
    for t in out.glob("[0-9]*.tar"):  # whatever is visible under a final name is a complete shard
        side = pq.read_table(t.with_suffix(".parquet"))
        with tarfile.open(t) as tf:
            assert len([m for m in tf if m.name.endswith(".jpg")]) == side["status"].to_pylist().count("success")
    before = len(a.requests)
    rerun = download(tmp_path / "pairs", out, config=tmp_path / "cfg.yaml")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads((out / "download.json").read_text())
    assert summary["in"] == n and summary["samples"] == n
    assert len(a.requests) - before <= n - per_shard * len(done)  # finished shards were not fetched again
    assert len(tar_samples(out)) == n and not list(out.glob(".tmp-*"))
