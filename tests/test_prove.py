"""`make prove`'s plumbing, without asserting learning: held-out images never in training, the
VG-layout scenes survive the real converter with their boxes, the metrics on hand-made answers, the
shuffled control really mismatches images and texts, packed samples do not see each other, and a
shortened run of `qwenvl-data prove` writes its table and figure."""

import hashlib
import json
import random

import numpy as np
import pytest
import torch

from qwenvl_data.boxes import box_to_bins
from qwenvl_data.model.data import Batcher
from qwenvl_data.pipelines.cli import main as cli_main
from qwenvl_data.pipelines.tasks import convert_dataset
from qwenvl_data.prove import control, metrics, scenes
from qwenvl_data.shards import ShardWriter, iter_tar_samples


def _images(folder):
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.jpg")}


def test_scenes_split_by_image_and_boxes_survive_the_converter(tmp_path):
    scenes.write_vg(tmp_path / "train", seed=1, count=12)
    scenes.write_vg(tmp_path / "heldout", seed=2, count=6)
    train, held = _images(tmp_path / "train"), _images(tmp_path / "heldout")
    assert len(train) == 12 and len(held) == 6 and not train & held
    regions = json.loads((tmp_path / "train" / "region_descriptions.json").read_text())
    truth = {}
    for entry in regions:
        phrases = [r["phrase"] for r in entry["regions"]]
        assert len(phrases) == len(set(phrases)), "an expression must pick out one object"
        for r in entry["regions"]:
            truth[r["phrase"], entry["id"]] = box_to_bins(
                (r["x"], r["y"], r["x"] + r["width"], r["y"] + r["height"]), 224, 224
            )
    assert any(any("\u4e00" <= c <= "\u9fff" for c in p) for p, _ in truth)  # Chinese expressions too
    stats = convert_dataset("vg-regions", tmp_path / "train", tmp_path / "tasks", shard_size=1000)
    assert stats["out"] == 2 * len(truth) and not stats["rejected"]
    for tar in (tmp_path / "tasks").glob("*.tar"):
        for _, files in iter_tar_samples(tar):
            meta = json.loads(files["json"])
            ref = meta["objects"][0]["ref"]
            # a region sample is in its expression's language (the converter once called all of them en)
            assert meta["lang"] == ("zh" if any("\u4e00" <= c <= "\u9fff" for c in ref) else "en"), meta
            if meta["task"] == "ref_grounding":
                image_id = int(meta["image_ref"].split("/")[-1].split(".")[0])
                assert tuple(meta["objects"][0]["box"]) == truth[ref, image_id]


