"""`qwenvl-data export`: training shards -> the official fine-tuning JSON and the LLaMA-Factory / ms-swift
chat JSON; the round trip through `shards --stage 3`; flat memory while streaming."""

import io
import json
import re
import tracemalloc

import pytest
from PIL import Image

from qwenvl_data.pipelines import export
from qwenvl_data.pipelines.cli import main
from qwenvl_data.shards import ShardWriter, iter_tar_samples


def image(fmt="JPEG", colour=(200, 30, 30)):
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), colour).save(buf, fmt)
    return buf.getvalue()


def run(*args):
    assert main([str(a) for a in args]) == 0


def read_shards(out):
    return [(json.loads(f["json"]), f) for t in sorted(out.glob("stage*.tar")) for _, f in iter_tar_samples(t)]


@pytest.fixture
def inputs(tmp_path):
    sft = tmp_path / "sft"
    sft.mkdir()
    (sft / "a.jpg").write_bytes(image())
    (sft / "b.png").write_bytes(image("PNG", (10, 200, 10)))
    conversations = [
        {
            "id": "two",
            "conversations": [
                {"from": "user", "value": "Picture 1: <img>a.jpg</img>\nPicture 2: <img>b.png</img>\nCompare them."},
                {"from": "assistant", "value": "The first is red."},
                {"from": "user", "value": "Where is the second?"},
                {"from": "assistant", "value": "<ref>the green one</ref><box>(0,0),(999,999)</box>"},
            ],
        },
        {
            "id": "careful",
            "system": "You are a careful assistant.",
            "conversations": [
                {"from": "user", "value": "Picture 1: <img>b.png</img>\nWhat colour?"},
                {"from": "assistant", "value": "Green."},
            ],
        },
    ]
    (sft / "sft.json").write_text(json.dumps(conversations))
    tasks = tmp_path / "tasks"
    with ShardWriter(tasks, 0, "demo") as w:
        for key, task, prompt, target in [
            ("0", "vqa", " What colour is the square? Answer:", "red"),
            ("1", "ref_grounding", "<ref>the square</ref>", "<box>(10,20),(500,600)</box>"),
        ]:
            w.add(
                key,
                {
                    "jpg": image(),
                    "json": {
                        "schema": "task",
                        "uid": f"demo:{key}",
                        "source": "demo",
                        "task": task,
                        "lang": "en",
                        "prompt": prompt,
                        "target": target,
                        "width": 16,
                        "height": 12,
                    },
                },
            )
        w.close()
    with ShardWriter(tasks, 0, "text") as w:  # one member set per shard: pure text in its own
        w.add(
            "2",
            {
                "json": {
                    "schema": "task",
                    "uid": "demo:2",
                    "source": "demo",
                    "task": "text",
                    "lang": "en",
                    "prompt": "",
                    "target": "plain words",
                    "width": None,
                    "height": None,
                }
            },
        )
        w.close()
    return sft / "sft.json", tasks


