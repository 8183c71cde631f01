# tasks + shards: dataset converters -> task shards; mixed stage-1/2/3 training shards + index.json
# (README: Stages: tasks and shards).
# TASKS_DATA/<dataset>/ holds each dataset as downloaded; datasets whose folder is missing are skipped.
TASKS_DATA ?= data
TASK_DATASETS ?= refcoco refcoco+ refcocog vg grit vqav2 gqa textvqa docvqa chartqa ocrvqa dvqa ai2d coco text
SFT_JSON ?= data/sft/finetune.json
SHARDS_ARGS ?= $(if $(wildcard $(TOKENIZER)),--tokenizer $(TOKENIZER))
QD := $(PY) -m qwenvl_data.pipelines.cli
.PHONY: tasks shards demo-tasks demo-shards bench-shards

tasks: $(STAMP)
	@for d in $(TASK_DATASETS); do \
	  if [ -d "$(TASKS_DATA)/$$d" ]; then $(QD) tasks --dataset $$d --input $(TASKS_DATA)/$$d --output $(OUT)/tasks/$$d || exit 1; \
	  else echo "tasks: $(TASKS_DATA)/$$d not found, skipped"; fi; done

shards: $(STAMP)
	@if [ -d $(OUT)/clip ]; then $(QD) shards --stage 1 --input $(OUT)/clip --output $(OUT)/shards/stage1 $(SHARDS_ARGS); \
	  else echo "shards: $(OUT)/clip not found, stage 1 skipped"; fi
	$(QD) shards --stage 2 --input $(OUT)/tasks/* $(wildcard $(OUT)/ocr) --output $(OUT)/shards/stage2 $(SHARDS_ARGS)
	$(QD) shards --stage 3 --input $(wildcard $(SFT_JSON)) $(OUT)/tasks/* --output $(OUT)/shards/stage3 $(SHARDS_ARGS)

# Tiny fixtures of every dataset in its real layout -> $(DEMO)/tasks/<dataset>/.
demo-tasks: $(STAMP)
	$(PY) scripts/make_task_fixtures.py $(DEMO)/task_inputs
	@for d in $(TASK_DATASETS) pairs; do \
	  $(QD) tasks --dataset $$d --input $(DEMO)/task_inputs/$$d --output $(DEMO)/tasks/$$d || exit 1; done
	$(QD) validate $(DEMO)/tasks

demo-shards: $(STAMP)
	@if [ -d $(DEMO)/clip ]; then $(QD) shards --stage 1 --input $(DEMO)/clip --output $(DEMO)/shards/stage1; \
	  else echo "demo-shards: $(DEMO)/clip not found (run demo-clip-score first), stage 1 skipped"; fi
	@[ -d $(DEMO)/tasks ] || $(MAKE) --no-print-directory demo-tasks
	$(QD) shards --stage 2 --input $(DEMO)/tasks/* $(wildcard $(DEMO)/ocr) --output $(DEMO)/shards/stage2
	$(QD) shards --stage 3 --input $(DEMO)/task_inputs/sft/finetune.json $(DEMO)/tasks/* --output $(DEMO)/shards/stage3
	$(QD) validate $(DEMO)/shards
	@$(PY) -c "import json,sys; [print(p, json.dumps(json.load(open(p))['totals'])) for p in sys.argv[1:]]" \
	  $(DEMO)/shards/stage*/index.json

bench-shards: $(STAMP)
	$(PY) bench/bench_shards.py --out bench_out/shards.json