def test_grounding_metrics_on_hand_made_answers():
    rows = [
        {"pred": metrics.first_box("<box>(100,100),(300,300)</box>"), "true": (100, 100, 300, 300)},  # IoU 1
        {"pred": metrics.first_box("<ref>x</ref><box>(100,100),(300,200)</box>"), "true": (100, 100, 300, 300)},
        {"pred": metrics.first_box("(1,2),(3,4)"), "true": (0, 0, 10, 10)},
    ]  # no <box>: unparsed, IoU 0
    s = metrics.grounding_scores(rows)
    assert s["n"] == 3 and s["acc"] == pytest.approx(2 / 3) and s["miou"] == pytest.approx(0.5)
    assert s["parsed"] == pytest.approx(2 / 3)
    assert metrics.iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert metrics.iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_grounding_tells_another_object_from_nothing(tmp_path):
    """Scenes of several objects: every held-out query knows all its image's object boxes (from the converted
    shards, checked against the VG files), and the scores say whether a miss boxed another object or nothing,
    per objects in the scene, up to the report's table."""
    from qwenvl_data.prove import evaluate, experiment, report

    scenes.write_vg(tmp_path / "vg", seed=3, count=8, counts=(1, 3))
    regions = json.loads((tmp_path / "vg" / "region_descriptions.json").read_text())
    truth = {
        entry["id"]: sorted(
            {
                box_to_bins((r["x"], r["y"], r["x"] + r["width"], r["y"] + r["height"]), 224, 224)
                for r in entry["regions"]
            }
        )
        for entry in regions
    }
    assert {len(b) for b in truth.values()} == {1, 3}
    convert_dataset("vg-regions", tmp_path / "vg", tmp_path / "tasks", shard_size=1000)
    queries = evaluate.grounding_set(tmp_path / "tasks", 100)
    assert len(queries) == 2 * sum(len(b) for b in truth.values())  # every object, in both languages
    for q in queries:
        assert [tuple(b) for b in q["scene"]] == truth[int(q["image_ref"].split("/")[-1].split(".")[0])]
        assert tuple(q["true"]) in [tuple(b) for b in q["scene"]]
    # answers: the named object, another object of the scene, and an empty corner
    answers = []
    for i, q in enumerate(queries):
        other = next((b for b in q["scene"] if tuple(b) != tuple(q["true"])), None)
        box = q["true"] if i % 3 == 0 else other if i % 3 == 1 and other else (0, 0, 5, 5)
        answers.append("<box>({},{}),({},{})</box>".format(*box))
    scores = evaluate.score(queries, [], answers, [])
    by = scores["grounding_by_objects"]
    assert set(by) == {"1", "3"} and by["1"]["n"] + by["3"]["n"] == len(queries)
    for n, g in by.items():
        rows = [(i, q) for i, q in enumerate(queries) if len(q["scene"]) == int(n)]
        named = sum(i % 3 == 0 for i, _ in rows)
        other = sum(i % 3 == 1 and len(q["scene"]) > 1 for i, q in rows)
        assert g["acc"] == pytest.approx(named / len(rows)) and g["any_acc"] == pytest.approx(
            (named + other) / len(rows)
        )
    assert by["3"]["any_acc"] > by["3"]["acc"]  # another object is "found an object", not "named object"
    assert scores["grounding"]["all"]["any_acc"] is not None
    assert metrics.grounding_scores([{"pred": None, "true": (0, 0, 9, 9)}])["any_acc"] is None  # no scene: unknown
    empty = evaluate.score([], [], [], [])
    meta = {"command": "t", "seconds": 1.0, "timings": {}, "plan": experiment.Plan().to_dict(), "targets": {}}
    text = report.markdown({"real": scores, "shuffled": empty, "constant": empty}, meta)
    g3 = by["3"]
    assert f"| real | 3 | {g3['n']} | {g3['acc']:.3f} | {g3['any_acc']:.3f} | {g3['miou']:.3f} |" in text
    one = {**scores, "grounding_by_objects": {"1": by["1"]}}  # scenes of one object: no such table
    assert "| real | 1 |" not in report.markdown({"real": one, "shuffled": empty, "constant": empty}, meta)


def test_ocr_metrics_on_hand_made_answers():
    true = [{"text": "red map", "box": (100, 100, 500, 200)}, {"text": "sun", "box": (100, 300, 300, 400)}]
    answer = "<ref>red mop</ref><quad>(100,100),(500,100),(500,200),(100,200)</quad><ref>sun</ref>"
    s = metrics.ocr_scores([{"pred": metrics.ocr_lines(answer), "true": true, "lang": "en"}])
    assert s["char_acc"] == pytest.approx(1 - 1 / len("red map\nsun"))  # one substitution
    assert s["word_acc"] == pytest.approx(2 / 3)  # red, sun found; map is not
    assert s["line_miou"] == pytest.approx(0.5) and s["line_acc"] == pytest.approx(0.5)  # sun has no quad
    zh = metrics.ocr_scores(
        [{"pred": metrics.ocr_lines("<ref>山水</ref>"), "true": [{"text": "山火", "box": (0, 0, 9, 9)}], "lang": "zh"}]
    )
    assert zh["word_acc"] == pytest.approx(0.5) and zh["char_acc"] == pytest.approx(0.5)
    empty = metrics.ocr_scores([{"pred": [], "true": true, "lang": "en"}])
    assert empty["char_acc"] == 0.0 and empty["word_acc"] == 0.0


def test_best_constant_box_beats_nothing():
    rng = random.Random(0)
    boxes = [(x, y, x + 300, y + 300) for x, y in ((rng.randrange(0, 100), rng.randrange(0, 100)) for _ in range(50))]
    b = metrics.best_constant_box(boxes)
    assert sum(metrics.iou(b, t) >= 0.5 for t in boxes) > 25


def _training_shards(folder):
    """Two stage-2 shards of scene images: captions and ref groundings, then OCR-tagged samples."""
    for shard, tasks in ((0, ("caption", "ref_grounding") * 6), (1, ("ocr",) * 6)):
        with ShardWriter(folder, shard, prefix="stage2") as w:
            for i, task in enumerate(tasks):
                jpg, objs = scenes.make_scene(shard, i)
                segs = [{"text": "<img>img0.jpg</img>" + objs[0].en, "loss": False}, {"text": " x", "loss": True}]
                meta = {
                    "schema": "train",
                    "uid": f"u{shard}{i}",
                    "stage": 2,
                    "task": task,
                    "lang": "en",
                    "source": "t",
                    "images": ["img0.jpg"],
                    "segments": segs,
                }
                w.add(f"{shard}{i:04d}", {"img0.jpg": jpg, "json": meta})
            w.close({})


