"""`qwenvl-data prove`: does a model trained on our shards learn to point and to read? (`make prove`)

    qwenvl-data prove --output out/prove                  # CPU, tiny model, 5,000 steps: ~15-20 min on 2 cores
    qwenvl-data prove --output /tmp/p --preset smoke      # plumbing only, a minute; learns nothing

A controlled experiment through the project's own commands: scenes with English/Chinese referring
expressions written as a Visual Genome download and converted by `tasks`, OCR pages from `synth-ocr`,
scene captions as pair shards; `shards` for stages 1 and 2; `qwenvl-train` stage 1 -> 2 on those
shards and, with the same settings, on a control whose images and texts are shuffled against each
other; held-out images (other seeds) answered through `qwenvl-chat`'s generation path and scored
against the shuffled run and the best constant answer. Writes OUT/prove.md, prove.json, prove.png.
"""

from __future__ import annotations

import json
import multiprocessing
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.prove import evaluate, experiment, report

PRESETS = {
    "cpu": {},
    # the plumbing in about a minute (tests): a few samples and steps, scores are noise
    "smoke": {
        "train_scenes": 24,
        "eval_scenes": 6,
        "ocr_train_pages": 16,
        "ocr_eval_pages": 6,
        "eval_per_lang": 4,
        "stage2_samples": 60,
        "vocab": 400,
        "stage1": {"steps": 2, "batch-size": 4, "lr": 2e-3, "warmup": 1, "seq-len": 160},
        "stage2": {"steps": 2, "batch-size": 2, "lr": 2e-3, "warmup": 1, "seq-len": 640},
    },
}


def add_arguments(p):
    p.add_argument("--output", required=True, help="folder for the data, runs, and the report")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--plan", help="JSON file of Plan fields overriding the preset (e.g. the GPU bench's sizes)")
    p.add_argument("--stage1-steps", type=int, help="override the preset's stage-1 steps (0: skip stage 1)")
    p.add_argument("--stage2-steps", type=int, help="override the preset's stage-2 steps")
    p.add_argument("--reuse-data", action="store_true", help="keep OUT's data and shards from an earlier run")
    p.add_argument("--runs", default="real,shuffled", help="which trainings to run (default both)")
    p.add_argument("--train-args", default="", help="extra qwenvl-train flags for every stage, e.g. '--workers 2'")


def make_plan(args) -> experiment.Plan:
    fields = dict(PRESETS[args.preset])
    if args.plan:
        try:
            fields.update(json.loads(Path(args.plan).read_text()))
        except (OSError, ValueError) as e:
            raise UsageError(f"--plan {args.plan}: {e}") from None
    try:
        plan = experiment.Plan(**fields)
    except TypeError as e:
        raise UsageError(f"--plan: {e}") from None
    if args.stage1_steps is not None:
        plan.stage1 = dict(plan.stage1, steps=args.stage1_steps)
    if args.stage2_steps is not None:
        plan.stage2 = dict(plan.stage2, steps=args.stage2_steps)
    return plan


def run(args) -> int:
    t0 = time.time()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    plan = make_plan(args)
    runs = [r for r in args.runs.split(",") if r]
    if not set(runs) <= {"real", "shuffled"} or not runs:
        raise UsageError(f"--runs takes real and/or shuffled, got {args.runs!r}")
    (out / "plan.json").write_text(json.dumps(plan.to_dict(), indent=1))
    timings: dict = {}
    if not (args.reuse_data and (out / "shards_shuffled" / "shuffle.json").exists()):
        experiment.make_data(out, plan, timings)
        experiment.make_shards(out, plan, timings)
    extra = shlex.split(args.train_args)
    shards = {"real": out / "shards", "shuffled": out / "shards_shuffled"}
    grounding = evaluate.grounding_set(out / "heldout" / "tasks", plan.eval_per_lang)
    ocr = evaluate.ocr_set(out / "heldout" / "ocr", max(2, plan.eval_per_lang // 2))
    ocr_budget = evaluate.answer_budget(ocr)  # every line of the longest page (a two-line page is ~81 tokens)
    answers, results, eval_seconds = {}, {}, {}

    def train_and_evaluate(r: str):
        """One run on its own core: training (a subprocess), then its held-out answers in a worker process, so
        that the run which ends first is scored while the other still trains and two runs ending together are
        scored on both cores (this thread only waits, holding no GIL)."""
        experiment.train_run(out, plan, r, shards[r], timings, extra)
        t = time.time()
        ckpt = experiment.last_stage(out, r)
        try:
            g_answers, o_answers, reading = scorers.submit(
                evaluate.answer_run, ckpt, grounding, ocr, ocr_budget, plan.threads
            ).result()
        except BrokenProcessPool:  # killed (out of memory, a signal): one line, not the pool's traceback
            raise BadInput(f"scoring the {r} run ({ckpt}): its worker process died") from None
        answers[r] = (g_answers, o_answers)
        results[r] = evaluate.score(grounding, ocr, g_answers, o_answers)
        results[r]["reading"] = reading
        eval_seconds[r] = round(time.time() - t, 1)

    # spawn, not fork: the workers start clean instead of copying a process with threads running
    with (
        ProcessPoolExecutor(len(runs), mp_context=multiprocessing.get_context("spawn")) as scorers,
        ThreadPoolExecutor(len(runs)) as pool,  # the runs are independent: one core each
    ):
        for _ in runs:  # the workers import torch and the model while the runs train, not after
            scorers.submit(evaluate.warm)
        pending = [pool.submit(train_and_evaluate, r) for r in runs]
        t1 = time.time()  # the best constant answers read the training split meanwhile
        answers["constant"] = evaluate.constant_answers(out / "train", grounding, ocr)
        results["constant"] = evaluate.score(grounding, ocr, *answers["constant"])
        timings["constant"] = round(time.time() - t1, 1)
        for job in pending:
            job.result()
    for r in runs:
        timings[f"evaluate-{r}"] = eval_seconds[r]
    answers = {r: answers[r] for r in (*runs, "constant")}  # the order of answers.jsonl: runs, then constant
    for r in ("real", "shuffled"):  # a run left out still gets a row, marked by n = 0
        results.setdefault(r, evaluate.score([], [], [], []))
    with open(out / "answers.jsonl", "w", encoding="utf-8") as f:
        for r in answers:
            for q, a in zip(grounding + ocr, answers[r][0] + answers[r][1]):
                f.write(
                    json.dumps({"run": r, "uid": q["uid"], "lang": q["lang"], "answer": a}, ensure_ascii=False) + "\n"
                )
    meta = {
        "command": "qwenvl-data prove " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 1
        else "qwenvl-data prove",
        "seconds": time.time() - t0,
        "timings": timings,
        "plan": plan.to_dict(),
    }
    met = report.write(out, results, meta)
    best = "real" if "real" in runs else runs[0]
    report.figure(out, grounding, answers[best][0], ocr, answers[best][1])
    print((out / "prove.md").read_text())
    print(
        f"prove: {out / 'prove.md'}, {out / 'prove.json'}, {out / 'prove.png'}; targets "
        f"{'all met' if all(met.values()) else 'not all met'}"
    )
    return 0
