"""`qwenvl-data shards --stage 1|2|3`: mix by weights, segments and loss, index, accounting."""

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from qwenvl_data.pipelines.tasks import convert_dataset
from qwenvl_data.schema import first_error
from qwenvl_data.shards import ShardWriter, iter_tar_samples
from qwenvl_data.shards.mix import interleave, plan_counts

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_task_fixtures", ROOT / "scripts" / "make_task_fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)
JPEG = fixtures.jpeg(16, 16, 1)


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "qwenvl_data.pipelines.cli", *map(str, args)], capture_output=True, text=True
    )


def shards(*args):
    r = cli("shards", *args)
    assert r.returncode == 0, r.stderr
    return r


def read_out(out: Path):
    """Samples in mix order (keys count up across families) and the index; checks the layout contract."""
    index = json.loads((out / "index.json").read_text())
    assert first_error("index", index) is None
    assert sorted(p.name for p in out.glob("stage*.tar")) == sorted(s["name"] + ".tar" for s in index["shards"])
    keyed = []
    for t in sorted(out.glob("stage*.tar")):
        shard = next(s for s in index["shards"] if s["name"] == t.stem)
        for key, f in iter_tar_samples(t):
            assert sorted(f) == shard["members"]  # one member set per shard family
            keyed.append((key, json.loads(f["json"]), f))
    samples = [(obj, f) for _, obj, f in sorted(keyed, key=lambda x: x[0])]
    for obj, files in samples:
        assert first_error("train", obj) is None
        assert sorted(files) == sorted(obj["images"] + ["json"])
    return samples, index


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return fixtures.make_all(tmp_path_factory.mktemp("fx"))


