"""`qwenvl-train --stage 1|2|3`: the paper's three training stages on the project's training shards.

    qwenvl-train --stage 1 --data demo_out/shards/stage1 --out demo_out/train/stage1 \
        --tokenizer demo_out/tokenizer --config tiny --steps 20 --batch-size 4 --warmup 2   # CPU, seconds

- Stage 1: LLM frozen, 224 px, caption shards. Stage 2: all trained, 448 px, same-task packing.
  Stage 3: ViT frozen, ChatML shards. Stage N+1 starts from stage N with `--init DIR`.
- Defaults are the paper's Appendix C (AdamW 0.9/0.98, eps 1e-6, wd 0.05, cosine to a minimum lr,
  clip 1.0, bf16 autocast on GPU, per-stage lr/warmup/steps); flags override them.
- `torchrun --nproc_per_node N` gives DDP (nccl on CUDA, gloo on CPU); `--fsdp` shards blocks with FSDP2
  when a replica does not fit. Each rank reads its own shards; rank 0 alone writes checkpoints and the
  log, whose loss is the mean over ranks and whose samples/tokens/rejected are summed over ranks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

import torch

from qwenvl_data import storage
from qwenvl_data.cliargs import check_numbers
from qwenvl_data.errors import QwenVLDataError, UsageError, internal_error
from qwenvl_data.outdir import own_output
from qwenvl_data.vocab import STAGE_SETTINGS

from . import checkpoint
from .config import ModelConfig, load_config
from .data import REASONS, StageLoader, normalise
from .qwenvl import QwenVL
from .tokenizer import TextEncoder, load_tokenizer

# Appendix C: peak lr, min lr, warmup, steps; resolution and sequence length come from the one place
# the shards and the loader also read (qwenvl_data.vocab.STAGE_SETTINGS: 224/512, 448/2048, 448/2048).
_OPTIM = {
    1: dict(lr=2e-4, min_lr=1e-6, warmup=500, steps=50_000, vit_lr_decay=0.95),
    2: dict(lr=5e-5, min_lr=1e-5, warmup=400, steps=19_000, vit_lr_decay=1.0),
    3: dict(lr=1e-5, min_lr=1e-6, warmup=3000, steps=8_000, vit_lr_decay=1.0),
}
STAGES = {n: {**_OPTIM[n], **STAGE_SETTINGS[n]} for n in _OPTIM}


def check_settings(cfg: ModelConfig, hp: dict, stage: int):
    """Settings that must agree, checked against the model config before anything is built."""
    seq_len, image_size = int(hp["seq_len"]), int(hp["image_size"])
    limit = cfg.llm.max_position_embeddings
    if seq_len > limit:
        raise UsageError(
            f"stage {stage}: sequence length {seq_len} exceeds the model's "
            f"max_position_embeddings {limit}; lower --seq-len or use a model config with more"
        )
    if seq_len < cfg.adapter.num_queries + 3:
        raise UsageError(
            f"stage {stage}: sequence length {seq_len} cannot hold one image "
            f"({cfg.adapter.num_queries} image tokens + <img></img> + one text token)"
        )
    if image_size <= 0 or image_size % cfg.vision.patch_size:
        raise UsageError(
            f"stage {stage}: image size {image_size} is not a positive multiple of the "
            f"patch size {cfg.vision.patch_size}"
        )


def check_resume(meta: dict, a: argparse.Namespace, hp: dict, out: Path):
    """--resume continues the same run: the stage, image size and sequence length must be the checkpoint's."""
    stage = meta.get("stage")
    if stage != a.stage:
        raise UsageError(
            f"--resume: the checkpoint in {out} is from a stage-{stage} run, this is --stage {a.stage}; "
            f"start stage {a.stage} in a fresh --out with --init {out}"
        )
    saved = meta.get("args") or {}
    for name in ("image_size", "seq_len"):
        was = saved.get(name) or STAGES[a.stage][name]
        if int(was) != int(hp[name]):
            flag = "--" + name.replace("_", "-")
            raise UsageError(
                f"--resume: the checkpoint in {out} was trained with {flag} {was}, this run has "
                f"{hp[name]}; resume with {flag} {was} or start a fresh --out"
            )


