"""Real HTML pages: headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) renders each
page at a fixed viewport; a DOM Range per character gives its box.

The browser never touches the network: every request the page makes is aborted (route), the page's
own JavaScript and service workers are off (our measuring script runs in Playwright's utility world),
and the HTML is handed over with set_content, not fetched. Playwright's bundled browsers are never
used or downloaded (`executable_path`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..errors import UsageError
from .fonts import default_font_files
from .page_filters import compile_ranges, page_reason
from .real_page import group_lines, page_uid, real_sample

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]

# Visible characters of the body in DOM order, each with its viewport rectangle; a newline between
# block-level elements so that two short blocks side by side never merge into one line.
_CHARS_JS = r"""() => {
  const out = [];
  const range = document.createRange();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let lastBlock = null;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    let block = node.parentElement;
    while (block && getComputedStyle(block).display.startsWith('inline')) block = block.parentElement;
    if (block !== lastBlock) { out.push(['\n', 0, 0, 0, 0]); lastBlock = block; }
    const s = node.data;
    for (let i = 0; i < s.length;) {
      const cp = s.codePointAt(i), n = cp > 0xffff ? 2 : 1;
      range.setStart(node, i); range.setEnd(node, i + n);
      const r = range.getBoundingClientRect();
      out.push([String.fromCodePoint(cp), r.left, r.top, r.right, r.bottom]);
      i += n;
    }
  }
  return out;
}"""


def fontconfig_file(folder: str) -> str:
    """A fonts.conf adding the project's fonts (the CJK one above all) to the system's: a machine
    without CJK fonts would otherwise render Chinese pages as tofu boxes."""
    dirs = sorted({str(p.parent) for p in default_font_files()})
    conf = Path(folder) / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        '<include ignore_missing="yes">/etc/fonts/fonts.conf</include>'
        + "".join(f"<dir>{d}</dir>" for d in dirs)
        + f"<cachedir>{folder}/fc-cache</cachedir></fontconfig>"
    )
    return str(conf)


def chromium_path() -> str:
    for p in CHROMIUM_CANDIDATES:
        if Path(p).is_file():
            return p
    found = shutil.which("chromium")
    if not found:
        raise UsageError("--html needs Debian's chromium (apt-get install chromium; `make setup` does it)")
    return found


class HtmlRenderer:
    """One browser for many pages (launch costs about a second). Use as a context manager."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.ranges = compile_ranges(cfg["reject_ranges"])

    def __enter__(self):
        from playwright.sync_api import sync_playwright

        self._profile = tempfile.mkdtemp(prefix="qwenvl-chromium-")
        self._fonts = tempfile.mkdtemp(prefix="qwenvl-fontconfig-")
        env = dict(os.environ, FONTCONFIG_FILE=fontconfig_file(self._fonts))
        self._pw = sync_playwright().start()
        w, h = self.cfg["viewport"]
        self._context = self._pw.chromium.launch_persistent_context(
            self._profile,
            executable_path=chromium_path(),
            headless=True,
            args=LAUNCH_ARGS,
            viewport={"width": int(w), "height": int(h)},
            device_scale_factor=1,
            java_script_enabled=False,
            service_workers="block",
            offline=True,
            env=env,
        )
        self._context.route("**/*", lambda route: route.abort())
        self.requests_blocked = 0
        self._context.on("request", self._count)
        return self

    def _count(self, _request):
        self.requests_blocked += 1

    def __exit__(self, *exc):
        try:
            self._context.close()
        finally:
            self._pw.stop()
            shutil.rmtree(self._profile, ignore_errors=True)
            shutil.rmtree(self._fonts, ignore_errors=True)
        return False

    def render(self, path: str | Path, name: str | None = None, source: str = "html"):
        """(uid, RGB array or None, sample or None, reason or None) for one HTML file; `name` is its
        path relative to the input folder (for the uid)."""
        path = Path(path)
        uid = page_uid(source, name or path.name)
        try:
            html = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return uid, None, None, "unreadable_html"
        page = self._context.new_page()
        try:
            page.set_content(html, wait_until="load", timeout=self.cfg["timeout_ms"])
            chars = page.evaluate(_CHARS_JS)
            png = page.screenshot(type="png", full_page=False)
        except Exception:  # a page that will not load or render is a rejected page, not a crash
            return uid, None, None, "render_failed"
        finally:
            page.close()
        decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            return uid, None, None, "render_failed"
        image = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
        h, w = image.shape[:2]
        sample, text, _ = real_sample(uid, source, w, h, group_lines(chars), {"file": name or path.name})
        reason = page_reason(text, w, h, self.cfg, self.ranges) or (None if sample["lines"] else "no_text_lines")
        return uid, (None if reason else image), (None if reason else sample), reason
