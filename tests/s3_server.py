"""A real S3 API server on 127.0.0.1 for tests: moto in server mode (what s3fs's own tests use).

    with S3Server() as s3:            # s3.env: the variables a client (s3fs, a subprocess, a Ray worker) needs
        s3.make_bucket("out")

The server is its own process (`moto_server`), so subprocesses and Ray workers reach it over TCP like
any S3 endpoint. Credentials are dummies; nothing leaves the machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ENV_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "FSSPEC_S3_ENDPOINT_URL",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self):
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "FSSPEC_S3_ENDPOINT_URL": self.endpoint,
        }
        self.proc = None
        self._saved: dict = {}

    def __enter__(self):
        exe = Path(sys.executable).parent / "moto_server"
        self.proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.__exit__()
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        self._saved = {k: os.environ.get(k) for k in ENV_KEYS}
        os.environ.update(self.env)  # this process's clients (s3fs, fsspec config) and its children
        import fsspec.config

        fsspec.config.set_conf_env(fsspec.config.conf)
        return self

    def make_bucket(self, name: str):
        import s3fs

        s3fs.S3FileSystem(skip_instance_cache=True).mkdir(name)
        return f"s3://{name}"

    def fs(self):
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True)

    def __exit__(self, *exc):
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return False
