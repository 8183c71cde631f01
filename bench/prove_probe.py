"""The visual-path probe of `make prove`: how fast the prove plan's ViT and adapter learn to tell glyphs
apart, apart from the LLM.

    python bench/prove_probe.py --data out/prove --stem patch --seconds 300
    python bench/prove_probe.py --data out/prove --stem conv --seconds 300 --json probe_conv.json

On the OCR pages a `make prove` run made (DATA/train/ocr, synth-ocr's shards), it trains the plan's
vision tower and adapter (`DATA/model.json`, the same builders as `qwenvl-train`) with a max pool over
the adapter's outputs and a linear head that names each page's first word or Chinese character (the
plan's 20 + 20 units), on one core for a fixed time, and reports held-out accuracy (pages of the last
shards of each language, never trained on) every 200 steps. Chance is 1/40, the most common unit ~0.06.

`--stem` swaps the tower's patchify convolution, to compare starts (README, "make prove": tried, not kept):
- `patch`: the plan's tower as trained (open_clip's 14x14 patchify convolution);
- `conv`: an "early convolutions" stem (Xiao et al. 2021): 3x3 stride 2 and 3x3 stride 1 convolutions
  (16 channels, GELU after each) then a (patch/2)-square convolution of stride patch/2 to the token width;
- `conv-gn`: the same with a GroupNorm over each image's whole map after every convolution (its tokens
  at patchify's scale; `conv`'s start about 8x smaller, under the position code).

Measured (README; bench/results/prove_probe_*.json; the default plan's pages, 300 s on one core, two
probes at a time on a 2-core machine): `patch` 0.075 (2,260 steps; seed 1: 0.070), `conv` 0.261 (1,608
steps), `conv-gn` 0.040 (1,448 steps). End to end the `conv` stem did not make the model read (README).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from qwenvl_data.errors import UsageError  # noqa: E402
from qwenvl_data.model.adapter import Resampler  # noqa: E402
from qwenvl_data.model.config import load_config  # noqa: E402
from qwenvl_data.model.data import load_image, normalise  # noqa: E402
from qwenvl_data.model.vision import build_vision_tower, patch_tokens  # noqa: E402
from qwenvl_data.prove.pages import EN_WORDS, ZH_CHARS  # noqa: E402

UNITS = list(EN_WORDS) + list(ZH_CHARS)


def conv_stem(patch_size: int, width: int, channels: int = 16, norm: bool = False) -> nn.Sequential:
    half = patch_size // 2
    layers: list[nn.Module] = []
    for cin, stride in ((3, 2), (channels, 1)):
        layers.append(nn.Conv2d(cin, channels, 3, stride=stride, padding=1))
        layers += [nn.GroupNorm(1, channels)] if norm else []
        layers.append(nn.GELU())
    layers.append(nn.Conv2d(channels, width, half, stride=half, bias=False))
    layers += [nn.GroupNorm(1, width)] if norm else []
    return nn.Sequential(*layers)


def read_pages(tars: list[Path], limit: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, size, size, 3], first-unit labels) from synth-ocr shards, in shard order."""
    index = {u: i for i, u in enumerate(UNITS)}
    images, labels = [], []
    for tar in tars:
        with tarfile.open(tar) as tf:
            files = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
        for name in sorted(files):
            if not name.endswith(".json") or len(images) >= limit:
                continue
            meta = json.loads(files[name])
            unit = meta["lines"][0]["words"][0]["text"]
            jpg = files.get(name[:-5] + ".jpg")
            if unit not in index or jpg is None:
                raise UsageError(f"{tar}: {name} is not a make prove page (first unit {unit!r})")
            images.append(load_image(jpg, size))
            labels.append(index[unit])
    if not images:
        raise UsageError(f"no pages in {[str(t) for t in tars]}")
    return np.stack(images), np.array(labels)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a make prove output folder (OUT/prove)")
    ap.add_argument("--stem", choices=("patch", "conv", "conv-gn"), default="patch")
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--train-pages", type=int, default=4000, help="per language")
    ap.add_argument("--test-pages", type=int, default=500, help="per language")
    ap.add_argument("--batch-size", type=int, default=32)
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
    train, test = [], []
    for lang in ("en", "zh"):
        tars = sorted((data / "train" / "ocr").glob(f"synthdog-{lang}-*.tar"))
        if len(tars) < 2:
            raise UsageError(f"{data / 'train' / 'ocr'}: fewer than 2 {lang} shards (train on some, test on the last)")
        train.append(read_pages(tars[:-1], a.train_pages, size))
        test.append(read_pages(tars[-1:], a.test_pages, size))
    xtr, ytr = np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train])
    xte, yte = np.concatenate([t[0] for t in test]), np.concatenate([t[1] for t in test])
    n_en = len(test[0][1])

    torch.manual_seed(a.seed)
    tower = build_vision_tower(cfg.vision, size)
    if a.stem != "patch":
        tower.conv1 = conv_stem(cfg.vision.patch_size, cfg.vision.width, norm=a.stem == "conv-gn")
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
    curve, step, t0 = [], 0, time.time()
    while time.time() - t0 < a.seconds:
        idx = rng.integers(0, len(xtr), a.batch_size)
        loss = nn.functional.cross_entropy(logits(xtr[idx]), torch.from_numpy(ytr[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 200 == 0:
            curve.append({"step": step, "seconds": round(time.time() - t0, 1), "loss": round(loss.item(), 3),
                          "acc": accuracy()})  # fmt: skip
            print(json.dumps(curve[-1]), flush=True)
    result = {"stem": a.stem, "steps": step, "seconds": round(time.time() - t0, 1), "acc": accuracy(), "curve": curve}
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UsageError as e:
        print(f"prove_probe: {e}", file=sys.stderr)
        sys.exit(2)
