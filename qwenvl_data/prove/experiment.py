"""The steps of `make prove`, each one the command a user runs (`qwenvl-data synth-ocr | tasks |
shards`, `qwenvl-train`), started as a subprocess with its log kept under OUT/logs/.

    data:     scenes -> VG layout -> `tasks --dataset vg-regions`; captions -> pair shards;
              corpus + settings -> `synth-ocr`; train and held-out from different seeds (disjoint images)
    shards:   `shards --stage 1` (captions), `shards --stage 2` (grounding + OCR, weighted)
    control:  the same shards with images and texts shuffled against each other
    train:    `qwenvl-train` stage 1 -> 2 on the real shards and on the control, same settings
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.shards import iter_tar_samples

from . import control, pages, scenes

TINY = {
    "name": "prove-tiny",
    # from scratch, the visual path needs a sense of place from the start (model/vision.py, model/adapter.py):
    # with open_clip's and Qwen-VL's random starts the adapter returns one mean vector per image and the
    # LLM learns the text prior only (measured: held-out grounding 0.00-0.05 at any length we could run)
    "vision": {"width": 96, "layers": 3, "head_width": 32, "mlp_ratio": 2.0, "patch_size": 14, "pos_init": "sincos"},
    # center: without it the adapter's outputs collapse to one constant token in the first ~100 steps and
    # the model may never escape (model/adapter.py); measured, seed 0, 7,000 steps: held-out grounding 1.000 vs 0.625
    "adapter": {"num_queries": 36, "heads": 4, "query_grid": 6, "init": "local", "center": True},
    "llm": {
        "hidden_size": 128,
        "intermediate_size": 384,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "tie_word_embeddings": True,
        "initializer_range": 0.02,
    },
}


@dataclass
class Plan:
    """Sizes of one experiment; the defaults fit the 20-minute budget of a busy 2-core machine."""

    side: int = 224  # stored scene / page size in pixels
    image_size: int = 112  # training and evaluation resolution (all stages): 8x8 patches
    train_scenes: int = 3000
    eval_scenes: int = 80
    # Both languages together. Many distinct pages, each seen about once (measured, 7,000 steps, seed 0: 3,000
    # pages cycled ~8 times gave held-out OCR char accuracy 0.023; 30,000 pages 0.107, and text tokens guessed
    # teacher-forced 0.088 with the page's own image against 0.033 with another page's; with seed 1 it did not
    # start to read in 7,000 steps). synth-ocr makes them in ~25-40 s.
    ocr_train_pages: int = 30000
    ocr_eval_pages: int = 80
    eval_per_lang: int = 80  # held-out grounding queries (and half as many OCR pages) per language
    model: dict = field(default_factory=lambda: json.loads(json.dumps(TINY)))
    vocab: int = 512
    ocr_font_sizes: tuple = (32, 40)  # pixels on the 224-px page: 16-20 px once resized to 112
    ocr_pages: dict = field(default_factory=dict)  # more `synth_ocr:` settings over pages.SYNTH_SETTINGS
    # English words and Chinese characters per corpus row: each row draws its count from these lists
    ocr_line_units: dict = field(default_factory=lambda: {k: list(v) for k, v in pages.LINE_UNITS.items()})
    # File names among the fonts synth-ocr ships with (`synth-ocr --fonts` gets a folder of just these);
    # empty: all of them (seven DejaVu faces incl. serif, bold, italic, mono; WenQuanYi Micro Hei)
    ocr_fonts: tuple = ()
    # Stage 1 trains the adapter and ViT under a frozen LLM; a randomly initialised frozen LLM cannot
    # be steered that way (its loss stays at ln(vocab)), so the CPU plan starts at stage 2.
    stage1: dict = field(
        default_factory=lambda: {"steps": 0, "batch-size": 16, "lr": 2e-3, "min-lr": 2e-4, "warmup": 10, "seq-len": 128}
    )
    stage2: dict = field(
        default_factory=lambda: {
            # centred adapter, seed 0 (README): 5,000 steps held-out grounding 0.969, OCR char accuracy 0.145;
            # 7,000 steps 1.000 / 0.227 but 24 min for `make prove` on a slower 2-core machine (budget: 20)
            "steps": 5000,
            "batch-size": 2,
            "lr": 1e-3,  # 3e-3 measured: the image path never starts to matter
            "min-lr": 5e-5,
            "warmup": 40,
            "seq-len": 384,
        }
    )
    weights: dict = field(default_factory=lambda: {"ref_grounding": 5, "grounded_caption": 1, "ocr": 4})
    # samples in the stage-2 shards (groups repeat if short): about what 7,000 steps of ~9 packed samples see
    # (5,000 steps see ~45,000 of them)
    stage2_samples: int = 64000
    # Objects per scene, drawn from `objects`. The 20-minute CPU budget teaches the tiny model to find
    # and box the object a referring expression names in a scene of one (measured, centred: 2-3 objects
    # per scene 0.100 held-out at 5,000 steps and 0.087 at 10,000, the model rarely boxing any object;
    # 1-3 objects 0.250, README). The GPU plan (bench/prove_gpu.py) uses scenes of 2-3 objects.
    objects: tuple = (1,)
    twins: float = 0.25  # chance that an object after the first repeats an earlier one's colour and shape
    seed: int = 0
    threads: int = 1  # torch threads per step: on a busy 2-core box one thread is ~10x faster

    def __post_init__(self):
        """Scene settings a --plan file may get wrong: one line, not a traceback from inside the data step."""
        objects = list(self.objects) if isinstance(self.objects, (list, tuple)) else []
        if not objects or not all(isinstance(n, int) and 1 <= n <= 4 for n in objects):
            raise UsageError(f"plan: objects must be a non-empty list of counts from 1 to 4, got {self.objects!r}")
        if not isinstance(self.twins, (int, float)) or not 0 <= self.twins <= 1:
            raise UsageError(f"plan: twins is a chance from 0 to 1, got {self.twins!r}")
        self.objects = tuple(objects)
        if not isinstance(self.ocr_pages, dict):
            raise UsageError(f"plan: ocr_pages is a mapping of synth_ocr settings, got {self.ocr_pages!r}")
        if isinstance(self.ocr_fonts, str) or not all(isinstance(f, str) for f in self.ocr_fonts):
            raise UsageError(f"plan: ocr_fonts is a list of font file names, got {self.ocr_fonts!r}")
        self.ocr_fonts = tuple(self.ocr_fonts)
        pages.check_units(self.ocr_line_units)

    def to_dict(self) -> dict:
        return asdict(self)


def step(name: str, cmd: list[str], logs: Path, timings: dict, threads: int = 1):
    """Run one project command; its output goes to logs/<name>.log; a failure names the log."""
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    t0 = time.time()
    with open(logs / f"{name}.log", "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    timings[name] = round(time.time() - t0, 1)
    print(f"prove: {name}: {timings[name]:.1f}s", file=sys.stderr)
    if rc != 0:
        tail = (logs / f"{name}.log").read_text().strip().splitlines()[-1:]
        raise BadInput(f"step {name} failed (exit {rc}): {tail[0] if tail else ''} (log: {logs / name}.log)")


def qd(*args) -> list[str]:
    return [sys.executable, "-m", "qwenvl_data.pipelines.cli", *map(str, args)]


def make_data(out: Path, plan: Plan, timings: dict):
    """Train and held-out datasets in their download layouts, converted by the project's commands."""
    t0 = time.time()
    raw = out / "raw"
    for split, seed, n in (
        ("train", plan.seed * 10 + 1, plan.train_scenes),
        ("heldout", plan.seed * 10 + 2, plan.eval_scenes),
    ):
        scenes.write_vg(raw / f"vg_{split}", seed, n, plan.side, twins=plan.twins, counts=tuple(plan.objects))
    scenes.write_caption_pairs(
        raw / "pairs_train",
        plan.seed * 10 + 1,
        plan.train_scenes,
        plan.side,
        twins=plan.twins,
        counts=tuple(plan.objects),
    )
    corpus, synth_cfg = pages.write_inputs(
        raw / "ocr_inputs",
        plan.seed,
        {"long_side": plan.side, "font_sizes": list(plan.ocr_font_sizes), **plan.ocr_pages},
        plan.ocr_line_units,
    )
    fonts = pages.font_folder(raw / "fonts", plan.ocr_fonts) if plan.ocr_fonts else None
    timings["scenes"] = round(time.time() - t0, 1)
    logs = out / "logs"
    for split, seed, n in (
        ("train", plan.seed * 10 + 1, plan.ocr_train_pages),
        ("heldout", plan.seed * 10 + 2, plan.ocr_eval_pages),
    ):
        step(
            f"synth-ocr-{split}",
            qd(
                "synth-ocr",
                "--output",
                out / split / "ocr",
                "--num",
                n,
                "--seed",
                seed,
                "--corpus",
                corpus,
                "--config",
                synth_cfg,
                "--workers",
                2,
                *(["--fonts", fonts] if fonts else []),
            ),
            logs,
            timings,
        )
        step(
            f"tasks-{split}",
            qd(
                "tasks",
                "--dataset",
                "vg-regions",
                "--input",
                raw / f"vg_{split}",
                "--output",
                out / split / "tasks" / "vg",
            ),
            logs,
            timings,
        )