def test_control_shuffles_images_within_each_task(tmp_path):
    _training_shards(tmp_path / "real")
    stats = control.shuffle_shards(tmp_path / "real", tmp_path / "shuffled", seed=0)
    real = {k: f for tar in sorted((tmp_path / "real").glob("*.tar")) for k, f in iter_tar_samples(tar)}
    shuf = {k: f for tar in sorted((tmp_path / "shuffled").glob("*.tar")) for k, f in iter_tar_samples(tar)}
    assert sorted(p.name for p in (tmp_path / "shuffled").glob("*.tar")) == sorted(
        p.name for p in (tmp_path / "real").glob("*.tar")
    )
    assert real.keys() == shuf.keys() and stats["samples"] == 18
    moved = 0
    for key, files in real.items():
        assert shuf[key]["json"] == files["json"]  # the text and its loss mask are untouched
        images = {e: b for e, b in files.items() if e != "json"}
        if images:
            assert images.keys() == {e for e in shuf[key] if e != "json"}
            moved += images != {e: b for e, b in shuf[key].items() if e != "json"}
    assert moved == stats["moved"] == sum(1 for f in real.values() if len(f) > 1)  # every image moved
    for task in ("caption", "ref_grounding", "ocr"):  # the same images per task, only reassigned
        pick = [k for k, f in real.items() if json.loads(f["json"])["task"] == task]
        before = sorted(hashlib.sha256(real[k][e]).hexdigest() for k in pick for e in real[k] if e != "json")
        after = sorted(hashlib.sha256(shuf[k][e]).hexdigest() for k in pick for e in shuf[k] if e != "json")
        assert before == after


def _examples(lengths, task="ocr"):
    return [
        {
            "ids": np.arange(1, n + 1, dtype=np.int32),
            "labels": np.arange(1, n + 1, dtype=np.int32),
            "images": [],
            "task": task,
            "key": f"k{i}",
        }
        for i, n in enumerate(lengths)
    ]


def test_packed_samples_restart_positions_and_do_not_attend_to_each_other():
    from qwenvl_data.model.config import load_config
    from qwenvl_data.model.qwenvl import build_llm

    batch = next(iter(Batcher(1, 16, pad_id=0, pack=True, isolate=True)(_examples([5, 7]))))
    assert batch["position_ids"][0].tolist() == list(range(5)) + list(range(11))
    shared = next(iter(Batcher(1, 16, pad_id=0, pack=True, isolate=False)(_examples([5, 7]))))
    assert shared["position_ids"][0].tolist() == list(range(16))
    torch.manual_seed(0)
    llm = build_llm(load_config("tiny"), 600).eval()
    ids = batch["input_ids"]
    with torch.no_grad():
        alone = llm(input_ids=ids[:, 5:12]).logits
        packed = llm(input_ids=ids, position_ids=batch["position_ids"]).logits[:, 5:12]
        leaky = llm(input_ids=ids, position_ids=shared["position_ids"]).logits[:, 5:12]
    assert torch.allclose(alone, packed, atol=1e-5)  # the second sample sees only itself
    assert not torch.allclose(alone, leaky, atol=1e-3)