@pytest.fixture(scope="module")
def tasks_dir(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks")
    for d in ("refcoco", "vg", "grit", "vqav2", "docvqa", "coco", "text"):
        convert_dataset(d, data / d, out / d)
    return out


def write_task_shard(out: Path, task: str, n: int, lang: str = "en", source: str = "synth"):
    with ShardWriter(out, 0, task) as w:
        for i in range(n):
            obj = {
                "schema": "ocr" if task == "ocr" else "task",
                "uid": f"{task}:{i}",
                "source": source,
                "task": task,
                "lang": lang,
                "prompt": "" if task == "text" else "OCR with grounding:",
                "target": f"<ref>word {i}</ref><quad>(1,2),(3,4),(5,6),(7,8)</quad>"
                if task == "ocr"
                else f"sample {i} text",
                "width": None if task == "text" else 16,
                "height": None if task == "text" else 16,
            }
            w.add(f"{i:06d}", ({} if task == "text" else {"jpg": JPEG}) | {"json": obj})
        w.close()


def test_stage1_mixes_sources_by_weight(data, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("shards:\n  stage1:\n    weights: {laion: 1, coyo: 1}\n")
    shards("--stage", 1, "--input", data / "pairs", "--output", tmp_path / "s1", "--config", cfg)
    samples, index = read_out(tmp_path / "s1")
    # laion has 8 pairs (4 en, 4 zh), coyo 4: equal weights -> 4 + 4, 4 laion left unused
    assert Counter(o["source"] for o, _ in samples) == {"laion": 4, "coyo": 4}
    assert index["mix"]["laion"]["unused"] == 4 and index["inputs"]["unused"] == 4
    assert sum(c["samples"] for by in index["by_source"].values() for c in by.values()) == 8
    zh = [o for o, _ in samples if o["lang"] == "zh"]
    assert zh and zh[0]["segments"][0]["text"] == "<img>img0.jpg</img>Generate the caption in Chinese:"
    en = next(o for o, _ in samples if o["uid"] == "coyo:1")
    assert en["segments"] == [
        {"text": "<img>img0.jpg</img>Generate the caption in English:", "loss": False},
        {"text": " a red square number 1", "loss": True},
    ]
    assert index["by_source"]["laion"]["zh"]["samples"] == sum(1 for o in zh if o["source"] == "laion")


def test_stage2_exact_mix_interleaved_and_resumable(tmp_path):
    inp = tmp_path / "in"
    for task, n in (("caption", 300), ("ocr", 200), ("text", 90), ("vqa", 40)):
        write_task_shard(inp / task, task, n)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "shards:\n  shard_size: 50\n  stage2:\n    weights: {caption: 5, ocr: 3, text: 2, vqa: 1, grounding: 1}\n"
    )
    out = tmp_path / "s2"
    shards("--stage", 2, "--input", inp, "--output", out, "--config", cfg)
    samples, index = read_out(out)
    # vqa limits: 40 / (1/11) = 440 -> 200 caption, 120 ocr, 80 text, 40 vqa (grounding absent)
    assert Counter(o["task"] for o, _ in samples) == {"caption": 200, "ocr": 120, "text": 80, "vqa": 40}
    first = Counter(o["task"] for o, _ in samples[:220])  # every prefix holds the mix
    assert all(abs(first[t] - n / 2) <= 1 for t, n in (("caption", 200), ("ocr", 120), ("text", 80), ("vqa", 40)))
    # one series per member family: 360 samples with img0.jpg (50 a shard), 80 pure-text ones
    assert {s["name"]: s["samples"] for s in index["shards"]} == {
        **{f"stage2-jpg-{i:06d}": 50 for i in range(7)},
        "stage2-jpg-000007": 10,
        "stage2-text-000000": 50,
        "stage2-text-000001": 30,
    }
    assert index["families"]["text"] == {
        "members": ["json"],
        "samples": 80,
        "shards": ["stage2-text-000000.tar", "stage2-text-000001.tar"],
    }
    wids = json.loads((out / "wids-index.json").read_text())
    assert [(e["url"], e["nsamples"]) for e in wids["shardlist"]] == [
        (s["name"] + ".tar", s["samples"]) for s in index["shards"]
    ]
    assert index["totals"]["images"] == 360 and index["mix"]["caption"]["unused"] == 100
    ocr = next(o for o, _ in samples if o["task"] == "ocr")
    assert ocr["segments"][0] == {"text": "<img>img0.jpg</img>OCR with grounding:", "loss": False}
    assert ocr["segments"][1]["loss"] and ocr["segments"][1]["text"].startswith("<ref>word")
    before = {p.name: p.read_bytes() for p in out.glob("stage2-*.tar")}
    shards("--stage", 2, "--input", inp, "--output", out, "--config", cfg)
    assert {p.name: p.read_bytes() for p in out.glob("stage2-*.tar")} == before


def test_rerun_after_the_inputs_change_rebuilds_what_changed(tmp_path):
    """Resume checks what it resumes: a shard is kept only when its fingerprint still matches."""
    inp = tmp_path / "in"
    write_task_shard(inp / "cap", "caption", 30)
    write_task_shard(inp / "txt", "text", 12)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("shards:\n  shard_size: 10\n")
    out = tmp_path / "o"
    shards("--stage", 2, "--all", "--input", inp, "--output", out, "--config", cfg)
    before = {p.name: p.read_bytes() for p in out.glob("stage2-*.tar")}
    assert len(before) == 5
    r = shards("--stage", 2, "--all", "--input", inp, "--output", out, "--config", cfg)
    assert "(5 unchanged from the last run)" in r.stdout
    write_task_shard(inp / "cap", "caption", 14, source="other")  # new inputs: fewer, different samples
    r = shards("--stage", 2, "--all", "--input", inp, "--output", out, "--config", cfg)
    samples, index = read_out(out)  # the index lists exactly the tars on disk, and they hold its samples
    assert Counter(o["source"] for o, _ in samples if o["task"] == "caption") == {"other": 14}
    assert index["totals"]["samples"] == 26 and len(list(out.glob("stage2-*.tar"))) == 4
    for s in index["shards"]:
        stats = json.loads((out / f"{s['name']}.json").read_text())
        assert stats["count"] == s["samples"] and stats["fingerprint"].startswith("sha256:")


def test_duplicate_uids_are_rejected_and_counted(tmp_path):
    write_task_shard(tmp_path / "a", "caption", 4)
    write_task_shard(tmp_path / "b", "caption", 3)  # the same uids caption:0..2 again
    shards("--stage", 2, "--all", "--input", tmp_path / "a", tmp_path / "b", "--output", tmp_path / "o")
    samples, index = read_out(tmp_path / "o")
    assert sorted(o["uid"] for o, _ in samples) == [f"caption:{i}" for i in range(4)]
    assert index["rejected"] == {"duplicate_uid": 3} and index["inputs"]["samples"] == 7


def test_stage2_repeats_small_groups_when_asked(tmp_path):
    inp = tmp_path / "in"
    write_task_shard(inp / "a", "caption", 10)
    write_task_shard(inp / "b", "vqa", 3)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("shards:\n  stage2:\n    weights: {caption: 1, vqa: 1}\n")
    shards("--stage", 2, "--input", inp, "--output", tmp_path / "o", "--config", cfg, "--num-samples", 20)
    samples, index = read_out(tmp_path / "o")
    assert Counter(o["task"] for o, _ in samples) == {"caption": 10, "vqa": 10}
    assert index["mix"]["vqa"]["repeats"] == 7 and Counter(o["uid"] for o, _ in samples)["vqa:0"] >= 3


def test_stage2_from_converted_tasks_with_exact_tokens(tasks_dir, tmp_path):
    tok_dir = tmp_path / "tok"
    tok_dir.mkdir()
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(["The", "quick", "brown", "fox", "Answer", ":"])}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tok_dir / "tokenizer.json"))
    out = tmp_path / "s2"
    shards("--stage", 2, "--all", "--input", *sorted(tasks_dir.iterdir()), "--output", out, "--tokenizer", tok_dir)
    samples, index = read_out(out)
    assert index["token_counter"]["exact"] is True
    text = next(o for o, _ in samples if o["uid"].startswith("text:") and o["lang"] == "en")
    assert text["tokens"] == len(tok.encode(text["segments"][0]["text"]).ids) + 1  # + <|endoftext|>
    vqa = next(o for o, _ in samples if o["uid"] == "vqav2:90")
    words = len(tok.encode(" What color is the square? Answer: pink").ids)
    assert vqa["tokens"] == words + 258 + 1  # <img> + 256 + </img>
    assert index["totals"]["tokens"] == sum(o["tokens"] for o, _ in samples)
    assert index["by_task"]["vqa"]["en"]["tokens"] == sum(o["tokens"] for o, _ in samples if o["task"] == "vqa")
    for o, _ in samples:  # image tags and prompts carry no loss; the target does
        assert all("<img>" not in s["text"] for s in o["segments"] if s["loss"])
        assert o["segments"][-1]["loss"]
    from qwenvl_data.shards.tokens import TokenCounter

    assert TokenCounter(str(tok_dir)).text_tokens("<ref>fox</ref><|im_end|>") == 4  # specials never split
    est = tmp_path / "est"
    shards("--stage", 2, "--all", "--input", tasks_dir, "--output", est)
    assert json.loads((est / "index.json").read_text())["token_counter"]["name"].startswith("estimate")