def tokenizer_texts(out: Path) -> list[str]:
    """Training text of the tokenizer: every prompt and target of the train split, and the captions."""
    texts = []
    for tar in sorted((out / "train").rglob("*.tar")):
        for _, files in iter_tar_samples(tar):
            meta = json.loads(files["json"])
            texts += [meta.get("prompt", ""), meta.get("target", "")]
    for tar in sorted((out / "raw" / "pairs_train").glob("*.tar")):
        texts += [json.loads(files["json"])["caption"] for _, files in iter_tar_samples(tar)]
    return [t for t in texts if t]


def make_shards(out: Path, plan: Plan, timings: dict):
    from qwenvl_data.model.fixtures import train_tokenizer

    t0 = time.time()
    train_tokenizer(tokenizer_texts(out), out / "tokenizer", plan.vocab)
    timings["tokenizer"] = round(time.time() - t0, 1)
    mix = out / "shards_mix.yaml"
    mix.write_text(yaml.safe_dump({"shards": {"stage2": {"weights": plan.weights, "default_weight": None}}}))
    logs = out / "logs"
    step(
        "shards-stage1",
        qd(
            "shards",
            "--stage",
            1,
            "--input",
            out / "raw" / "pairs_train",
            "--output",
            out / "shards" / "stage1",
            "--all",
            "--tokenizer",
            out / "tokenizer",
        ),
        logs,
        timings,
    )
    step(
        "shards-stage2",
        qd(
            "shards",
            "--stage",
            2,
            "--input",
            out / "train" / "tasks" / "vg",
            out / "train" / "ocr",
            "--output",
            out / "shards" / "stage2",
            "--config",
            mix,
            "--tokenizer",
            out / "tokenizer",
            "--num-samples",
            plan.stage2_samples,
        ),
        logs,
        timings,
    )
    t0 = time.time()
    stats = {
        s: control.shuffle_shards(out / "shards" / s, out / "shards_shuffled" / s, plan.seed)
        for s in ("stage1", "stage2")
    }
    timings["shuffle"] = round(time.time() - t0, 1)
    (out / "shards_shuffled" / "shuffle.json").write_text(json.dumps(stats, indent=1))


