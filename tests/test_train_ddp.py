"""`torchrun --nproc_per_node 2 qwenvl-train` on CPU (gloo DDP): the ranks train on disjoint shards,
the logged loss is the mean of the ranks' own losses, and rank 0 alone writes one checkpoint."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qwenvl_data.model.config import load_config  # noqa: E402
from qwenvl_data.model.data import StageLoader, normalise  # noqa: E402
from qwenvl_data.model.fixtures import SAMPLE_TEXT, train_tokenizer, write_stage_shards  # noqa: E402
from qwenvl_data.model.qwenvl import QwenVL  # noqa: E402
from qwenvl_data.model.tokenizer import TextEncoder, load_tokenizer  # noqa: E402

SIZE, BATCH, SEQ = 56, 3, 512  # 2 shards x 8 samples: each rank's epoch is batches of 3, 3, 2


def first_batch_loss(cfg_path, tok_dir, data, rank):
    """Step 1's loss on `rank` as the trainer computes it: the seed-0 model on that rank's first batch."""
    tok = load_tokenizer(tok_dir)
    enc = TextEncoder(tok, load_config(str(cfg_path)).adapter.num_queries)
    torch.manual_seed(0)
    model = QwenVL(load_config(str(cfg_path)), SIZE, len(tok), enc.pad_img)
    model.set_stage(1)
    loader = StageLoader(data, enc, 1, SIZE, SEQ, BATCH, workers=0, seed=0, shuffle_buffer=8, rank=rank, world=2)
    batch, _ = next(loader.batches())
    with torch.no_grad():
        return model(batch["input_ids"], normalise(batch["images"]), batch["labels"]).item()


def test_two_rank_ddp_splits_data_and_rank0_writes_one_checkpoint(tmp_path):
    train_tokenizer(SAMPLE_TEXT * 20, tmp_path / "tok", 400)
    cfg = load_config("tiny").to_dict()
    cfg["adapter"].update(num_queries=64, query_grid=8)  # as test_train.py: shorter sequences, same code
    (tmp_path / "tiny64.json").write_text(json.dumps(cfg))
    data = write_stage_shards(tmp_path / "stage1", 1, 16, shards=2)
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "qwenvl_data.model.train",
        "--stage",
        "1",
        "--data",
        str(data),
        "--out",
        str(out),
        "--tokenizer",
        str(tmp_path / "tok"),
        "--config",
        str(tmp_path / "tiny64.json"),
        "--image-size",
        str(SIZE),
        "--seq-len",
        str(SEQ),
        "--steps",
        "3",
        "--batch-size",
        str(BATCH),
        "--warmup",
        "1",
        "--workers",
        "0",
        "--shuffle-buffer",
        "8",
        "--log-every",
        "1000",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 rank(s), cpu" in proc.stderr

    # each rank names the shards it reads: disjoint, and together all of them
    shards = dict(re.findall(r"rank (\d)/2: 1 shard\(s\) per epoch, epoch 0: (stage1-jpg-\d+\.tar)", proc.stderr))
    assert sorted(shards) == ["0", "1"]
    assert sorted(shards.values()) == ["stage1-jpg-000000.tar", "stage1-jpg-000001.tar"]

    # exactly one checkpoint (the last step), complete: no leftover .tmp- files of an interrupted write
    assert sorted(p.name for p in out.iterdir()) == [
        "log.jsonl",
        "meta_000003.json",
        "model_000003.pt",
        "optim_000003.pt",
        "tokenizer",
    ]
    meta = json.loads((out / "meta_000003.json").read_text())
    assert meta["step"] == 3 and len(meta["data_positions"]) == 2 and len(meta["rng"]) == 2
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    # samples are summed over ranks: 3 + 3, 3 + 3, then each rank's short last batch (2 + 2) proves that
    # a rank's epoch is its 8 samples, not all 16; in all, every sample trained exactly once
    assert [r["samples"] for r in log] == [2 * BATCH, 2 * BATCH, 4]

    # the logged loss is the mean over ranks of two different batches' losses
    losses = [first_batch_loss(tmp_path / "tiny64.json", tmp_path / "tok", data, rank) for rank in (0, 1)]
    assert abs(losses[0] - losses[1]) > 1e-3
    assert log[0]["loss"] == pytest.approx(sum(losses) / 2, rel=1e-5)
