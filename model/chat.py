"""`qwenvl-chat`: greedy decoding from a checkpoint, with `<ref>`/`<box>` in the answer drawn back.

    qwenvl-chat --checkpoint demo_out/train/stage3 --image demo_out/cat.jpg --prompt "What is shown?" \
        [--draw boxes.png] [--max-new-tokens 64]

A stage-3 checkpoint gets the ChatML prompt of DESIGN.md; stage 1/2 checkpoints get the plain
`<img>…</img>{prompt}` prefix they were trained on. Boxes in the answer are read as the official
Qwen-VL parser reads them (`(123, 456)` with spaces, a coordinate of 1000, and after a stage-1/2 prompt
that ends in `<box>`, as in the official grounding evaluation, the continuation `(x1,y1),(x2,y2)</box>`
with the prompt's `<ref>`), then mapped back to the image's pixels with the project's one formula
(qwenvl_data.boxes.denormalise).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from qwenvl_data.boxes import denormalise, parse_answer
from qwenvl_data.cliargs import check_numbers
from qwenvl_data.errors import BadInput, QwenVLDataError, UsageError, internal_error
from qwenvl_data.images import ImageLimits, ImageRejected, open_checked

from . import checkpoint
from .config import ModelConfig
from .data import load_image, normalise
from .fixtures import SYSTEM
from .qwenvl import QwenVL
from .tokenizer import TextEncoder, load_tokenizer

MAX_PIXELS = ImageLimits().max_pixels  # the download stage's limit: a bigger image is refused undecoded


def load_model(path) -> tuple[QwenVL, TextEncoder, dict]:
    meta, state, _ = checkpoint.load(path)
    cfg = ModelConfig.from_dict(meta["config"])
    tokenizer = load_tokenizer(checkpoint.resolve(path)[0] / "tokenizer")
    encoder = TextEncoder(tokenizer, cfg.adapter.num_queries)
    image_size = meta.get("args", {}).get("image_size") or (224 if meta["stage"] == 1 else 448)
    model = QwenVL(cfg, image_size, len(tokenizer), encoder.pad_img)
    model.load_checkpoint_state(state)
    return model.eval(), encoder, meta


def prompt_segments(prompt: str, stage: int) -> list[dict]:
    if stage == 3:
        text = f"{SYSTEM}<|im_start|>user\nPicture 1: <img>image</img>\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
    else:
        text = f"<img>image</img>{prompt}"
    return [{"text": text, "loss": False}]


@torch.no_grad()
def generate(model: QwenVL, encoder: TextEncoder, image: torch.Tensor, segments, max_new_tokens: int) -> str:
    """Greedy decoding with the LLM's key/value cache; stops at <|im_end|> or <|endoftext|>."""
    ids, _, _ = encoder.encode(segments, append_eot=False)
    input_ids = torch.from_numpy(ids.astype("int64"))[None]
    embeds = model.embed(input_ids, image)
    out, past, new = None, None, []
    for _ in range(max_new_tokens):
        out = model.llm(inputs_embeds=embeds, past_key_values=past, use_cache=True)
        past, token = out.past_key_values, int(out.logits[0, -1].argmax())
        if token in (encoder.im_end, encoder.eot):
            break
        new.append(token)
        embeds = model.llm.get_input_embeddings()(torch.tensor([[token]]))
    return encoder.decode(new)


def pixel_boxes(answer: str, width: int, height: int, prompt: str = "") -> list[dict]:
    """[{ref, box: [x1, y1, x2, y2] pixels}] of the answer; `prompt` is the text the answer continues."""
    boxes = []
    for ref in parse_answer(answer, prompt):
        for x1, y1, x2, y2 in ref["boxes"]:
            boxes.append(
                {
                    "ref": ref["ref"],
                    "box": [
                        float(denormalise(x1, width)),
                        float(denormalise(y1, height)),
                        float(denormalise(x2, width)),
                        float(denormalise(y2, height)),
                    ],
                }
            )
    return boxes


def draw(image_path, boxes, out_path):
    img = Image.open(image_path).convert("RGB")
    d = ImageDraw.Draw(img)
    for b in boxes:
        d.rectangle(b["box"], outline=(255, 0, 0), width=3)
        if b["ref"]:
            d.text((b["box"][0] + 3, b["box"][1] + 3), b["ref"], fill=(255, 0, 0))
    img.save(out_path)


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser(prog="qwenvl-chat", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--draw", help="write the image with the answer's boxes drawn to this PNG")
    a = check_numbers(ap).parse_args(argv)
    try:
        model, encoder, meta = load_model(a.checkpoint)
        try:
            raw = Path(a.image).read_bytes()
            width, height = open_checked(raw, MAX_PIXELS).size  # the pixel limit before any decoding
            pixels = load_image(raw, model.image_size)
        except OSError as e:
            raise UsageError(f"cannot read image {a.image}: {e}") from None
        except ImageRejected as e:
            raise BadInput(f"{a.image}: {e}") from None
        image = normalise(torch.from_numpy(pixels)[None])
        answer = generate(model, encoder, image, prompt_segments(a.prompt, meta["stage"]), a.max_new_tokens)
        boxes = pixel_boxes(answer, width, height, "" if meta["stage"] == 3 else a.prompt)
        print(json.dumps({"answer": answer, "boxes": boxes}, ensure_ascii=False))
        if a.draw:
            draw(a.image, boxes, a.draw)
    except QwenVLDataError as e:
        print(f"qwenvl-chat: error: {e}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - last resort: one line, the traceback in a log file
        print(f"qwenvl-chat: error: {internal_error('qwenvl-chat', e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