def train_run(out: Path, plan: Plan, run: str, shards: Path, timings: dict, extra: list[str] | None = None):
    """qwenvl-train stage 1 then stage 2 into OUT/runs/<run>/stage{1,2}."""
    cfg = out / "model.json"
    cfg.write_text(json.dumps(plan.model, indent=1))
    base = [
        "--workers",
        "0",
        "--shuffle-buffer",
        "200",
        "--log-every",
        "10",
        "--save-every",
        "100000",
        "--seed",
        str(plan.seed),
        "--image-size",
        str(plan.image_size),
    ] + (extra or [])
    for stage, hp in ((1, plan.stage1), (2, plan.stage2)):
        if not hp.get("steps"):
            continue
        dest = out / "runs" / run / f"stage{stage}"
        init = (
            ["--tokenizer", str(out / "tokenizer"), "--config", str(cfg)]
            if stage == 1 or not plan.stage1.get("steps")
            else ["--init", str(out / "runs" / run / "stage1")]
        )
        args = [x for k, v in hp.items() for x in (f"--{k}", str(v))]
        step(
            f"train-{run}-stage{stage}",
            [
                sys.executable,
                "-m",
                "qwenvl_data.model.train",
                "--stage",
                str(stage),
                "--data",
                str(shards / f"stage{stage}"),
                "--out",
                str(dest),
            ]
            + init
            + args
            + base,
            out / "logs",
            timings,
            plan.threads,
        )


def last_stage(out: Path, run: str) -> Path:
    for stage in (3, 2, 1):
        d = out / "runs" / run / f"stage{stage}"
        if (d / "log.jsonl").exists():
            return d
    raise BadInput(f"no trained checkpoint under {out / 'runs' / run}")