def add_arguments(ap: argparse.ArgumentParser):
    ap.add_argument("--stage", type=int, required=True, choices=(1, 2, 3))
    ap.add_argument("--data", required=True, help="directory of training shards (*.tar)")
    ap.add_argument("--out", required=True, help="checkpoint directory")
    ap.add_argument("--config", default="tiny", help="named model config or .json (ignored with --init/--resume)")
    ap.add_argument("--tokenizer", help="tokenizer directory (default: the --init checkpoint's)")
    ap.add_argument("--init", help="checkpoint dir or model_NNNNNN.pt of the previous stage")
    ap.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    ap.add_argument("--steps", type=int, help="total optimizer steps (sets the cosine schedule)")
    ap.add_argument("--stop-at", type=int, help="stop (with a checkpoint) after this step, e.g. a time-limited job")
    for name in ("lr", "min_lr", "vit_lr_decay"):
        ap.add_argument("--" + name.replace("_", "-"), type=float)
    for name in ("warmup", "image_size", "seq_len"):
        ap.add_argument("--" + name.replace("_", "-"), type=int)
    ap.add_argument("--batch-size", type=int, default=8, help="sequences per rank per micro-batch")
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=2, help="data loader processes per rank")
    ap.add_argument("--shuffle-buffer", type=int, default=1000)
    ap.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="leave out (and name) a shard that is truncated, short of its stats sidecar's count, "
        "empty or not a tar, instead of stopping with an error",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=1000)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--fsdp", action="store_true", help="shard parameters (FSDP2) instead of DDP")


def lr_at(step: int, peak: float, floor: float, warmup: int, total: int) -> float:
    """Linear warmup to `peak`, then cosine down to `floor` at `total` (step counts from 1)."""
    if step <= warmup:
        return peak * step / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))


def param_groups(model: QwenVL, weight_decay: float, vit_lr_decay: float) -> list[dict]:
    """Trained params only; no decay on gains, biases and embeddings; ViT layer-wise lr decay (stage 1)."""
    depth = len(model.visual.transformer.resblocks)
    groups: dict[tuple, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or name.endswith(("positional_embedding", "class_embedding", "adapter.query"))
        scale = 1.0
        if name.startswith("visual.") and vit_lr_decay != 1.0:
            if name.startswith("visual.transformer.resblocks."):
                layer = int(name.split(".")[3]) + 1
            else:
                layer = depth + 1 if name.startswith(("visual.ln_post", "visual.proj")) else 0
            scale = vit_lr_decay ** (depth + 1 - layer)
        g = groups.setdefault(
            (no_decay, scale), {"params": [], "lr_scale": scale, "weight_decay": 0.0 if no_decay else weight_decay}
        )
        g["params"].append(p)
    return list(groups.values())


def setup_distributed():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world, device


def wrap(model: QwenVL, device, world: int, fsdp: bool, stage: int):
    if fsdp:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = (
            MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            if device.type == "cuda"
            else MixedPrecisionPolicy()
        )
        for block in list(model.visual.transformer.resblocks) + list(model.llm.model.layers):
            fully_shard(block, mp_policy=mp)
        return fully_shard(model, mp_policy=mp)
    if world > 1:
        return torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            # text-only stage-2/3 batches leave the ViT unused; stage-1 caption batches always use it all
            find_unused_parameters=stage != 1,
        )
    return model


def full_states(model, optimizer, fsdp: bool):
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    inner = model.module if hasattr(model, "module") else model
    return inner.state_dict(), optimizer.state_dict()


