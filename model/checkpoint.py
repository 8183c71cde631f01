"""Checkpoints: `model_{step:06d}.pt` + `optim_{step:06d}.pt` + `meta_{step:06d}.json` (+ `tokenizer/`).

Stages talk only through these files (nanochat's layout). The meta json holds the model config, the
stage, step, the data position of every rank and the RNG states, so `--resume` continues exactly;
the optimizer state has its own file because a later stage's `--init` reads only the model.
"""
from __future__ import annotations

import base64
import json
import pickle
import random
import re
from pathlib import Path

import numpy as np
import torch

from qwenvl_data.errors import UsageError

STEP_RE = re.compile(r"meta_(\d{6})\.json$")


def rng_state() -> str:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
    return base64.b64encode(pickle.dumps(state)).decode("ascii")


def set_rng_state(text: str):
    state = pickle.loads(base64.b64decode(text))
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_step(out_dir: str | Path) -> int | None:
    steps = [int(m.group(1)) for p in Path(out_dir).glob("meta_*.json") if (m := STEP_RE.search(p.name))]
    return max(steps) if steps else None


def save(out_dir: str | Path, step: int, model_state: dict, optim_state: dict | None, meta: dict):
    """Write model, optimizer, then meta last (its presence marks a complete checkpoint)."""
    out = Path(out_dir)
    for name, obj in ((f"model_{step:06d}.pt", model_state), (f"optim_{step:06d}.pt", optim_state)):
        if obj is not None:
            torch.save(obj, out / f".tmp-{name}")
            (out / f".tmp-{name}").replace(out / name)
    tmp = out / f".tmp-meta_{step:06d}.json"
    tmp.write_text(json.dumps({**meta, "step": step}, indent=1))
    tmp.replace(out / f"meta_{step:06d}.json")


def resolve(path: str | Path) -> tuple[Path, int]:
    """A checkpoint directory (its latest step) or a `model_NNNNNN.pt` file -> (directory, step)."""
    p = Path(path)
    if p.is_file():
        m = re.fullmatch(r"model_(\d{6})\.pt", p.name)
        if not m:
            raise UsageError(f"{path} is not a model_NNNNNN.pt checkpoint")
        return p.parent, int(m.group(1))
    step = latest_step(p) if p.is_dir() else None
    if step is None:
        raise UsageError(f"no checkpoint (meta_NNNNNN.json) in {path}")
    return p, step


def load(path: str | Path, with_optimizer: bool = False):
    """-> (meta dict, model state dict, optimizer state dict or None)."""
    d, step = resolve(path)
    try:
        meta = json.loads((d / f"meta_{step:06d}.json").read_text())
        model_state = torch.load(d / f"model_{step:06d}.pt", map_location="cpu", weights_only=True)
        optim = torch.load(d / f"optim_{step:06d}.pt", map_location="cpu", weights_only=True) \
            if with_optimizer else None
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as e:
        raise UsageError(f"cannot read checkpoint step {step} in {d}: {e}") from None
    return meta, model_state, optim
