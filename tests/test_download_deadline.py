"""A deadline per request (connect + headers + body), on top of the per-read timeout.

A loopback server that trickles its headers or its body one byte every 0.5 s never trips a 2 s per-read
timeout; without a deadline the download hung forever and the shard with the good images was never
written (issue 14, finding 2). Here the request fails as `timeout` once its deadline passes, and the
shard holds every good image.
"""

import json
import subprocess
import sys
import threading
import time
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_download_job import ROOT, tar_samples, write_pairs
from test_download_netguard import serve

from qwenvl_data import netguard

BYTE_EVERY_S = 0.5
IMAGE = serve.make_image(320, 240, 7)


class _Trickle(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _drip(self, data: bytes):
        for i in range(len(data)):
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            time.sleep(BYTE_EVERY_S)

    def do_GET(self):  # noqa: N802
        head = (f"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {len(IMAGE)}\r\n\r\n").encode()
        try:
            if self.path.startswith("/headers"):
                self._drip(head + IMAGE)
            elif self.path.startswith("/body"):
                self.wfile.write(head)
                self.wfile.flush()
                self._drip(IMAGE)
            else:
                self.wfile.write(head + IMAGE)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def trickle():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _policy(deadline):
    return netguard.AddressPolicy(netguard.parse_allow("127.0.0.1"), None, 2.0, deadline)


@pytest.mark.parametrize("path", ["/headers", "/body"])
def test_trickling_request_fails_as_timeout_at_its_deadline(trickle, path):
    opener = netguard.build_opener(_policy(3.0))
    t0 = time.monotonic()
    with pytest.raises(urllib.error.URLError) as e:
        with opener.open(trickle + path, timeout=2.0) as r:
            r.read()
    took = time.monotonic() - t0
    assert "timeout: request took over its 3 s deadline" in str(e.value)
    assert 2.9 < took < 5.0, took


def test_fast_response_unaffected_by_deadline(trickle):
    with netguard.build_opener(_policy(3.0)).open(trickle + "/fast", timeout=2.0) as r:
        assert r.read() == IMAGE


def test_without_deadline_the_trickle_outlives_the_read_timeout(trickle):
    """The per-read timeout alone never fires on a trickle (what the deadline is for)."""
    opener = netguard.build_opener(_policy(None))
    t0 = time.monotonic()
    with opener.open(trickle + "/body", timeout=2.0) as r:
        r.read(8)  # 8 bytes, 0.5 s apart: 4 s, twice the per-read timeout, and no error
    assert time.monotonic() - t0 > 3.0


def test_download_job_writes_the_good_shard_despite_tricklers(trickle, tmp_path):
    with serve.ImageServer("127.0.0.1") as good:
        urls = [f"{good.base}/img/a{i}.jpg?w=320&h=240&seed={i}" for i in range(3)]
        urls += [f"{trickle}/headers/x.jpg", f"{trickle}/body/y.jpg"]
        write_pairs(tmp_path / "pairs", urls)
        cfg = tmp_path / "c.yaml"
        cfg.write_text("download: {timeout: 2, deadline: 3, min_image_side: 100, processes: 1, threads: 8}\n")
        t0 = time.monotonic()
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "qwenvl_data.pipelines.cli",
                "download",
                "--input",
                str(tmp_path / "pairs"),
                "--output",
                str(tmp_path / "out"),
                "--allow-addresses",
                "127.0.0.1",
                "--config",
                str(cfg),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-2000:]
    assert took < 60, took  # the body trickle alone would take len(IMAGE) / 2 seconds
    assert len(IMAGE) * BYTE_EVERY_S > 600
    assert len(tar_samples(tmp_path / "out")) == 3
    summary = json.loads((tmp_path / "out" / "download.json").read_text())
    assert summary["samples"] == 3 and summary["failed"] == {"timeout": 2}
    fails = pq.read_table(next(Path(tmp_path / "out" / "failures").glob("*.parquet"))).to_pylist()
    assert sorted(f["url"].split("/")[3] for f in fails) == ["body", "headers"]
