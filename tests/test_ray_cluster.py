"""A real two-node Ray cluster on this machine: a head and a second node (`ray start` with loopback
addresses, one CPU each, the second with its own custom resource), outputs on a moto S3 server.
The filter, synth-ocr and clip-score join it with `--ray-address` and must write what the local engine
writes. The cluster is shut down after, even on failure: both `ray start --block` processes run in
their own process groups, which the fixture kills (never a machine-wide `ray stop`: other jobs on this
machine may run their own Ray).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from qwenvl_data import storage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from s3_server import S3Server  # noqa: E402
from test_s3 import cli  # noqa: E402

RAY = str(Path(sys.executable).parent / "ray")


def _ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _node_args() -> list[str]:
    p = _ports(6)
    return [
        "--node-ip-address",
        "127.0.0.1",
        "--num-cpus",
        "1",
        "--object-store-memory",
        str(100 * 1024**2),
        "--node-manager-port",
        str(p[0]),
        "--object-manager-port",
        str(p[1]),
        "--dashboard-agent-listen-port",
        str(p[2]),
        "--dashboard-agent-grpc-port",
        str(p[3]),
        "--metrics-export-port",
        str(p[4]),
        "--runtime-env-agent-port",
        str(p[5]),
        "--disable-usage-stats",
        "--block",
    ]


def _alive_nodes(address: str) -> int:
    code = (
        f"import ray; ray.init(address='{address}', log_to_driver=False); "
        "print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    # Ray advertises the machine's own interface address even for --node-ip-address 127.0.0.1.
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return int(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else 0


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(s3, tmp_path_factory):
    """(address) of a head + one worker node; both process groups killed at teardown."""
    port, client = _ports(2)
    temp = tmp_path_factory.mktemp("ray")  # this cluster's own session folder
    # Ray 2.60 turns token authentication on for `ray start`; this throwaway loopback cluster opts out
    # (drivers started by the test inherit the setting).
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    RAY,
                    "start",
                    "--head",
                    "--port",
                    str(port),
                    "--ray-client-server-port",
                    str(client),
                    "--include-dashboard",
                    "false",
                    "--temp-dir",
                    str(temp),
                    *_node_args(),
                ],
                env=env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        address = f"127.0.0.1:{port}"
        deadline = time.time() + 120
        while _alive_nodes(address) < 1:
            assert time.time() < deadline and procs[0].poll() is None, "the Ray head did not start"
            time.sleep(2)
        procs.append(
            subprocess.Popen(
                [RAY, "start", "--address", address, "--resources", '{"second_node": 1}', *_node_args()],
                env=env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        while _alive_nodes(address) < 2:
            assert time.time() < deadline and procs[1].poll() is None, "the second Ray node did not join"
            time.sleep(2)
        yield address
    finally:
        for p in reversed(procs):
            for sig in (signal.SIGTERM, signal.SIGKILL):  # then whatever of its group is still there
                try:
                    os.killpg(p.pid, sig)
                    p.wait(30)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


def _pairs(root: str) -> list:
    files = storage.glob(f"{root}/filter/pairs/*.parquet")
    return sorted(pa.concat_tables([storage.read_parquet(f) for f in files]).to_pylist(), key=lambda r: r["uid"])


def test_stages_on_a_two_node_cluster(cluster, s3, tmp_path):
    import pyarrow.parquet as pq
    from test_make_targets import pair_table

    from qwenvl_data.clip import TINY, save_random_checkpoint

    bucket = s3.make_bucket("ray-cluster")
    local = str(tmp_path / "local")
    (tmp_path / "raw").mkdir()
    pq.write_table(pair_table("http://127.0.0.1:9"), tmp_path / "raw" / "part-00000.parquet")
    raw = str(tmp_path / "raw" / "*.parquet")
    # filter: local engine into a folder, Ray engine on the cluster into S3.
    cli("filter", "--input", raw, "--source", "laion", "--output", f"{local}/filter", "--workers", "1")
    cli(
        "filter",
        "--input",
        raw,
        "--source",
        "laion",
        "--output",
        f"{bucket}/filter",
        "--engine",
        "ray",
        "--ray-address",
        cluster,
        "--workers",
        "2",
    )
    assert _pairs(local) == _pairs(bucket) and len(_pairs(bucket)) == 11
    assert (
        storage.read_json(f"{local}/filter/funnel.json")["total"]
        == storage.read_json(f"{bucket}/filter/funnel.json")["total"]
    )

    # synth-ocr: 4 shards, one Ray task each, spread over both nodes; byte-identical tars.
    cli("synth-ocr", "--output", f"{local}/ocr", "--num", "4", "--shard-size", "1", "--workers", "1")
    cli(
        "synth-ocr",
        "--output",
        f"{bucket}/ocr",
        "--num",
        "4",
        "--shard-size",
        "1",
        "--engine",
        "ray",
        "--ray-address",
        cluster,
    )
    tars = [{storage.name(t): storage.read_bytes(t) for t in storage.glob(f"{r}/ocr/*.tar")} for r in (local, bucket)]
    assert tars[0] == tars[1] and len(tars[1]) == 4

    # clip-score: the download-shaped input is the synth-free fixture of the clip tests, on S3 too.
    ckpt = save_random_checkpoint(TINY, tmp_path / "tiny.pt", seed=0)
    cfg = tmp_path / "clip.yaml"
    cfg.write_text(
        "clip_score:\n  batch_size: 8\n  read_batch: 4\n  thresholds: {default: 'q0.25'}\n"
        "  ray: {num_cpus: 1, object_store_memory: 200000000}\n"
    )
    _download_shards(local + "/download")
    for f in storage.glob(f"{local}/download/*"):
        storage.put_file(f, f"{bucket}/download/{storage.name(f)}")
    cli(
        "clip-score",
        "--input",
        f"{local}/download",
        "--output",
        f"{local}/clip",
        "--model",
        TINY,
        "--checkpoint",
        ckpt,
        "--config",
        cfg,
    )
    cli(
        "clip-score",
        "--input",
        f"{bucket}/download",
        "--output",
        f"{bucket}/clip",
        "--model",
        TINY,
        "--checkpoint",
        ckpt,
        "--config",
        cfg,
        "--ray-address",
        cluster,
    )
    scores = [storage.read_parquet(f"{r}/clip/scores.parquet").sort_by("uid") for r in (local, bucket)]
    assert scores[0]["uid"].to_pylist() == scores[1]["uid"].to_pylist()
    assert scores[0]["kept"].to_pylist() == scores[1]["kept"].to_pylist()
    a, b = (storage.read_json(f"{r}/clip/clip.json") for r in (local, bucket))
    assert (a["in"], a["kept"]) == (b["in"], b["kept"]) == (8, 6)


def _download_shards(folder: str):
    """Two download-shaped shards (KEY.jpg + KEY.txt + KEY.json, sidecar parquet with status)."""
    import io

    import numpy as np
    from PIL import Image

    from qwenvl_data.shards import ShardWriter

    captions = ["a red car", "two dogs on grass", "a bowl of soup", "mountains at dusk"]
    for shard in (0, 1):
        with ShardWriter(folder, shard, prefix="") as w:
            for i in range(4):
                key = f"{shard:06d}{i:04d}"
                buf = io.BytesIO()
                rng = np.random.default_rng(shard * 10 + i)
                Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(buf, "JPEG")
                meta = {
                    "schema": "sample",
                    "uid": f"u{shard}{i}",
                    "source": "laion",
                    "lang": "en",
                    "caption": captions[i],
                    "width": 80,
                    "height": 64,
                    "status": "success",
                    "key": key,
                }
                w.add(key, {"jpg": buf.getvalue(), "txt": captions[i], "json": meta}, {"key": key, "status": "success"})
            w.close({})