def test_prove_plumbing_end_to_end(tmp_path, monkeypatch):
    """The shortened experiment: data and shards through the real commands, a one-step stage-2 model
    from `qwenvl-train`, held-out answers through the chat path, the table and the figure. The numbers
    are noise; what is checked is where every piece comes from and that it lands in the report."""
    from qwenvl_data.model.train import main as train_main
    from qwenvl_data.pipelines.prove import PRESETS
    from qwenvl_data.prove import evaluate, experiment, report

    out, timings = tmp_path / "prove", {}
    plan = experiment.Plan(**PRESETS["smoke"])
    experiment.make_data(out, plan, timings)
    experiment.make_shards(out, plan, timings)
    train_imgs = {
        hashlib.sha256(f[e]).hexdigest()
        for tar in (out / "train").rglob("*.tar")
        for _, f in iter_tar_samples(tar)
        for e in f
        if e in ("jpg", "png")
    }
    held_imgs = {
        hashlib.sha256(f[e]).hexdigest()
        for tar in (out / "heldout").rglob("*.tar")
        for _, f in iter_tar_samples(tar)
        for e in f
        if e in ("jpg", "png")
    }
    assert len(held_imgs) >= 12 and not train_imgs & held_imgs  # split by image
    shuffle = json.loads((out / "shards_shuffled" / "shuffle.json").read_text())
    assert shuffle["stage2"]["moved"] == shuffle["stage2"]["samples"] > 0
    (out / "model.json").write_text(json.dumps(plan.model))
    ckpt = out / "runs" / "real" / "stage2"
    assert (
        train_main(
            [
                "--stage",
                "2",
                "--data",
                str(out / "shards" / "stage2"),
                "--out",
                str(ckpt),
                "--tokenizer",
                str(out / "tokenizer"),
                "--config",
                str(out / "model.json"),
                "--steps",
                "1",
                "--batch-size",
                "1",
                "--seq-len",
                "320",
                "--image-size",
                str(plan.image_size),
                "--workers",
                "0",
            ]
        )
        == 0
    )
    grounding = evaluate.grounding_set(out / "heldout" / "tasks", 2)
    ocr = evaluate.ocr_set(out / "heldout" / "ocr", 1)
    assert [q["lang"] for q in grounding].count("zh") == 2 and {q["lang"] for q in ocr} == {"en", "zh"}
    from qwenvl_data.model.chat import load_model

    encoder = load_model(ckpt)[1]
    longest = max(len(encoder.encode([{"loss": True, "text": q["target"]}], append_eot=False)[0]) for q in ocr)
    assert longest + 1 <= evaluate.answer_budget(ocr) <= 4 * longest  # every line and the end token, not unbounded
    results = {
        "real": evaluate.score(grounding, ocr, evaluate.predict(ckpt, grounding, 4), evaluate.predict(ckpt, ocr, 4))
    }
    import qwenvl_data.model.data as model_data

    seen, load = [], model_data.load_image
    monkeypatch.setattr(model_data, "load_image", lambda data, size: seen.append(data) or load(data, size))
    reading = evaluate.text_token_accuracy(ckpt, ocr)
    pages = [q["image"] for q in ocr]
    assert seen == pages + pages[1:] + pages[:1]  # own images, then every page given the next page's image
    assert evaluate.text_token_accuracy(ckpt, ocr[:1])["other"]["all"] is None  # one page: no other image
    text_tokens = {lang: 0 for lang in evaluate.LANGS}
    for q in ocr:
        text_tokens[q["lang"]] += sum(
            len(encoder.tok(ln["text"], add_special_tokens=False)["input_ids"]) for ln in q["true"]
        )
    assert reading["n"] == {**text_tokens, "all": sum(text_tokens.values())}  # every text token, nothing else
    assert all(0 <= reading[k]["all"] <= 1 for k in ("own", "other"))
    results["real"]["reading"] = reading
    const = evaluate.constant_answers(out / "train", grounding, ocr)
    assert len(set(const[0])) == 1 and const[0][0].startswith("<box>")
    results["constant"] = evaluate.score(grounding, ocr, *const)
    results["shuffled"] = evaluate.score([], [], [], [])
    assert results["constant"]["grounding"]["all"]["parsed"] == 1.0 and results["real"]["grounding"]["en"]["n"] == 2
    met = report.write(out, results, {"command": "test", "seconds": 1.0, "timings": timings, "plan": {}})
    assert set(met) == {"grounding_acc>=0.30", "grounding_acc>=3x_shuffled", "ocr_char_acc>=2x_shuffled"}
    assert (out / "prove.md").read_text().count("| constant |") == 3
    assert (
        "| real | all | " + f"{reading['own']['all']:.3f} | {reading['other']['all']:.3f} |"
        in (out / "prove.md").read_text()
    )
    report.figure(out, grounding, const[0], ocr, const[1])
    assert (out / "prove.png").stat().st_size > 10_000


def test_prove_rejects_bad_runs(tmp_path):
    assert cli_main(["prove", "--output", str(tmp_path), "--runs", "bogus"]) == 2


