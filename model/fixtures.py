"""Small training shards of the exact "shards -> train" shape (docs/CONTRACTS.md), made on the spot.

Tests, `make demo-train` (when the demo's own shards are absent) and `make bench-train` use them.
Images are a coloured shape on a coloured background, so captions, answers and boxes are true to
the pixels and a tiny model can learn them.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw

from qwenvl_data.boxes import box_to_bins, format_box, format_ref
from qwenvl_data.formats import chat_segments
from qwenvl_data.shards import ShardWriter, family

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 180, 60),
    "blue": (40, 60, 220),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square")
SAMPLE_TEXT = [
    "a photo of a red circle on a blue background",
    "a green square next to a yellow triangle",
    "Generate the caption in English:",
    "Generate the caption in Chinese:",
    "OCR with grounding:",
    "What colour is the shape? Answer: red",
    "Picture 1: ",
    "You are a helpful assistant.",
    "system user assistant",
    "(123,456),(789,999)",
    "一张红色圆形的照片",
    "蓝色背景上的绿色方块",
    "The quick brown fox jumps over the lazy dog. 0123456789",
]
SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


def draw_scene(rng: random.Random, size: int = 96, fmt: str = "JPEG"):
    """-> (JPEG/PNG bytes, shape, colour, background, pixel box, (width, height))."""
    colour, bg = rng.sample(sorted(COLOURS), 2)
    shape = rng.choice(SHAPES)
    w, h = size + rng.randrange(0, 64), size
    img = Image.new("RGB", (w, h), COLOURS[bg])
    s = rng.randrange(h // 3, h * 2 // 3)
    x, y = rng.randrange(0, w - s), rng.randrange(0, h - s)
    box = (x, y, x + s, y + s)
    (ImageDraw.Draw(img).ellipse if shape == "circle" else ImageDraw.Draw(img).rectangle)(box, fill=COLOURS[colour])
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue(), shape, colour, bg, box, (w, h)


def caption_of(shape, colour, bg):
    return f"a {colour} {shape} on a {bg} background"


def stage1_sample(rng, i):
    jpg, shape, colour, bg, _, _ = draw_scene(rng)
    segs = [
        {"text": "<img>img0.jpg</img>Generate the caption in English:", "loss": False},
        {"text": " " + caption_of(shape, colour, bg), "loss": True},
    ]  # prompt ends in a word: one space
    return {"img0.jpg": jpg}, "caption", segs


def stage2_sample(rng, i):
    task = ("caption", "vqa", "ref_grounding", "text")[i % 4]
    if task == "text":
        words = [rng.choice(sorted(COLOURS)) for _ in range(6)]
        return {}, task, [{"text": "", "loss": False}, {"text": " ".join(words) + ".", "loss": True}]
    member = "img0.png" if task == "vqa" else "img0.jpg"  # a member keeps its source format
    data, shape, colour, bg, box, (w, h) = draw_scene(rng, fmt="PNG" if task == "vqa" else "JPEG")
    if task == "caption":
        prompt, target = "Generate the caption in English:", " " + caption_of(shape, colour, bg)
    elif task == "vqa":
        prompt, target = f" What colour is the {shape}? Answer:", " " + colour
    else:  # the target opens with a tag: no space
        prompt, target = format_ref(f"the {shape}"), format_box(box_to_bins(box, w, h))
    return (
        {member: data},
        task,
        [{"text": f"<img>{member}</img>{prompt}", "loss": False}, {"text": target, "loss": True}],
    )


def stage3_sample(rng, i):
    files, user, answers = {}, "", []
    for k in range(1 + i % 2):  # every other conversation has two pictures
        jpg, shape, colour, bg, _, _ = draw_scene(rng)
        files[f"img{k}.jpg"] = jpg
        user += f"Picture {k + 1}: <img>img{k}.jpg</img>\n"
        answers.append((shape, colour, bg))
    turns = [("user", f"{user}What is shown?")]
    for turn, (shape, colour, bg) in enumerate(answers):
        if turn:
            turns.append(("user", "And the next picture?"))
        turns.append(("assistant", caption_of(shape, colour, bg)))
    return files, "chat", chat_segments(turns)  # the official stage-3 loss mask, as `shards --stage 3`


MAKERS = {1: stage1_sample, 2: stage2_sample, 3: stage3_sample}


def write_stage_shards(out_dir: str | Path, stage: int, samples: int, shards: int = 1, seed: int = 0) -> Path:
    """Write `samples` training samples of `stage` over `shards` shard groups, each split by member family
    as `qwenvl-data shards` does (docs/CONTRACTS.md): stage{N}-{family}-{000000}.tar."""
    rng = random.Random(seed * 10 + stage)
    per = -(-samples // shards)
    for shard in range(shards):
        by_family: dict[str, list] = {}
        for i in range(shard * per, min(samples, (shard + 1) * per)):
            files, task, segs = MAKERS[stage](rng, i)
            by_family.setdefault(family(files), []).append((i, files, task, segs))
        for fam, rows in sorted(by_family.items()):
            with ShardWriter(out_dir, shard, prefix=f"stage{stage}-{fam}") as w:
                for i, files, task, segs in rows:
                    key = f"s{stage}_{i:06d}"
                    meta = {
                        "schema": "train",
                        "uid": key,
                        "stage": stage,
                        "task": task,
                        "lang": "en",
                        "source": "fixture",
                        "images": sorted(files),
                        "segments": segs,
                    }
                    w.add(key, {**files, "json": meta}, {"key": key, "task": task})
                w.close({"stage": stage})
    return Path(out_dir)


def train_tokenizer(texts, out_dir: str | Path, vocab_size: int = 512) -> Path:
    """A small byte-level BPE saved as a transformers tokenizer dir, without the Qwen-VL special tokens
    (model/tokenizer.py adds them, as it must for any tokenizer that lacks them)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # digits one by one, as Qwen's tokenizer splits them: a box coordinate is always three digit tokens
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(str(out_dir))
    return Path(out_dir)


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="write small fixture training shards (tests, demo, bench)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--stage", type=int, required=True, choices=(1, 2, 3))
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--shards", type=int, default=1)
    a = ap.parse_args(argv)
    print(f"fixture shards written to {write_stage_shards(a.out, a.stage, a.samples, a.shards)}")


if __name__ == "__main__":
    main()
