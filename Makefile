# qwenvl-data: `make demo` and `make test` set up .venv first when it is missing or older than
# pyproject.toml. Each stage's targets live in make/<stage>.mk, included below.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export RAY_USAGE_STATS_ENABLED := 0
export HF_HUB_OFFLINE := 1
export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONDONTWRITEBYTECODE := 1
# Every stage reads and writes under OUT (default: ./out); the demo under ./demo_out.
OUT ?= out
DEMO ?= demo_out
# Variables more than one stage reads are defined here, once (an empty `?=` in an earlier-included
# make/*.mk would win over a later default). TOKENIZER: shards count exact tokens with it when it
# exists; `make train STAGE=1` makes the tiny test tokenizer there when it does not.
TOKENIZER ?= $(OUT)/tokenizer

.PHONY: setup test demo bench clean
.DEFAULT_GOAL := help

help:
	@echo "make setup | demo | test | lint | bench | filter | download | clip-score | synth-ocr | tasks | shards | train STAGE=N"

$(STAMP): pyproject.toml
	bash scripts/setup.sh $(PYTHON) $(VENV)
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

# The demo runs every stage end to end on data the project makes itself; no network.
DEMO_STEPS := demo-filter demo-download demo-clip demo-synth demo-tasks demo-shards demo-export demo-train
demo: $(STAMP)
	rm -rf $(DEMO)
	$(MAKE) --no-print-directory $(DEMO_STEPS)
	@echo "demo finished: outputs under $(DEMO)/"

BENCH_STEPS := bench-filter bench-download bench-clip bench-synth bench-shards bench-train
bench: $(STAMP)
	$(MAKE) --no-print-directory $(BENCH_STEPS)

clean:
	rm -rf $(DEMO) bench_out .pytest_cache

include $(sort $(wildcard make/*.mk))