def step_totals(loss_sum: float, samples: int, tokens: int, rejected: Counter, world: int, device):
    """One step over all ranks: the mean loss (the DDP objective), samples/tokens/rejected summed."""
    if world == 1:
        return loss_sum, samples, tokens, rejected
    v = torch.tensor([loss_sum, samples, tokens, *(rejected[r] for r in REASONS)], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(v)
    counts = Counter({r: int(n) for r, n in zip(REASONS, v[3:].tolist()) if n})
    return v[0].item() / world, int(v[1]), int(v[2]), counts


def train(a: argparse.Namespace) -> list[dict]:
    rank, world, device = setup_distributed()
    if a.fsdp and world == 1:
        raise UsageError("--fsdp shards the model over ranks: start it with torchrun --nproc_per_node 2 or more")
    hp = {k: (getattr(a, k, None) if getattr(a, k, None) is not None else v) for k, v in STAGES[a.stage].items()}
    out = a.out if storage.is_remote(a.out) else Path(a.out)  # checkpoints may go to an object store
    storage.makedirs(out)
    resume_step = checkpoint.latest_step(out) if a.resume else None
    if a.resume and resume_step is None:
        raise UsageError(f"--resume: no checkpoint in {out}")
    source = out if resume_step is not None else a.init
    meta, state, optim_state = (
        checkpoint.load(source, with_optimizer=resume_step is not None) if source else ({}, None, None)
    )
    cfg = ModelConfig.from_dict(meta["config"]) if meta else load_config(a.config)
    if resume_step is not None:
        check_resume(meta, a, hp, out)
    scratch = tempfile.mkdtemp(prefix="qwenvl-train-")  # a tokenizer read from an object store lands here
    tok_dir = a.tokenizer or (
        source and checkpoint.local_dir(storage.join(checkpoint.resolve(source)[0], "tokenizer"), scratch)
    )
    if not tok_dir:
        raise UsageError("--tokenizer DIR is needed when starting without --init")
    tokenizer = load_tokenizer(tok_dir)
    check_settings(cfg, hp, a.stage)
    encoder = TextEncoder(tokenizer, cfg.adapter.num_queries)
    torch.manual_seed(a.seed)  # the same seed builds the same initial model
    model = QwenVL(cfg, hp["image_size"], len(tokenizer), encoder.pad_img)
    if state is not None:
        model.load_checkpoint_state(state)
    trained = model.set_stage(a.stage)
    model.to(device)
    if rank == 0 and resume_step is None:
        if storage.is_remote(out):
            tokenizer.save_pretrained(str(Path(scratch) / "tokenizer_out"))
            checkpoint.put_dir(Path(scratch) / "tokenizer_out", storage.join(out, "tokenizer"))
        else:
            tokenizer.save_pretrained(str(out / "tokenizer"))
    shutil.rmtree(scratch, ignore_errors=True)
    model = wrap(model, device, world, a.fsdp, a.stage)
    inner = model.module if hasattr(model, "module") else model
    optimizer = torch.optim.AdamW(
        param_groups(inner, a.weight_decay, hp["vit_lr_decay"]),
        lr=hp["lr"],
        betas=(0.9, 0.98),
        eps=1e-6,
        fused=device.type == "cuda",
    )
    step, positions = 0, [None] * world
    if resume_step is not None:
        if a.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            set_optimizer_state_dict(model, optimizer, optim_state, options=StateDictOptions(full_state_dict=True))
        else:
            optimizer.load_state_dict(optim_state)
        if a.fsdp != meta.get("args", {}).get("fsdp", False):  # the optimizer files differ in layout
            raise UsageError(
                f"--resume: the checkpoint in {out} was written "
                f"{'with' if not a.fsdp else 'without'} --fsdp; resume it the same way"
            )
        step, positions = meta["step"], meta["data_positions"]
        if len(positions) != world:
            raise UsageError(f"checkpoint was written by {len(positions)} ranks, this run has {world}")
        checkpoint.set_rng_state(meta["rng"][rank] if rank < len(meta["rng"]) else meta["rng"][0])
    loader = StageLoader(
        a.data,
        encoder,
        a.stage,
        hp["image_size"],
        hp["seq_len"],
        a.batch_size,
        a.workers,
        a.seed,
        a.shuffle_buffer,
        rank,
        world,
        skip_bad_files=a.skip_bad_files,
    )
    batches = loader.batches(positions[rank])
    log_path = storage.join(out, "log.jsonl")
    history = (
        [json.loads(line) for line in storage.read_text(log_path).splitlines()] if storage.exists(log_path) else []
    )
    history = [h for h in history if h["step"] <= step] if resume_step is not None else []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and not a.fsdp else nullcontext()
    position, rejected = positions[rank] or loader.start(), Counter()
    epoch = min(e for e, _ in position["workers"])
    shards = [Path(u).name for u in loader.rank_shards(epoch)]
    # one write call per line: the ranks share the terminal and print() would interleave their lines
    sys.stderr.write(
        f"rank {rank}/{world}: {len(shards)} shard(s) per epoch, epoch {epoch}: "
        f"{' '.join(shards[:4])}{' ...' if len(shards) > 4 else ''}\n"
    )
    stop = min(hp["steps"], a.stop_at or hp["steps"])
    if rank == 0:
        print(
            f"stage {a.stage}: {cfg.name}, {sum(p.numel() for p in inner.parameters() if p.requires_grad):,} "
            f"trained params ({len(trained)} tensors), step {step} -> {stop}, {world} rank(s), {device}",
            file=sys.stderr,
        )
    t0 = time.time()
    while step < stop:
        step += 1
        lr = lr_at(step, hp["lr"], hp["min_lr"], hp["warmup"], hp["steps"])
        for g in optimizer.param_groups:
            g["lr"] = lr * g["lr_scale"]
        loss_sum, samples, tokens, step_rejected = 0.0, 0, 0, Counter()
        for micro in range(a.grad_accum):
            batch, position = next(batches)
            step_rejected.update(batch["rejected"])
            images = None if batch["images"] is None else normalise(batch["images"].to(device))
            sync = nullcontext() if world == 1 or a.fsdp or micro == a.grad_accum - 1 else model.no_sync()
            with sync, autocast:
                loss = (
                    model(
                        batch["input_ids"].to(device),
                        images,
                        batch["labels"].to(device),
                        position_ids=batch["position_ids"].to(device),
                    )
                    / a.grad_accum
                )
            loss.backward()
            loss_sum += loss.item()
            samples, tokens = samples + batch["samples"], tokens + batch["tokens"]
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], a.clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum, samples, tokens, step_rejected = step_totals(loss_sum, samples, tokens, step_rejected, world, device)
        rejected.update(step_rejected)
        record = {
            "step": step,
            "loss": loss_sum,
            "lr": lr,
            "samples": samples,
            "tokens": tokens,
            "seconds": round(time.time() - t0, 3),
            "rejected": dict(rejected),
        }
        history.append(record)
        if rank == 0 and (step % a.log_every == 0 or step == stop):
            print(json.dumps(record), file=sys.stderr)
        if step % a.save_every == 0 or step == stop:
            save(model, optimizer, a, out, step, cfg, position, history, rank, world)
    return history


