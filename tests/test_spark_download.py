"""`qwenvl-data download --engine spark`: img2dataset's pyspark distributor on a local Spark master (a real
JVM, Java 17+), fetching from loopback servers through the same guarded opener and the same accounting
as the local engine: same samples, same failure reasons, no request ever reaches the unallowed server.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_download_job import download, servers, tar_samples, write_pairs  # noqa: E402, F401

# Skipped only outside CI: in CI (CI=true, after make setup installed Java) a missing java fails the test.
pytestmark = pytest.mark.skipif(
    shutil.which("java") is None and not os.environ.get("CI"), reason="needs Java 17+ (make setup installs it)"
)


def test_spark_engine_matches_local(servers, tmp_path):  # noqa: F811 (the imported fixture)
    allowed, blocked = servers
    u = allowed.base
    urls = [f"{u}/img/s{i}.jpg?w={320 + 8 * i}&h=260&seed={i}" for i in range(6)]
    urls += [f"{u}/status/404", f"{u}/redirect?to={blocked.base}/img/secret.jpg", "file:///etc/passwd", f"{u}/html.jpg"]
    write_pairs(tmp_path / "pairs", urls)
    before = len(blocked.requests)
    results = {}
    for engine in ("local", "spark"):
        out = tmp_path / engine
        r = download(
            tmp_path / "pairs",
            out,
            "--engine",
            engine,
            "--processes",
            "2",
            "--threads",
            "4",
            "--samples-per-shard",
            "5",
            "--image-size",
            "224",
            "--timeout",
            "5",
        )
        assert r.returncode == 0, r.stderr[-3000:]
        summary = json.loads((out / "download.json").read_text())
        results[engine] = (summary["in"], summary["samples"], summary["failed"], summary["shards"])
        assert summary["engine"] == engine
    assert (
        results["spark"]
        == results["local"]
        == (10, 6, {"http_404": 1, "refused_address": 1, "bad_scheme": 1, "not_an_image": 1}, 2)
    ), results
    local, spark = tar_samples(tmp_path / "local"), tar_samples(tmp_path / "spark")
    assert sorted(local) == sorted(spark)
    assert all(local[k]["jpg"] == spark[k]["jpg"] for k in local)
    assert len(blocked.requests) == before  # the redirect to the unallowed address was refused
