"""The shared vocabulary: every name that more than one stage must agree on lives here, once.

Tasks, special tokens (in the official Qwen-VL order), image member extensions, pair columns and the
per-stage settings that the shards, the loader and the model must agree on (sequence length, image
size, image tokens). Schemas are tested against these lists (tests/test_vocab.py); every other module
imports them instead of keeping a copy.
"""

from __future__ import annotations

# --- tasks ---------------------------------------------------------------------------------------
# Stage-1/2 task names (schemas/task.schema.json, ocr.schema.json); stage 3 adds "chat".
TASKS: tuple[str, ...] = ("caption", "vqa", "grounding", "ref_grounding", "grounded_caption", "ocr", "text")
TRAIN_TASKS: tuple[str, ...] = TASKS + ("chat",)

# --- special tokens --------------------------------------------------------------------------------
# The official order (QwenLM/Qwen-VL tokenization_qwen.py): the three ChatML tokens, 205 reserved
# `<|extra_N|>`, then the ten multimodal tokens. With a Qwen base tokenizer the ids come out as the
# official ones (151643 + index); with any other base tokenizer they keep the same relative order.
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
EXTRA_TOKENS: tuple[str, ...] = tuple(f"<|extra_{i}|>" for i in range(205))
REF_START, REF_END, BOX_START, BOX_END = "<ref>", "</ref>", "<box>", "</box>"
QUAD_START, QUAD_END, IMG_START, IMG_END, IMG_PAD = "<quad>", "</quad>", "<img>", "</img>", "<imgpad>"
MULTIMODAL_TOKENS: tuple[str, ...] = (
    REF_START,
    REF_END,
    BOX_START,
    BOX_END,
    QUAD_START,
    QUAD_END,
    IMG_START,
    IMG_END,
    IMG_PAD,
)
SPECIAL_TOKENS: tuple[str, ...] = (ENDOFTEXT, IM_START, IM_END) + EXTRA_TOKENS + MULTIMODAL_TOKENS
QWEN_SPECIAL_START = 151643  # id of <|endoftext|> in the Qwen vocabulary; the rest follow in order

# --- images ----------------------------------------------------------------------------------------
# Member / file extensions read as images by every stage, compared lower-cased (`KEY.JPG` is an image).
IMAGE_EXTS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")


def is_image_ext(name: str) -> bool:
    """True if a file or tar member name (or a bare extension) names an image."""
    return name.rsplit(".", 1)[-1].lower() in IMAGE_EXTS


# --- pairs ------------------------------------------------------------------------------------------
PAIR_COLUMNS: tuple[str, ...] = (
    "uid",
    "source",
    "url",
    "caption",
    "caption_raw",
    "width",
    "height",
    "score",
    "lang",
    "lang_score",
)
LANGUAGES: tuple[str, ...] = ("en", "zh")

# --- settings that must agree ---------------------------------------------------------------------
# Appendix C / Table 1: per-stage resolution and sequence length. The shards' index, the loader and the
# trainer read these; the trainer checks them against the model's max_position_embeddings at start.
IMAGE_TOKENS = 256
STAGE_SETTINGS: dict[int, dict[str, int]] = {
    1: {"image_size": 224, "seq_len": 512},
    2: {"image_size": 448, "seq_len": 2048},
    3: {"image_size": 448, "seq_len": 2048},
}
