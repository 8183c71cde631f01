# Stage: filter. INPUT: parquet paths/globs; SOURCE: layout name; CONFIG: optional YAML.
INPUT ?= data/pairs/*.parquet
SOURCE ?= laion
ENGINE ?= local
FILTER_FLAGS ?=

.PHONY: filter demo-filter bench-filter eval-filter
filter: $(STAMP)
	$(VENV)/bin/qwenvl-data filter --input $(INPUT) --source $(SOURCE) --engine $(ENGINE) --output $(OUT)/filter $(FILTER_FLAGS)

demo-filter: $(STAMP)
	$(VENV)/bin/qwenvl-data gen-pairs --output $(DEMO)/raw --rows 20000 --files 2 --seed 0
	$(VENV)/bin/qwenvl-data filter --input '$(DEMO)/raw/*.parquet' --source laion --output $(DEMO)/filter
	$(VENV)/bin/qwenvl-data validate $(DEMO)/filter/pairs

BENCH_ROWS ?= 1000000
bench-filter: $(STAMP)
	$(PY) bench/bench_filter.py --rows $(BENCH_ROWS)

# Score the caption rules on a labelled caption set (precision/recall per language, other-language leak,
# junk kept, top losses). Default: the set written for this project (tests/data/filter_eval);
# EVAL_DIR=folder: your own *.jsonl ({"label": en|zh|other|junk, "text": ...}) or *.tsv (label<TAB>text).
# FILTER_CONFIG=my.yaml: score your own filter settings.
EVAL_DIR ?=
eval-filter: $(STAMP)
	$(PY) -m qwenvl_data.pipelines.eval_filter $(if $(EVAL_DIR),--dir $(EVAL_DIR)) $(if $(FILTER_CONFIG),--config $(FILTER_CONFIG))
