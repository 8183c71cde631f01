"""Checkpoints: `model_{step:06d}.pt` + `optim_{step:06d}.pt` + `meta_{step:06d}.json` (+ `tokenizer/`).

Stages talk only through these files (nanochat's layout). The meta json holds the model config, the
stage, step, the data position of every rank and the RNG states, so `--resume` continues exactly;
the optimizer state has its own file because a later stage's `--init` reads only the model.
The RNG states are plain JSON (numbers and base64 bytes), never pickle: a checkpoint folder someone
shares cannot run code when it is resumed, and a malformed state is a one-line UsageError.
"""

from __future__ import annotations

import base64
import random
import re
from pathlib import Path

import numpy as np
import torch

from qwenvl_data import storage
from qwenvl_data.errors import UsageError

STEP_RE = re.compile(r"meta_(\d{6})\.json$")


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _bytes_tensor(text: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(text, validate=True), dtype=np.uint8).copy())


def rng_state() -> dict:
    """The RNG states of python, numpy, torch (and CUDA) as JSON-only values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": _b64(torch.get_rng_state()),
        "cuda": [_b64(s) for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else None,
    }


def set_rng_state(state) -> None:
    """Restore what rng_state wrote; anything else (a pickle string included) is a UsageError."""
    try:
        if not isinstance(state, dict):
            raise TypeError(f"expected a JSON object, got {type(state).__name__}")
        version, internal, gauss = state["python"]
        if not (isinstance(version, int) and len(internal) == 625 and all(type(v) is int for v in internal)):
            raise ValueError("python state is not 625 integers")
        kind, keys, pos, has_gauss, cached = state["numpy"]
        if kind != "MT19937" or len(keys) != 624:
            raise ValueError("numpy state is not an MT19937 key of 624 integers")
        torch_state = _bytes_tensor(state["torch"])
        cuda = [_bytes_tensor(s) for s in state["cuda"]] if state.get("cuda") else None
        random.setstate((version, tuple(internal), None if gauss is None else float(gauss)))
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
        torch.set_rng_state(torch_state)
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise UsageError(
            f"checkpoint meta has an invalid 'rng' state ({e}); it must be the JSON that qwenvl-train writes"
        ) from None
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def latest_step(out_dir: str | Path) -> int | None:
    steps = [
        int(m.group(1))
        for p in storage.glob(storage.join(out_dir, "meta_*.json"))
        if (m := STEP_RE.search(storage.name(p)))
    ]
    return max(steps) if steps else None


def save(out_dir: str | Path, step: int, model_state: dict, optim_state: dict | None, meta: dict):
    """Write model, optimizer, then meta last (its presence marks a complete checkpoint); each file
    atomically, on a local folder or an object store (qwenvl_data.storage)."""
    for name, obj in ((f"model_{step:06d}.pt", model_state), (f"optim_{step:06d}.pt", optim_state)):
        if obj is not None:
            with storage.atomic_write(storage.join(out_dir, name)) as f:
                torch.save(obj, f)
    storage.write_json(storage.join(out_dir, f"meta_{step:06d}.json"), {**meta, "step": step}, indent=1)


def resolve(path: str | Path) -> tuple[str | Path, int]:
    """A checkpoint directory (its latest step) or a `model_NNNNNN.pt` file -> (directory, step)."""
    if storage.is_remote(path):
        m = re.fullmatch(r"model_(\d{6})\.pt", storage.name(path))
        if m and storage.exists(path):
            return storage.parent(path), int(m.group(1))
        step = latest_step(path)
        if step is None:
            raise UsageError(f"no checkpoint (meta_NNNNNN.json) in {path}")
        return str(path).rstrip("/"), step
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


def _torch_load(url):
    with storage.open(url, "rb") as f:
        return torch.load(f, map_location="cpu", weights_only=True)


def load(path: str | Path, with_optimizer: bool = False):
    """-> (meta dict, model state dict, optimizer state dict or None)."""
    d, step = resolve(path)
    try:
        meta = storage.read_json(storage.join(d, f"meta_{step:06d}.json"))
        model_state = _torch_load(storage.join(d, f"model_{step:06d}.pt"))
        optim = _torch_load(storage.join(d, f"optim_{step:06d}.pt")) if with_optimizer else None
    except (OSError, ValueError, RuntimeError) as e:
        raise UsageError(f"cannot read checkpoint step {step} in {d}: {e}") from None
    return meta, model_state, optim


def put_dir(local: str | Path, url: str | Path) -> None:
    """Copy a small local folder (the tokenizer) into a checkpoint folder, local or object store."""
    for f in sorted(Path(local).rglob("*")):
        if f.is_file():
            storage.put_file(f, storage.join(url, f.relative_to(local).as_posix()))


def local_dir(url: str | Path, scratch: str | Path) -> Path:
    """A checkpoint sub-folder (the tokenizer) as a local folder: itself, or downloaded under `scratch`."""
    if not storage.is_remote(url):
        return Path(url)
    dest = Path(scratch) / storage.name(url)
    fs, path = storage.fs_of(url)
    fs.get(path.rstrip("/") + "/", str(dest) + "/", recursive=True)
    return dest
