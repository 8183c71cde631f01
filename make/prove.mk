# prove: train the bundled model on shards the project makes itself and measure that it
# learns to point and to read, against a shuffled-shards control and the best constant answer.
#   make prove [OUT=out] [PROVE_ARGS="--stage2-steps 400"]   -> $(OUT)/prove/prove.{md,json,png}
PROVE_ARGS ?=
.PHONY: prove bench-prove-gpu

prove: $(STAMP)
	$(PY) -m qwenvl_data.pipelines.cli prove --output $(OUT)/prove $(PROVE_ARGS)

# One NVIDIA GPU, larger model and data; results under bench/results/prove_gpu.*
bench-prove-gpu: $(STAMP)
	$(PY) bench/prove_gpu.py --out bench_out/prove_gpu
