"""A loopback HTTP server that makes up images (and broken responses) for download demos and tests.

    python scripts/serve_demo_images.py --port 0 --port-file /tmp/port   # serves until killed

Paths (every one is generated from its query, nothing is read from disk):
  /img/NAME.EXT?w=640&h=480&seed=1&mode=RGB   an image (EXT jpg|png; mode RGB|RGBA|CMYK|L)
  /truncated.jpg?w=&h=                        the first half of a JPEG
  /html.jpg                                    an HTML page sent as image/jpeg
  /status/CODE                                 that HTTP status
  /slow.jpg?delay=S&w=&h=                      an image after S seconds
  /noai.jpg?w=&h=&tag=noai                     an image with an X-Robots-Tag header
  /redirect?to=URL                             302 to URL
Every request is recorded in `server.requests` as (path, user-agent).
"""

from __future__ import annotations

import argparse
import functools
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image


@functools.lru_cache(maxsize=256)
def make_image(w: int, h: int, seed: int = 0, mode: str = "RGB", fmt: str = "jpg") -> bytes:
    """A smooth random-colour image (compresses like a photo, unlike pure noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b, c = rng.uniform(0.002, 0.05, 3)
    base = np.stack([np.sin(xx * a + yy * b), np.cos(yy * c + xx * a), np.sin((xx + yy) * b)], -1)
    rgb = ((base * 0.5 + 0.5) * rng.uniform(120, 255, 3)).astype(np.uint8)
    img = Image.fromarray(rgb, "RGB")
    if mode == "RGBA":
        alpha = (np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)).astype(np.uint8)
        img.putalpha(Image.fromarray(alpha, "L"))
    elif mode in ("CMYK", "L"):
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG" if fmt == "png" else "JPEG", quality=90)
    return buf.getvalue()


def image_for(path_and_query: str) -> bytes:
    """The bytes /img/... serves (cached): call it ahead of a timed run to warm the cache."""
    url = urlsplit(path_and_query)
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    fmt = "png" if url.path.endswith(".png") else "jpg"
    return make_image(int(q.get("w", 320)), int(q.get("h", 240)), int(q.get("seed", 0)), q.get("mode", "RGB"), fmt)


class _Handler(BaseHTTPRequestHandler):
    server_version = "demo-images/1"

    def log_message(self, *args):  # quiet: tests and the demo print their own summaries
        pass

    def _send(self, code: int, body: bytes, ctype: str = "image/jpeg", headers: dict | None = None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.requests.append((url.path, self.headers.get("User-Agent", "")))
        w, h, seed = int(q.get("w", 320)), int(q.get("h", 240)), int(q.get("seed", 0))
        path = url.path
        if path.startswith("/img/"):
            fmt = "png" if path.endswith(".png") else "jpg"
            return self._send(200, image_for(self.path), f"image/{'png' if fmt == 'png' else 'jpeg'}")
        if path == "/truncated.jpg":
            data = make_image(w, h, seed)
            return self._send(200, data[: len(data) // 2])
        if path == "/html.jpg":
            return self._send(200, b"<!DOCTYPE html><html><body>not an image</body></html>")
        if path.startswith("/status/"):
            return self._send(int(path.rsplit("/", 1)[1]), b"error", "text/plain")
        if path == "/slow.jpg":
            time.sleep(float(q.get("delay", 3)))
            return self._send(200, make_image(w, h, seed))
        if path == "/noai.jpg":
            return self._send(200, make_image(w, h, seed), headers={"X-Robots-Tag": q.get("tag", "noai")})
        if path == "/redirect":
            return self._send(302, b"", "text/plain", {"Location": q["to"]})
        return self._send(404, b"no such path", "text/plain")


class ImageServer:
    """ThreadingHTTPServer on a loopback address and a free port, in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []
        self.host, self.port = self.httpd.server_address[:2]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list:
        return self.httpd.requests

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", help="write the chosen port here once listening")
    a = p.parse_args()
    with ImageServer(a.host, a.port) as srv:
        if a.port_file:
            Path(a.port_file).write_text(str(srv.port))
        print(f"serving images on {srv.base}", flush=True)
        srv.thread.join()


if __name__ == "__main__":
    main()
