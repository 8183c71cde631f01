# export (issue 10): training shards -> the official Qwen-VL fine-tuning JSON (qwenvl.json) and the
# LLaMA-Factory / ms-swift multimodal chat JSON (messages.json) with an image folder, so another trainer
# can take our data. EXPORT_INPUT: stage-3 (and stage-2) training shards; pure text has no chat form.
EXPORT_INPUT ?= $(wildcard $(OUT)/shards/stage3 $(OUT)/shards/stage2)
EXPORT_OUT ?= $(OUT)/export
.PHONY: export

export: $(STAMP)
	$(PY) -m qwenvl_data.pipelines.cli export --input $(EXPORT_INPUT) --output $(EXPORT_OUT)
