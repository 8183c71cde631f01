# Stage: filter. INPUT: parquet paths/globs; SOURCE: layout name; CONFIG: optional YAML.
INPUT ?= data/pairs/*.parquet
SOURCE ?= laion
ENGINE ?= local
FILTER_FLAGS ?=

.PHONY: filter demo-filter bench-filter
filter: $(STAMP)
	$(VENV)/bin/qwenvl-data filter --input $(INPUT) --source $(SOURCE) --engine $(ENGINE) --output $(OUT)/filter $(FILTER_FLAGS)

demo-filter: $(STAMP)
	$(VENV)/bin/qwenvl-data gen-pairs --output $(DEMO)/raw --rows 20000 --files 2 --seed 0
	$(VENV)/bin/qwenvl-data filter --input '$(DEMO)/raw/*.parquet' --source laion --output $(DEMO)/filter
	$(VENV)/bin/qwenvl-data validate $(DEMO)/filter/pairs

BENCH_ROWS ?= 1000000
bench-filter: $(STAMP)
	$(PY) bench/bench_filter.py --rows $(BENCH_ROWS)