def test_stage3_chat_from_finetune_json_and_tasks(data, tasks_dir, tmp_path):
    out = tmp_path / "s3"
    shards("--stage", 3, "--input", data / "sft" / "finetune.json", tasks_dir, "--output", out)
    samples, index = read_out(out)
    chat = next(o for o, _ in samples if o["uid"] == "finetune:identity_0")
    assert chat["images"] == ["img0.jpg", "img1.png"]
    text = "".join(s["text"] for s in chat["segments"])
    assert "Picture 1: <img>img0.jpg</img>\nWhat is in the picture?" in text
    assert "Picture 2: <img>img1.png</img>\nAnd how do the two differ?" in text
    answers = [s["text"] for s in chat["segments"] if s["loss"] and not s["text"].startswith("<|im_")]
    assert answers == ["A red square.<|im_end|>\n", "The second is taller.<|im_end|>\n"]  # the official mask
    assert next(o for o, _ in samples if o["uid"] == "finetune:identity_1")["lang"] == "zh"
    assert index["rejected"] == {"missing_image": 1, "no_chat_form": 2}  # sft image gone; 2 pure-text
    rg = [o for o, _ in samples if o["task"] == "ref_grounding"]
    system = "<|im_start|>system\nYou are a helpful assistant."
    assert rg and all("".join(s["text"] for s in o["segments"]).startswith(system) for o in rg)
    instr = {"".join(s["text"] for s in o["segments"]).split("</img>\n")[1].split("<|im_end|>")[0] for o in rg}
    assert any(i.startswith("框出图中") for i in instr) and any(i.startswith("Give the bounding box") for i in instr)
    assert index["inputs"]["samples"] == index["totals"]["samples"] + sum(index["rejected"].values())


def test_mix_plan_and_interleave_units():
    assert plan_counts({"a": 10, "b": 3}, {"a": 1, "b": 1}) == {"a": 3, "b": 3}
    assert plan_counts({"a": 10, "b": 3}, None) == {"a": 10, "b": 3}
    assert plan_counts({"a": 7, "b": 7, "c": 7}, {"a": 1, "b": 1, "c": 1}, 10) == {"a": 4, "b": 3, "c": 3}
    order = list(interleave({"x": 6, "y": 3}, seed=1))
    assert Counter(order) == {"x": 6, "y": 3}
    assert all(order[i : i + 3].count("y") <= 2 for i in range(0, 9, 3))


def test_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    r = cli("shards", "--stage", 2, "--input", tmp_path / "empty", "--output", tmp_path / "o")
    assert r.returncode == 2 and "no input shards" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.tar").write_bytes(b"not a tar at all" * 100)
    r = cli("shards", "--stage", 2, "--input", tmp_path / "bad", "--output", tmp_path / "o")
    assert r.returncode == 1 and "x.tar: not a readable tar shard" in r.stderr
    write_task_shard(tmp_path / "cap", "caption", 3)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("shards:\n  stage2:\n    weights: {vqa: 1}\n")
    r = cli("shards", "--stage", 2, "--input", tmp_path / "cap", "--output", tmp_path / "o", "--config", cfg)
    assert r.returncode == 2 and "no mixing weight for caption" in r.stderr