def test_stage3_export_exact_and_round_trip(inputs, tmp_path):
    sft, tasks = inputs
    s3, ex, again = tmp_path / "s3", tmp_path / "export", tmp_path / "again"
    run("shards", "--stage", 3, "--input", sft, tasks, "--output", s3)
    run("export", "--input", s3, "--output", ex)
    assert json.loads((s3 / "index.json").read_text())["loss_mask"] == "official"
    official = json.loads((ex / "qwenvl.json").read_text())
    messages = json.loads((ex / "messages.json").read_text())
    stats = json.loads((ex / "export.json").read_text())
    assert stats["in"] == 4 and stats["exported"] == 4 and stats["rejected"] == {} and stats["images"] == 5
    two = next(c for c in official if c["id"] == "sft:two")
    pics = [p for t in two["conversations"] for p in re.findall(r"<img>(.*?)</img>", t["value"])]
    assert pics[0].startswith("images/") and pics[0].endswith(".jpg") and pics[1].endswith(".png")
    assert two == {
        "id": "sft:two",
        "conversations": [
            {
                "from": "user",
                "value": f"Picture 1: <img>{pics[0]}</img>\nPicture 2: <img>{pics[1]}</img>\nCompare them.",
            },
            {"from": "assistant", "value": "The first is red."},
            {"from": "user", "value": "Where is the second?"},
            {"from": "assistant", "value": "<ref>the green one</ref><box>(0,0),(999,999)</box>"},
        ],
    }
    assert (ex / pics[0]).read_bytes() == (sft.parent / "a.jpg").read_bytes()
    assert (ex / pics[1]).read_bytes() == (sft.parent / "b.png").read_bytes()
    assert next(c for c in official if c["id"] == "sft:careful")["system"] == "You are a careful assistant."
    assert next(m for m in messages if m["id"] == "sft:two") == {
        "id": "sft:two",
        "images": pics,
        "messages": [
            {"role": "user", "content": "<image><image>Compare them."},
            {"role": "assistant", "content": "The first is red."},
            {"role": "user", "content": "Where is the second?"},
            {"role": "assistant", "content": "<ref>the green one</ref><box>(0,0),(999,999)</box>"},
        ],
    }
    careful = next(m for m in messages if m["id"] == "sft:careful")
    assert careful["messages"][0] == {"role": "system", "content": "You are a careful assistant."}
    vqa = next(m for m in messages if m["id"] == "demo:0")
    assert vqa["messages"] == [
        {"role": "user", "content": "<image>What colour is the square?"},
        {"role": "assistant", "content": "red"},
    ]
    for m in messages:  # one placeholder per image, as LLaMA-Factory checks
        assert sum(x["content"].count("<image>") for x in m["messages"]) == len(m["images"])
    # round trip: the exported JSON through shards --stage 3 gives the same segments and image bytes
    run("shards", "--stage", 3, "--input", ex / "qwenvl.json", "--output", again)

    def content(out):
        return sorted(
            (json.dumps(o["segments"]), o["images"], [f[n] for n in o["images"]]) for o, f in read_shards(out)
        )

    assert content(again) == content(s3)


def test_answers_mask_option_and_its_round_trip(inputs, tmp_path):
    sft, _ = inputs
    s3, ex, again = tmp_path / "s3", tmp_path / "export", tmp_path / "again"
    run("shards", "--stage", 3, "--stage3-mask", "answers", "--input", sft, "--output", s3)
    assert json.loads((s3 / "index.json").read_text())["loss_mask"] == "answers"
    two = next(o for o, _ in read_shards(s3) if o["uid"] == "sft:two")
    assert [s["text"] for s in two["segments"] if s["loss"]] == [
        "The first is red.<|im_end|>",
        "<ref>the green one</ref><box>(0,0),(999,999)</box><|im_end|>",
    ]
    run("export", "--input", s3, "--output", ex, "--absolute")
    pics = [p for m in json.loads((ex / "messages.json").read_text()) for p in m["images"]]
    assert pics and all(p.startswith(f"{ex.resolve()}/images/") for p in pics)
    run("shards", "--stage", 3, "--stage3-mask", "answers", "--input", ex / "qwenvl.json", "--output", again)
    assert sorted(json.dumps(o["segments"]) for o, _ in read_shards(again)) == sorted(
        json.dumps(o["segments"]) for o, _ in read_shards(s3)
    )


