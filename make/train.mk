# model/: train the bundled Qwen-VL model on the training shards, one stage at a time.
#   make train STAGE=1 [DATA=$(OUT)/shards/stage1] [OUT=out] [CONFIG=tiny] [TOKENIZER=DIR] [ARGS="--steps 100"]
# TOKENIZER (default $(OUT)/tokenizer) is defined in the Makefile: shards read it too.
# Stage N+1 starts from $(OUT)/train/stage$(N) automatically.
STAGE ?= 1
CONFIG ?= tiny
DATA ?= $(OUT)/shards/stage$(STAGE)
TRAIN_OUT = $(OUT)/train/stage$(STAGE)
PREV_STAGE = $(shell echo $$(( $(STAGE) - 1 )))
TRAIN_INIT = $(if $(filter 1,$(STAGE)),--tokenizer $(TOKENIZER) --config $(CONFIG),--init $(OUT)/train/stage$(PREV_STAGE))
ARGS ?=

.PHONY: train demo-train bench-train

train: $(STAMP)
	@test -d $(TOKENIZER) || [ "$(STAGE)" != 1 ] || $(PY) scripts/make_tokenizer.py --out $(TOKENIZER)
	$(PY) -m qwenvl_data.model.train --stage $(STAGE) --data $(DATA) --out $(TRAIN_OUT) $(TRAIN_INIT) $(ARGS)

# A few tiny-model steps per stage 1 -> 2 -> 3 on the demo's shards (or fixture shards when the
# shards stage has not run), then one chat answer with its boxes drawn.
DEMO_TRAIN_ARGS := --workers 0 --shuffle-buffer 16 --warmup 1 --lr 5e-3 --min-lr 1e-4 --log-every 1
demo-train: $(STAMP)
	@mkdir -p $(DEMO)/train
	@test -d $(DEMO)/tokenizer || $(PY) scripts/make_tokenizer.py --out $(DEMO)/tokenizer
	@set -e; for s in 1 2 3; do \
	  data=$(DEMO)/shards/stage$$s; \
	  if ! ls $$data/*.tar >/dev/null 2>&1; then \
	    echo "demo-train: no $$data (demo-shards makes it): using fixture shards"; \
	    data=$(DEMO)/train/fixtures/stage$$s; \
	    $(PY) -m qwenvl_data.model.fixtures --out $$data --stage $$s --samples 16 >/dev/null; fi; \
	  case $$s in \
	    1) extra="--tokenizer $(DEMO)/tokenizer --config tiny --steps 4 --batch-size 4";; \
	    2) extra="--init $(DEMO)/train/stage1 --steps 3 --batch-size 2 --seq-len 1024";; \
	    3) extra="--init $(DEMO)/train/stage2 --steps 3 --batch-size 4 --seq-len 1024";; esac; \
	  echo "demo-train: stage $$s on $$data"; \
	  $(PY) -m qwenvl_data.model.train --stage $$s --data $$data --out $(DEMO)/train/stage$$s $$extra $(DEMO_TRAIN_ARGS); \
	done
	$(PY) -c "import random; from qwenvl_data.model.fixtures import draw_scene; \
	  open('$(DEMO)/train/chat.jpg', 'wb').write(draw_scene(random.Random(7))[0])"
	$(PY) -m qwenvl_data.model.chat --checkpoint $(DEMO)/train/stage3 --image $(DEMO)/train/chat.jpg \
	  --prompt "What is shown?" --max-new-tokens 16 --draw $(DEMO)/train/chat_boxes.png

bench-train: $(STAMP)
	$(PY) bench/bench_train.py --out bench_out/train