def test_report_names_the_scenes_and_steps_it_learnt_from():
    from qwenvl_data.prove import evaluate, experiment, report

    empty = evaluate.score([], [], [], [])
    results = {run: empty for run in ("real", "shuffled", "constant")}
    plan = experiment.Plan(objects=(3, 2, 3), train_scenes=10).to_dict()
    meta = {"command": "qwenvl-data prove", "seconds": 1.0, "timings": {}, "plan": plan, "targets": {}}
    text = report.markdown(results, meta)
    assert f"Plan: 10 training scenes of 2-3 object(s) each, {plan['ocr_train_pages']} OCR pages" in text
    assert f"stage 2: {plan['stage2']['steps']} steps" in text and "stage 1:" not in text  # CPU plan: no stage 1
    assert "Plan:" not in report.markdown(results, dict(meta, plan=None))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"objects": []}, "objects must be a non-empty list"),
        ({"objects": [0, 2]}, "objects must be a non-empty list"),
        ({"objects": "3"}, "objects must be a non-empty list"),
        ({"twins": 1.5}, "twins is a chance from 0 to 1"),
        ({"ocr_pages": [1, 2]}, "ocr_pages is a mapping of synth_ocr settings"),
        ({"ocr_fonts": "DejaVuSans.ttf"}, "ocr_fonts is a list of font file names"),
        ({"ocr_line_units": {"en": [1, 2]}}, "ocr_line_units maps en and zh"),
        ({"ocr_line_units": {"en": [0, 2], "zh": [1]}}, "ocr_line_units[en] must be a list of counts"),
        ({"ocr_line_units": {"en": [2], "zh": []}}, "ocr_line_units[zh] must be a list of counts"),
    ],
)
def test_bad_plan_is_one_line(tmp_path, capsys, fields, message):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(fields))
    assert cli_main(["prove", "--output", str(tmp_path / "out"), "--preset", "smoke", "--plan", str(plan)]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out" / "raw").exists()  # refused before any data is made


def test_plan_fonts_folder_links_shipped_fonts_and_refuses_unknown(tmp_path):
    from qwenvl_data.errors import UsageError
    from qwenvl_data.prove import pages

    folder = pages.font_folder(tmp_path / "fonts", ["DejaVuSans.ttf", "wqy-microhei.ttc"])
    assert sorted(p.name for p in folder.iterdir()) == ["DejaVuSans.ttf", "wqy-microhei.ttc"]
    assert all(p.resolve().is_file() for p in folder.iterdir())
    (folder / "DejaVuSans.ttf").unlink()
    (folder / "DejaVuSans.ttf").symlink_to(tmp_path / "gone.ttf")  # a stale link from an earlier run
    assert pages.font_folder(folder, ["DejaVuSans.ttf"]) == folder and (folder / "DejaVuSans.ttf").resolve().is_file()
    with pytest.raises(UsageError, match="not among the shipped fonts"):
        pages.font_folder(tmp_path / "f2", ["NoSuchFont.ttf"])


def test_corpus_rows_draw_their_units_from_the_plan():
    from qwenvl_data.prove import pages

    assert pages.corpus_rows(3) == pages.corpus_rows(3, units={"en": [1, 1, 2], "zh": [1, 2, 3]})  # the default
    rows = pages.corpus_rows(3, per_lang=200, units={"en": [3, 4], "zh": [5]})
    en = [len(r["text"].split()) for r in rows if r["lang"] == "en"]
    zh = [len(r["text"]) for r in rows if r["lang"] == "zh"]
    assert set(en) == {3, 4} and set(zh) == {5} and len(en) == len(zh) == 200
    assert all(w in pages.EN_WORDS for r in rows if r["lang"] == "en" for w in r["text"].split())
    assert all(c in pages.ZH_CHARS for r in rows if r["lang"] == "zh" for c in r["text"])


def test_targets_against_a_run_left_out_are_not_measured():
    """`--runs real` leaves the control out: its comparisons are not measured, never met (a 0.0 stand-in
    would make any real score beat it)."""
    from qwenvl_data.prove import evaluate, report

    real = evaluate.score(
        [{"true": (100, 100, 300, 300), "lang": "en", "uid": "g"}],
        [{"true": [{"text": "cat", "box": (10, 10, 90, 40)}], "lang": "en", "uid": "o"}],
        ["<box>(100,100),(300,300)</box>"],
        ["<ref>cat</ref><quad>(10,10),(90,10),(90,40),(10,40)</quad>"],
    )
    results = {"real": real, "shuffled": evaluate.score([], [], [], []), "constant": real}
    met = report.targets(results)
    assert met == {"grounding_acc>=0.30": True, "grounding_acc>=3x_shuffled": None, "ocr_char_acc>=2x_shuffled": None}
    text = report.markdown(results, {"command": "t", "seconds": 1.0, "timings": {}, "targets": met})
    assert "grounding_acc>=3x_shuffled not measured" in text and "ocr_char_acc>=2x_shuffled not measured" in text
