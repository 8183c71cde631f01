# download + clip-score: clean pairs -> image shards -> CLIP-scored shards, and the report
# (README: Stage: download and CLIP score). Production runs read $(OUT)/filter/pairs and write $(OUT)/download,
# $(OUT)/clip; CLIP weights are a local file (never downloaded): CLIP_MODEL + CLIP_CHECKPOINT.
DOWNLOAD_FLAGS ?=
DOWNLOAD_ENGINE ?= local
CLIP_MODEL ?= ViT-B-32
CLIP_CHECKPOINT ?= models/clip/ViT-B-32.pt
CLIP_FLAGS ?=
QDL := $(VENV)/bin/qwenvl-data
.PHONY: download clip-score report demo-download demo-clip bench-clip bench-download

download: $(STAMP)
	$(QDL) download --input $(OUT)/filter/pairs --output $(OUT)/download --engine $(DOWNLOAD_ENGINE) $(DOWNLOAD_FLAGS)

clip-score: $(STAMP)
	$(QDL) clip-score --input $(OUT)/download --output $(OUT)/clip --model $(CLIP_MODEL) \
	  --checkpoint $(CLIP_CHECKPOINT) $(CLIP_FLAGS)

# Follows clip -> download -> filter through the inputs each stage's summary records.
report: $(STAMP)
	$(QDL) report $(firstword $(wildcard $(OUT)/clip $(OUT)/download $(OUT)/filter))

# ~200 pairs served by a loopback server (1 in 10 a bad answer), downloaded with only 127.0.0.1 allowed.
demo-download: $(STAMP)
	rm -rf $(DEMO)/download $(DEMO)/download_input
	$(PY) scripts/demo_download.py download --demo $(DEMO) --pairs 200
	$(QDL) validate $(DEMO)/download

# A tiny random open_clip checkpoint made on the spot; quantile thresholds make the rule visible.
demo-clip: $(STAMP)
	rm -rf $(DEMO)/clip
	$(PY) scripts/demo_download.py clip-setup --demo $(DEMO)
	$(QDL) clip-score --input $(DEMO)/download --output $(DEMO)/clip --model qwenvl-tiny-clip \
	  --checkpoint $(DEMO)/clip_model/tiny.pt --config $(DEMO)/clip_model/clip_demo.yaml
	$(QDL) validate $(DEMO)/clip
	$(QDL) report $(DEMO)/clip $(wildcard $(DEMO)/filter)

bench-clip: $(STAMP)
	$(PY) bench/bench_clip.py --images 512 --out bench_out/clip.json
	@echo "GPU numbers (ViT-B-32, ViT-L-14, bf16, batch 256): $(PY) bench/bench_clip_gpu.py on a CUDA machine"

# Ours vs plain img2dataset on the same 1000 loopback JPEGs (300-1600 px -> 512), images/s per core.
bench-download: $(STAMP)
	$(PY) bench/bench_download.py --images 1000 --out bench_out/download.json
