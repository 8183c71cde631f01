"""The visual-path probe of `make prove`: how fast the prove plan's ViT and adapter learn to tell glyphs
apart, apart from the LLM.

    python bench/prove_probe.py --data out/prove --stem patch --seconds 300
    python bench/prove_probe.py --data out/prove --stem conv --seconds 300 --json probe_conv.json

On the OCR pages a `make prove` run made (DATA/train/ocr, synth-ocr's shards), it trains the plan's
vision tower and adapter (`DATA/model.json`, the same builders as `qwenvl-train`) with a max pool over
the adapter's outputs and a linear head that names each page's first word or Chinese character (the
plan's 20 + 20 units), on one core for a fixed training time (evaluation not counted), and reports
held-out accuracy (pages of the last shard of each language, never trained on) every 200 steps. Chance
is 1/40, the most common unit ~0.06. A page that cannot be read is counted by reason and left out.

`--stem` swaps the tower's patchify convolution, to compare starts (README, "make prove": tried, not kept):
- `patch`: the plan's tower as trained (open_clip's 14x14 patchify convolution);
- `conv`: an "early convolutions" stem (Xiao et al. 2021): 3x3 stride 2 and 3x3 stride 1 convolutions
  (16 channels, GELU after each) then a (patch/2)-square convolution of stride patch/2 to the token width;
- `conv-gn`: the same with a GroupNorm over each image's whole map after every convolution (its tokens
  at patchify's scale; `conv`'s start about 8x smaller, under the position code);
- `conv-scaled`: `conv` with its last convolution started 7.5x larger (its tokens start at patchify's
  scale, std 0.83 on the default pages, without a norm).

Measured (README; bench/results/prove_probe_*.json; the default plan's pages, 300 s of training on one
core, two probes at a time on a 2-core machine): `patch` 0.107 (2,790 steps; seed 1: 0.079), `conv` 0.485
(2,023 steps), `conv-gn` 0.033 (1,885 steps); a later session (a faster machine): `conv` 0.668 (2,373 steps),
`conv-scaled` 0.714 (2,318 steps). End to end neither `conv` stem made the model read (README).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from qwenvl_data.errors import BadInput, UsageError  # noqa: E402
from qwenvl_data.model.adapter import Resampler  # noqa: E402
from qwenvl_data.model.config import load_config  # noqa: E402
from qwenvl_data.model.data import load_image, normalise  # noqa: E402
from qwenvl_data.model.vision import build_vision_tower, patch_tokens  # noqa: E402
from qwenvl_data.prove.pages import EN_WORDS, ZH_CHARS  # noqa: E402
from qwenvl_data.shards import iter_tar_samples  # noqa: E402

UNITS = list(EN_WORDS) + list(ZH_CHARS)


def conv_stem(patch_size: int, width: int, channels: int = 16, norm: bool = False, gain: float = 1.0) -> nn.Sequential:
    half = patch_size // 2
    layers: list[nn.Module] = []
    for cin, stride in ((3, 2), (channels, 1)):
        layers.append(nn.Conv2d(cin, channels, 3, stride=stride, padding=1))
        layers += [nn.GroupNorm(1, channels)] if norm else []
        layers.append(nn.GELU())
    layers.append(nn.Conv2d(channels, width, half, stride=half, bias=False))
    with torch.no_grad():
        layers[-1].weight.mul_(gain)
    layers += [nn.GroupNorm(1, width)] if norm else []
    return nn.Sequential(*layers)


# --stem: the conv_stem settings in place of patchify (None: the tower's own patchify convolution)
STEMS: dict[str, dict | None] = {
    "patch": None,
    "conv": {},
    "conv-gn": {"norm": True},
    "conv-scaled": {"gain": 7.5},  # tokens start at patchify's scale (std 0.11 -> 0.83 on the default pages)
}


def stem_for(name: str, patch_size: int, width: int) -> nn.Module | None:
    settings = STEMS[name]
    return None if settings is None else conv_stem(patch_size, width, **settings)


def read_pages(tars: list[Path], limit: int, size: int) -> tuple[np.ndarray, np.ndarray, Counter]:
    """(images uint8 [n, size, size, 3], first-unit labels, rejected pages by reason) from synth-ocr shards,
    in shard order, at most `limit` pages. A page that is not a readable make-prove page is counted, not fatal."""
    index = {u: i for i, u in enumerate(UNITS)}
    images, labels, rejected = [], [], Counter()
    for tar in tars:
        for _, files in iter_tar_samples(tar, {"json", "jpg"}):
            if len(images) >= limit:
                return np.stack(images), np.array(labels), rejected
            try:
                unit = json.loads(files["json"])["lines"][0]["words"][0]["text"]
            except (KeyError, IndexError, TypeError, ValueError):
                rejected["bad_json"] += 1
                continue
            if unit not in index:
                rejected["unknown_unit"] += 1
                continue
            if "jpg" not in files:
                rejected["missing_image"] += 1
                continue
            try:
                images.append(load_image(files["jpg"], size))
            except (OSError, ValueError, Image.DecompressionBombError):
                rejected["bad_image"] += 1
                continue
            labels.append(index[unit])
    if not images:
        raise UsageError(f"no readable make prove pages in {[str(t) for t in tars]} (rejected: {dict(rejected)})")
    return np.stack(images), np.array(labels), rejected


def positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a make prove output folder (OUT/prove)")
    ap.add_argument("--stem", choices=sorted(STEMS), default="patch")
    ap.add_argument("--seconds", type=positive(float), default=300, help="training time (evaluation not counted)")
    ap.add_argument("--train-pages", type=positive(int), default=4000, help="per language")
    ap.add_argument("--test-pages", type=positive(int), default=500, help="per language")
    ap.add_argument("--batch-size", type=positive(int), default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the accuracy curve here")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = Path(a.data)
    if not (data / "plan.json").is_file() or not (data / "model.json").is_file():
        raise UsageError(f"{data} is not a make prove output (no plan.json and model.json)")
    plan = json.loads((data / "plan.json").read_text())
    cfg = load_config(str(data / "model.json"))
    size = plan["image_size"]
    train, test, rejected = [], [], Counter()
    for lang in ("en", "zh"):
        tars = sorted((data / "train" / "ocr").glob(f"synthdog-{lang}-*.tar"))
        if len(tars) < 2:
            raise UsageError(f"{data / 'train' / 'ocr'}: fewer than 2 {lang} shards (train on some, test on the last)")
        for split, part, limit in ((train, tars[:-1], a.train_pages), (test, tars[-1:], a.test_pages)):
            *pages, bad = read_pages(part, limit, size)
            split.append(pages)
            rejected.update(bad)
    xtr, ytr = np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train])
    xte, yte = np.concatenate([t[0] for t in test]), np.concatenate([t[1] for t in test])
    n_en = len(test[0][1])

    torch.manual_seed(a.seed)
    tower = build_vision_tower(cfg.vision, size)
    stem = stem_for(a.stem, cfg.vision.patch_size, cfg.vision.width)
    if stem is not None:
        tower.conv1 = stem
    adapter = Resampler(cfg.adapter, cfg.vision.width, cfg.llm.hidden_size)
    head = nn.Linear(cfg.llm.hidden_size, len(UNITS))
    params = [p for m in (tower, adapter, head) for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.05)

    def logits(x: np.ndarray) -> torch.Tensor:
        return head(adapter(patch_tokens(tower, normalise(torch.from_numpy(x)))).max(1).values)

    def accuracy() -> dict:
        with torch.no_grad():
            pred = torch.cat([logits(xte[i : i + 100]).argmax(1) for i in range(0, len(xte), 100)]).numpy()
        hit = pred == yte
        return {"all": round(float(hit.mean()), 3), "en": round(float(hit[:n_en].mean()), 3),
                "zh": round(float(hit[n_en:].mean()), 3)}  # fmt: skip

    rng = np.random.default_rng(a.seed)
    curve, step, trained = [], 0, 0.0  # seconds spent training: the budget; evaluation is not counted
    while trained < a.seconds:
        t0 = time.time()
        idx = rng.integers(0, len(xtr), a.batch_size)
        loss = nn.functional.cross_entropy(logits(xtr[idx]), torch.from_numpy(ytr[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        trained += time.time() - t0
        if step % 200 == 0:
            curve.append({"step": step, "seconds": round(trained, 1), "loss": round(loss.item(), 3),
                          "acc": accuracy()})  # fmt: skip
            print(json.dumps(curve[-1]), flush=True)
    result = {
        "stem": a.stem,
        "params": sum(p.numel() for p in params),
        "pages": {"train": len(ytr), "test": len(yte), "rejected": dict(rejected)},
        "steps": step,
        "seconds": round(trained, 1),
        "acc": accuracy(),
        "curve": curve,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (UsageError, BadInput) as e:  # BadInput: a shard cut short or not a tar (qwenvl_data.shards.reader)
        print(f"prove_probe: {e}", file=sys.stderr)
        sys.exit(2)