def save(model, optimizer, a, out, step, cfg, position, history, rank, world):
    # FSDP gathers the full state with a collective every rank joins; DDP replicas: rank 0's is enough
    model_state, optim_state = full_states(model, optimizer, a.fsdp) if a.fsdp or rank == 0 else (None, None)
    positions, rngs = [position], [checkpoint.rng_state()]
    if world > 1:
        gathered = [None] * world
        torch.distributed.all_gather_object(gathered, (position, rngs[0]))
        positions, rngs = [g[0] for g in gathered], [g[1] for g in gathered]
    if rank == 0:
        meta = {
            "config": cfg.to_dict(),
            "stage": a.stage,
            "data": str(getattr(a, "data_url", None) or a.data),
            "data_positions": positions,
            "rng": rngs,
            "args": {k: v for k, v in vars(a).items() if isinstance(v, (int, float, str, bool))},
        }
        checkpoint.save(out, step, model_state, optim_state, meta)
        storage.write_text(storage.join(out, "log.jsonl"), "".join(json.dumps(h) + "\n" for h in history))


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser(prog="qwenvl-train", description=__doc__.splitlines()[0])
    add_arguments(ap)
    args = check_numbers(ap).parse_args(argv)
    try:
        # rank 0 (torchrun sets RANK) owns --out: one run at a time, a marker while unfinished
        owner = (
            own_output(
                args.out, stage=f"train-stage{args.stage}", inputs=[("--data", args.data), ("--init", args.init)]
            )
            if int(os.environ.get("RANK", "0")) == 0
            else nullcontext()
        )
        with owner, storage.local_input(args.data) as data:  # s3:// --data: downloaded to a temp folder first
            train(
                argparse.Namespace(**{**vars(args), "data": data, "data_url": args.data}) if data != args.data else args
            )
    except QwenVLDataError as e:
        print(f"qwenvl-train: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("qwenvl-train: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - last resort: one line, the traceback in a log file
        print(f"qwenvl-train: error: {internal_error('qwenvl-train', e)}", file=sys.stderr)
        return 1
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
