# synth-ocr: synthetic EN/ZH OCR pages + real PDF/HTML pages -> OCR task shards (README: Stage: synth-ocr)
SYNTH_NUM ?= 10000
SYNTH_ARGS ?=
.PHONY: synth-ocr demo-synth bench-synth

# Production run; add real pages with SYNTH_ARGS="--pdf DIR --html DIR --corpus FILE --backgrounds DIR".
synth-ocr: $(STAMP)
	$(PY) -m qwenvl_data.pipelines.cli synth-ocr --output $(OUT)/ocr --num $(SYNTH_NUM) $(SYNTH_ARGS)

# A few hundred pages in both languages, a generated PDF and an HTML page, and preview sheets.
demo-synth: $(STAMP)
	$(PY) -m qwenvl_data.ocr.demo_pages $(DEMO)/ocr_inputs
	$(PY) -m qwenvl_data.pipelines.cli synth-ocr --output $(DEMO)/ocr --num 300 --shard-size 75 \
	  --pdf $(DEMO)/ocr_inputs/pdf --html $(DEMO)/ocr_inputs/html
	$(PY) -m qwenvl_data.pipelines.cli validate $(DEMO)/ocr/synthdog-en-000000.tar $(DEMO)/ocr/synthdog-zh-000000.tar \
	  $(DEMO)/ocr/pdf-000000.tar $(DEMO)/ocr/html-000000.tar
	$(PY) -m qwenvl_data.pipelines.cli preview $(DEMO)/ocr/synthdog-en-000000.tar --output $(DEMO)/ocr/preview-en.png --max 8
	$(PY) -m qwenvl_data.pipelines.cli preview $(DEMO)/ocr/synthdog-zh-000000.tar --output $(DEMO)/ocr/preview-zh.png --max 8
	$(PY) -m qwenvl_data.pipelines.cli preview $(DEMO)/ocr/pdf-000000.tar --output $(DEMO)/ocr/preview-pdf.png
	$(PY) -m qwenvl_data.pipelines.cli preview $(DEMO)/ocr/html-000000.tar --output $(DEMO)/ocr/preview-html.png

bench-synth: $(STAMP)
	$(PY) bench/bench_synth.py --pages 200 --out bench_out/synth.json