def test_index_tokens_match_the_trainers_encoder(data, tasks_dir, tmp_path):
    """The index's exact counts are the lengths the training loader will see (model/tokenizer.py)."""
    from qwenvl_data.model.fixtures import train_tokenizer
    from qwenvl_data.model.tokenizer import TextEncoder, load_tokenizer

    out = tmp_path / "s3"
    texts = [
        "Picture 1: <img>x</img> a red square, the ear on a giraffe. 今天天气很好 <ref>This</ref><box>(1,2),(3,4)</box>"
    ]
    tok_dir = train_tokenizer(texts * 20, tmp_path / "tok")
    shards("--stage", 3, "--input", data / "sft" / "finetune.json", tasks_dir, "--output", out, "--tokenizer", tok_dir)
    samples, index = read_out(out)
    enc = TextEncoder(load_tokenizer(tok_dir))
    assert index["token_counter"]["exact"]
    for obj, _ in samples:
        ids, labels, refs = enc.encode(obj["segments"], append_eot=False)
        assert obj["tokens"] == len(ids) and refs == obj["images"]


def test_stage1_takes_upper_case_and_webp_image_members(tmp_path):
    import io as _io

    from PIL import Image

    buf = _io.BytesIO()
    Image.new("RGB", (16, 16), (9, 99, 199)).save(buf, "WEBP")
    for sid, (ext, data) in enumerate((("JPG", JPEG), ("webp", buf.getvalue()))):
        with ShardWriter(tmp_path / "pairs", sid, "") as w:
            for i in range(3):
                uid = f"{ext}:{i}"
                w.add(
                    f"{sid}{i:05d}",
                    {
                        ext: data,
                        "txt": "a square",
                        "json": {
                            "schema": "sample",
                            "uid": uid,
                            "source": "laion",
                            "caption": f"a square {i}",
                            "lang": "en",
                        },
                    },
                )
            w.close()
    shards("--stage", 1, "--all", "--input", tmp_path / "pairs", "--output", tmp_path / "o")
    samples, index = read_out(tmp_path / "o")
    assert index["rejected"] == {} and sorted(index["families"]) == ["jpg", "webp"]
    assert sorted(o["images"][0] for o, _ in samples) == ["img0.jpg"] * 3 + ["img0.webp"] * 3


def test_tasks_rerun_with_fewer_inputs_leaves_no_stale_shard(data, tmp_path):
    """tasks: a shard a longer earlier run wrote is removed, so index, wids index and tars agree."""
    import shutil

    shutil.copytree(data / "text", tmp_path / "in")
    lines = ["今天天气很好，我们去公园散步。", "我们明天一起去图书馆看书吧。", "这是一个很长的中文句子，用来测试。"]
    corpus = tmp_path / "in" / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in lines))
    first = convert_dataset("text", tmp_path / "in", tmp_path / "out", shard_size=1)
    corpus.write_text(json.dumps({"text": lines[0]}, ensure_ascii=False) + "\n")
    second = convert_dataset("text", tmp_path / "in", tmp_path / "out", shard_size=1)
    assert first["out"] == second["out"] + 2
    tars = sorted(p.name for p in (tmp_path / "out").glob("*.tar"))
    assert len(tars) == second["shards"] == second["out"]
    wids = json.loads((tmp_path / "out" / "wids-index.json").read_text())
    assert [e["url"] for e in wids["shardlist"]] == tars
    assert sum(1 for t in tars for _ in iter_tar_samples(tmp_path / "out" / t)) == second["out"]


def test_stage1_rejects_absurd_recorded_sizes(tmp_path):
    """A pair sample whose json records a width of 1e300 or a height of -5 is counted as bad_image_size,
    and the good samples beside it are kept."""
    sizes = [(640, 480), (1e300, 480), (640, -5), (640.5, 480), ("wide", 480), (320, 240)]
    with ShardWriter(tmp_path / "pairs", 0, "") as w:
        for i, (width, height) in enumerate(sizes):
            w.add(
                f"{i:05d}",
                {
                    "jpg": JPEG,
                    "txt": "a square",
                    "json": {
                        "schema": "sample",
                        "uid": f"laion:{i}",
                        "source": "laion",
                        "caption": f"a square {i}",
                        "lang": "en",
                        "width": width,
                        "height": height,
                    },
                },
            )
        w.close()
    shards("--stage", 1, "--all", "--input", tmp_path / "pairs", "--output", tmp_path / "o")
    samples, index = read_out(tmp_path / "o")
    assert index["rejected"] == {"bad_image_size": 4}
    assert sorted(o["uid"] for o, _ in samples) == ["laion:0", "laion:5"]
