# tasks + shards: dataset converters -> task shards; mixed stage-1/2/3 training shards + index.json
# (README: Stages: tasks and shards).
# TASKS_DATA/<dataset>/ holds each dataset as downloaded; datasets whose folder is missing are skipped.
TASKS_DATA ?= data
# The datasets come from the one registry (qwenvl_data/tasks/registry.py); set TASK_DATASETS to convert fewer.
TASK_DATASETS ?= $(shell $(PY) -m qwenvl_data.pipelines.cli tasks --list)
# The benchmarks' evaluation splits (configs/decontaminate.yaml paths are relative to it).
EVAL_DATA ?= $(TASKS_DATA)
SFT_JSON ?= data/sft/finetune.json
SHARDS_ARGS ?= $(if $(wildcard $(TOKENIZER)),--tokenizer $(TOKENIZER))
QD := $(PY) -m qwenvl_data.pipelines.cli
.PHONY: tasks shards demo-tasks demo-shards bench-shards

tasks: $(STAMP)
	@for d in $(TASK_DATASETS); do \
	  if [ -d "$(TASKS_DATA)/$$d" ]; then $(QD) tasks --dataset $$d --input $(TASKS_DATA)/$$d --output $(OUT)/tasks/$$d || exit 1; \
	  else echo "tasks: $(TASKS_DATA)/$$d not found, skipped"; fi; done

# Every training source is decontaminated first (OUT/decontam/<source>/); the shards read those copies
# and copy OUT/decontam/decontamination.json (removed samples per benchmark and source) into index.json.
DC_TASKS = $$(for d in $(1)/*/; do case $$(basename $$d) in clip|ocr) ;; *) echo $$d;; esac; done)

shards: $(STAMP)
	@srcs="$(strip $(wildcard $(OUT)/tasks/*) $(wildcard $(OUT)/ocr $(OUT)/clip))"; \
	if [ -z "$$srcs" ]; then echo "make shards: no training source under $(OUT)/ (tasks/*, ocr, clip): run make tasks, make synth-ocr or make clip-score first" >&2; exit 1; fi; \
	set -x; $(QD) decontaminate --input $$srcs --output $(OUT)/decontam --eval-root $(EVAL_DATA)
	@if [ -d $(OUT)/decontam/clip ]; then set -x; $(QD) shards --stage 1 --input $(OUT)/decontam/clip --output $(OUT)/shards/stage1 $(SHARDS_ARGS); \
	  else echo "shards: $(OUT)/clip not found, stage 1 skipped"; fi
	@tasks="$(call DC_TASKS,$(OUT)/decontam)"; ocr="$(if $(wildcard $(OUT)/ocr),$(OUT)/decontam/ocr)"; \
	if [ -n "$$tasks$$ocr" ]; then set -x; $(QD) shards --stage 2 --input $$tasks $$ocr --output $(OUT)/shards/stage2 $(SHARDS_ARGS); \
	  else echo "shards: no task or OCR samples, stage 2 skipped"; fi
	@tasks="$(call DC_TASKS,$(OUT)/decontam)"; sft="$(wildcard $(SFT_JSON))"; \
	if [ -n "$$tasks$$sft" ]; then set -x; $(QD) shards --stage 3 --input $$sft $$tasks --output $(OUT)/shards/stage3 $(SHARDS_ARGS); \
	  else echo "shards: no task samples or $(SFT_JSON), stage 3 skipped"; fi

# Tiny fixtures of every dataset in its real layout -> $(DEMO)/tasks/<dataset>/.
demo-tasks: $(STAMP)
	$(PY) scripts/make_task_fixtures.py $(DEMO)/task_inputs
	@for d in $(TASK_DATASETS) pairs; do \
	  $(QD) tasks --dataset $$d --input $(DEMO)/task_inputs/$$d --output $(DEMO)/tasks/$$d || exit 1; done
	$(QD) validate $(DEMO)/tasks

demo-shards: $(STAMP)
	@[ -d $(DEMO)/tasks ] || $(MAKE) --no-print-directory demo-tasks
	$(QD) decontaminate --input $(DEMO)/tasks/* $(wildcard $(DEMO)/ocr $(DEMO)/clip) --output $(DEMO)/decontam \
	  --eval-root $(DEMO)/task_inputs
	@if [ -d $(DEMO)/clip ]; then $(QD) shards --stage 1 --input $(DEMO)/decontam/clip --output $(DEMO)/shards/stage1; \
	  else echo "demo-shards: $(DEMO)/clip not found (run demo-clip-score first), stage 1 skipped"; fi
	$(QD) shards --stage 2 --input $(call DC_TASKS,$(DEMO)/decontam) $(if $(wildcard $(DEMO)/ocr),$(DEMO)/decontam/ocr) \
	  --output $(DEMO)/shards/stage2
	$(QD) shards --stage 3 --input $(DEMO)/task_inputs/sft/finetune.json $(call DC_TASKS,$(DEMO)/decontam) --output $(DEMO)/shards/stage3
	$(QD) validate $(DEMO)/shards
	@$(PY) -c "import json,sys; [print(p, json.dumps(json.load(open(p))['totals'])) for p in sys.argv[1:]]" \
	  $(DEMO)/shards/stage*/index.json

bench-shards: $(STAMP)
	$(PY) bench/bench_shards.py --out bench_out/shards.json