def test_stage2_samples_as_single_turn_chats(inputs, tmp_path):
    _, tasks = inputs
    s2, ex = tmp_path / "s2", tmp_path / "export"
    run("shards", "--stage", 2, "--all", "--input", tasks, "--output", s2)
    run("export", "--input", s2, "--output", ex, "--format", "qwenvl")
    assert not (ex / "messages.json").exists()
    official = {c["id"]: c for c in json.loads((ex / "qwenvl.json").read_text())}
    stats = json.loads((ex / "export.json").read_text())
    assert stats["in"] == 3 and stats["exported"] == 2 and stats["rejected"] == {"no_chat_form": 1}
    path = official["demo:0"]["conversations"][0]["value"].split("<img>")[1].split("</img>")[0]
    assert official["demo:0"]["conversations"] == [
        {"from": "user", "value": f"Picture 1: <img>{path}</img>\nWhat colour is the square?"},
        {"from": "assistant", "value": "red"},
    ]
    rg = official["demo:1"]["conversations"]
    assert rg[1] == {"from": "assistant", "value": "<ref>the square</ref><box>(10,20),(500,600)</box>"}
    assert rg[0]["value"].endswith("\nGive the bounding box of the square in the image.") or rg[0]["value"].endswith(
        "\n框出图中the square的位置"
    )
    # the exported stage-2 chats through shards --stage 3 = the task shards through shards --stage 3
    direct, again = tmp_path / "direct", tmp_path / "again"
    run("shards", "--stage", 3, "--input", tasks, "--output", direct)
    run("shards", "--stage", 3, "--input", ex / "qwenvl.json", "--output", again)
    assert sorted(json.dumps(o["segments"]) for o, _ in read_shards(again)) == sorted(
        json.dumps(o["segments"]) for o, _ in read_shards(direct)
    )


def test_bad_samples_rejected_and_memory_flat(tmp_path):
    segs = [
        {"text": "<|im_start|>user\nPicture 1: <img>img0.jpg</img>\nHi<|im_end|>\n", "loss": False},
        {"text": "<|im_start|>assistant\nHello " + "x" * 2000 + "<|im_end|>\n", "loss": True},
    ]

    def train_json(uid, images, segments):
        return {
            "schema": "train",
            "uid": uid,
            "stage": 3,
            "task": "chat",
            "lang": "en",
            "source": "t",
            "images": images,
            "segments": segments,
        }

    def write(out, shards):  # shards of 50 samples, as `shards --shard-size 50` writes them
        for s in range(shards):
            with ShardWriter(out, s, "stage3") as w:
                for i in range(50):
                    obj = train_json(f"u{s}-{i}", ["img0.jpg"], segs)
                    w.add(f"{s * 50 + i:06d}", {"img0.jpg": image(), "json": obj})
                w.close()
        with ShardWriter(out, shards, "stage3") as w:  # image member missing; not ChatML
            w.add("bad1", {"json": train_json("bad1", ["img0.jpg"], segs)})
            w.add("bad2", {"json": train_json("bad2", [], [{"text": "no chat", "loss": True}])})
            w.add("bad3", {"json": train_json("bad3", [7], segs)})  # an image name that is not a string
            w.close()

    peaks = []
    for shards in (1, 10):
        write(tmp_path / f"in{shards}", shards)
        tracemalloc.start()
        run("export", "--input", tmp_path / f"in{shards}", "--output", tmp_path / f"out{shards}")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        stats = json.loads((tmp_path / f"out{shards}" / "export.json").read_text())
        assert stats["exported"] == 50 * shards
        assert stats["rejected"] == {"missing_image": 1, "bad_segments": 1, "bad_json": 1}
        assert len(json.loads((tmp_path / f"out{shards}" / "messages.json").read_text())) == 50 * shards
        rejects = [json.loads(x) for x in (tmp_path / f"out{shards}" / "rejects.jsonl").read_text().splitlines()]
        assert [(r["key"], r["reason"]) for r in rejects] == [
            ("bad1", "missing_image"),
            ("bad2", "bad_segments"),
            ("bad3", "bad_json"),
        ]
    assert peaks[1] < peaks[0] + 100 * 1024, peaks  # 10x the samples (1 MB more text), not 10x the memory


def test_bad_usage_is_one_line(tmp_path, capsys):
    assert main(["export", "--input", str(tmp_path / "none"), "--output", str(tmp_path / "o")]) == 2
    assert main(["export", "--input", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    (tmp_path / "x.tar").write_bytes(b"")
    assert main(["export", "--input", str(tmp_path), "--output", str(tmp_path / "o"), "--format", "csv"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "choose from qwenvl, messages" in err
    assert export.FORMATS == ("qwenvl", "messages")
