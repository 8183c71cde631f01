# export: training shards -> the official Qwen-VL fine-tuning JSON (qwenvl.json) and the
# LLaMA-Factory / ms-swift multimodal chat JSON (messages.json) with an image folder, so another trainer
# can take our data. EXPORT_INPUT: stage-3 (and stage-2) training shards; pure text has no chat form.
EXPORT_INPUT ?= $(wildcard $(OUT)/shards/stage3 $(OUT)/shards/stage2)
EXPORT_OUT ?= $(OUT)/export
.PHONY: export

export: $(STAMP)
	$(PY) -m qwenvl_data.pipelines.cli export --input $(EXPORT_INPUT) --output $(EXPORT_OUT)

.PHONY: demo-export bench-export
# after demo-shards: the demo's stage-3 and stage-2 shards exported
demo-export: $(STAMP)
	@[ -d $(DEMO)/shards/stage3 ] || $(MAKE) --no-print-directory demo-shards
	$(PY) -m qwenvl_data.pipelines.cli export --input $(DEMO)/shards/stage3 $(DEMO)/shards/stage2 --output $(DEMO)/export

bench-export: $(STAMP)
	$(PY) bench/bench_export.py --out bench_out/export.json
