"""bench/prove_gpu.py has not run on a GPU yet (none was lent); what a CPU can check of it: its plan is a valid
`make prove` plan, its model builds at its sizes and turns a 224-px image into its visual tokens, and the exact
`qwenvl-data prove` command it runs goes end to end (stage 1 then stage 2, scenes of several objects, its
qwenvl-train flags) with the data sizes and steps shrunk."""

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import torch

from qwenvl_data.model.config import ModelConfig
from qwenvl_data.model.qwenvl import QwenVL, count_params
from qwenvl_data.prove import experiment
from qwenvl_data.shards import iter_tar_samples

BENCH = Path(__file__).resolve().parent.parent / "bench" / "prove_gpu.py"
PROBE = BENCH.parent / "prove_probe.py"


def _bench():
    spec = importlib.util.spec_from_file_location("prove_gpu", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_plan_is_a_valid_plan_and_its_model_builds():
    plan = experiment.Plan(**_bench().PLAN)
    assert plan.image_size == 224 and set(plan.objects) == {2, 3} and plan.stage1["steps"] > 0
    cfg = ModelConfig.from_dict(plan.model)
    model = QwenVL(cfg, plan.image_size, plan.vocab, plan.vocab - 1)
    assert 10e6 < count_params(model) < 40e6  # the ~20M parameters its docstring promises
    with torch.no_grad():
        tokens = model.encode_images(torch.zeros(1, 3, plan.image_size, plan.image_size))
    assert tokens.shape[:2] == (1, plan.model["adapter"]["num_queries"])


def test_gpu_bench_command_runs_end_to_end_shrunk(tmp_path):
    bench = _bench()
    plan = dict(bench.PLAN)
    plan.update(
        train_scenes=24,
        eval_scenes=4,
        ocr_train_pages=16,
        ocr_eval_pages=4,
        eval_per_lang=1,
        stage2_samples=60,
        vocab=400,
        threads=1,
        stage1=dict(plan["stage1"], steps=1, **{"batch-size": 2}),
        stage2=dict(plan["stage2"], steps=1, **{"batch-size": 1}),
        ocr_pages={"shard_size": 4},  # several OCR shards per language, for the visual probe below
    )
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    cmd = bench.command(tmp_path / "run", tmp_path / "plan.json")
    cmd[cmd.index("--train-args") + 1] = bench.TRAIN_ARGS.replace("--workers 4", "--workers 0")
    cmd += ["--runs", "real"]  # the control trains the same way; once is enough to check the command
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "run" / "prove.json").read_text())
    assert report["plan"]["model"]["name"] == "prove-gpu" and report["plan"]["objects"] == [2, 3, 3]
    runs = tmp_path / "run" / "runs" / "real"
    assert (runs / "stage1").is_dir() and (runs / "stage2").is_dir()  # the paper's order: stage 1, then 2
    assert (tmp_path / "run" / "prove.png").stat().st_size > 10_000

    # bench/prove_probe.py reads the same run: pages' first units as labels, trains the plan's tower + adapter
    spec = importlib.util.spec_from_file_location("prove_probe", PROBE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    tars = sorted((tmp_path / "run" / "train" / "ocr").glob("synthdog-zh-*.tar"))
    images, labels, rejected = mod.read_pages(tars, 100, 224)
    truth, good = [], []
    for tar in tars:
        for _, files in iter_tar_samples(tar):
            truth.append(json.loads(files["json"])["lines"][0]["words"][0]["text"])
            good.append(files)
    assert images.shape == (len(truth), 224, 224, 3) and [mod.UNITS[i] for i in labels] == truth and not rejected
    # bad pages are counted by reason and left out; the good ones around them are all kept
    page = json.loads(good[0]["json"])
    bad = [
        ("g1", good[0]),
        ("j1", {"json": b"{not json", "jpg": good[0]["jpg"]}),
        ("j2", {"json": json.dumps({**page, "lines": []}).encode(), "jpg": good[0]["jpg"]}),
        (
            "u1",
            {"json": json.dumps({**page, "lines": [{"words": [{"text": "zebra"}]}]}).encode(), "jpg": good[0]["jpg"]},
        ),
        ("m1", {"json": good[1]["json"]}),
        ("i1", {"json": good[1]["json"], "jpg": b"not a jpeg"}),
        ("g2", good[1]),
    ]
    mixed = tmp_path / "mixed.tar"
    with tarfile.open(mixed, "w") as tf:
        for key, files in bad:
            for ext, data in files.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    images, labels, rejected = mod.read_pages([mixed], 100, 112)
    assert [mod.UNITS[i] for i in labels] == truth[:2] and images.shape == (2, 112, 112, 3)
    assert rejected == {"bad_json": 2, "unknown_unit": 1, "missing_image": 1, "bad_image": 1}
    params = set()
    for stem in ("patch", "conv", "conv-gn"):
        out = tmp_path / f"probe_{stem}.json"
        cmd = [sys.executable, str(PROBE), "--data", str(tmp_path / "run"), "--stem", stem, "--seconds", "0.5"]
        done = subprocess.run([*cmd, "--batch-size", "2", "--json", str(out)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(out.read_text())
        assert result["stem"] == stem and result["steps"] >= 1 and 0 <= result["acc"]["all"] <= 1
        assert result["pages"]["train"] + result["pages"]["test"] == 2 * len(truth)
        params.add(result["params"])
    assert len(params) == 3  # each stem is a different tower, not the same one three times
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():  # conv-scaled (as --stem builds it): the conv stem with its last convolution's start 7.5x
        torch.manual_seed(0)
        plain = mod.stem_for("conv", 14, 32)(x)
        torch.manual_seed(0)
        assert torch.allclose(mod.stem_for("conv-scaled", 14, 32)(x), 7.5 * plain, rtol=1e-4, atol=1e-6)
    assert mod.stem_for("patch", 14, 32) is None and set(mod.STEMS) == {"patch", "conv", "conv-gn", "conv-scaled"}
    done = subprocess.run([sys.executable, str(PROBE), "--data", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "plan.json" in done.stderr
    bad_arg = [sys.executable, str(PROBE), "--data", str(tmp_path / "run"), "--batch-size", "0"]
    done = subprocess.run(bad_arg, capture_output=True, text=True)
    assert done.returncode == 2 and "--batch-size: must be positive, got 0" in done.stderr.splitlines()[-1]
