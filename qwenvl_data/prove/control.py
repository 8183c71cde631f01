"""The shuffled control of `make prove`: the same training shards with images and texts mismatched.

Every sample keeps its json (text, boxes, loss mask) and receives the image members of another
sample of the same task (a seeded derangement within each task), so the control sees the same
images and the same texts in the same proportions, only never together. What a model trained on it
learns is what the text alone predicts; the gap to the real run is what the pixels taught.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from qwenvl_data.shards import ShardWriter, iter_tar_samples
from qwenvl_data.vocab import is_image_ext


def derangement(n: int, rng: random.Random) -> list[int]:
    """A permutation with no fixed point (n >= 2); identity for n < 2 (nothing to swap with)."""
    if n < 2:
        return list(range(n))
    while True:
        p = list(range(n))
        rng.shuffle(p)
        if all(i != j for i, j in enumerate(p)):
            return p


def shuffle_shards(src: str | Path, dst: str | Path, seed: int = 0) -> dict:
    """Write `dst/*.tar` (same names, same keys, same jsons) with images moved between samples of one
    task. Returns {'samples', 'moved', 'by_task'}."""
    src, dst = Path(src), Path(dst)
    tars = sorted(src.glob("*.tar"))
    samples = []  # (tar index, key, files)
    for t, tar in enumerate(tars):
        samples += [(t, key, files) for key, files in iter_tar_samples(tar)]
    by_task: dict[str, list[int]] = {}
    for i, (_, _, files) in enumerate(samples):
        meta = json.loads(files["json"])
        images = tuple(sorted(k for k in files if is_image_ext(k)))
        if not images:  # a text-only sample has nothing to swap
            continue
        by_task.setdefault(f"{meta.get('task')}:{images}", []).append(i)
    rng = random.Random(seed)
    donor = list(range(len(samples)))
    for group in by_task.values():
        perm = derangement(len(group), rng)
        for i, j in zip(group, perm):
            donor[i] = group[j]
    if dst.exists():
        shutil.rmtree(dst)
    moved = 0
    for t, tar in enumerate(tars):
        prefix, shard_id = tar.stem.rsplit("-", 1)  # stage2-000000: the same name in dst
        with ShardWriter(dst, int(shard_id), prefix=prefix) as w:
            for i, (ti, key, files) in enumerate(samples):
                if ti != t:
                    continue
                other = samples[donor[i]][2]
                out = {k: v for k, v in files.items() if not is_image_ext(k)}
                out.update({k: v for k, v in other.items() if is_image_ext(k)})
                moved += donor[i] != i
                w.add(key, out, {"key": key})
            w.close({"shuffled_from": str(tar)})
    return {"samples": len(samples), "moved": moved, "by_task": {g.split(":")[0]: len(v) for g, v in by_task.items()}}
