"""Qwen-VL text formats: the one place for prompt and target strings and ChatML rendering.

- Task samples (schema "task"/"ocr") hold `prompt` (the text after `</img>`) and `target` exactly as
  in the paper's Box B.1; `train_segments` turns one into the training shard's `segments`.
- Between prompt and target the training text puts one space when the prompt ends in words
  (`...English:` + ` the flowers`) and nothing when the target opens with a tag (`<ref>x</ref><box>`);
  the space belongs to the target, so it carries loss like the words it precedes.
- Stage 3 renders ChatML per DESIGN.md with the loss mask of the official `finetune.py` `preprocess`
  (mask "official", the default): in every turn `<|im_start|>`, `<|im_end|>` and the `\n` after it carry
  loss, the role word and its newline never do, and of the contents only the assistant's. Mask "answers"
  (the older choice) puts loss on each answer and its `<|im_end|>` only.
- Segment boundaries follow the official tokenization: it tokenizes the role line and the content
  apart, so the role line never shares a segment with the content (the loader tokenizes each segment
  on its own; a boundary at a special token changes no token, so those pieces are merged).
"""

from __future__ import annotations

import hashlib
import re

from .boxes import format_box, format_ref
from .vocab import IM_END, IM_START, SPECIAL_TOKENS, TASKS  # noqa: F401  (re-exported for older imports)
from .vocab import IMAGE_TOKENS as IMG_TOKENS  # noqa: F401

DEFAULT_SYSTEM = "You are a helpful assistant."
STAGE3_MASKS = ("official", "answers")  # the stage-3 loss masks (see the module docstring)

CAPTION_PROMPT = {"en": "Generate the caption in English:", "zh": "Generate the caption in Chinese:"}
GROUNDING_PROMPT = "Generate the caption in English with grounding:"
OCR_PROMPT = "OCR with grounding:"

# Target separators per task: a space after a prompt that ends in a word or colon, none before a tag.
_SEPARATOR = {
    "caption": " ",
    "vqa": " ",
    "grounding": " ",
    "grounded_caption": " ",
    "ref_grounding": "",
    "ocr": "",
    "text": "",
}

_IMG_RE = re.compile(r"<img>(.*?)</img>", re.S)


def image_tag(ref: str) -> str:
    return f"<img>{ref}</img>"


def caption_prompt(lang: str) -> str:
    return CAPTION_PROMPT[lang]


def vqa_prompt(question: str) -> str:
    return f" {question.strip()} Answer:"


def ref_grounding_prompt(expression: str) -> str:
    return format_ref(expression)


def boxes_text(boxes) -> str:
    return "".join(format_box(b) for b in boxes)


def region_caption_prompt(bins) -> str:
    return f"{format_ref('This')}{format_box(bins)} is"


def multiple_choice_question(question: str, choices: list[str]) -> str:
    """AI2D-style: the choices written into the question, lettered A, B, C, ..."""
    letters = "ABCDEFGHIJ"
    opts = " ".join(f"({letters[i]}) {c}" for i, c in enumerate(choices))
    return f"{question.strip()} Options: {opts}"


def task_text(prompt: str, target: str, task: str) -> tuple[str, str]:
    """The (prefix-after-image, loss text) pair of a stage-1/2 sample."""
    sep = _SEPARATOR[task] if target and not target.startswith("<") else ""
    return prompt, sep + target


def train_segments(task: str, prompt: str, target: str, images: list[str]) -> list[dict]:
    """Stage 1/2 segments: image tags + prompt carry no loss; the target does. Text: all loss."""
    prefix = "".join(image_tag(m) for m in images)
    prompt, target = task_text(prompt, target, task)
    segments = []
    if prefix or prompt:
        segments.append({"text": prefix + prompt, "loss": False})
    segments.append({"text": target, "loss": True})
    return segments


def task_from_segments(task: str, segments: list[dict]) -> tuple[str, str]:
    """The inverse of `train_segments`: (prompt after the image tags, target without its separator)."""
    prefix = "".join(s["text"] for s in segments if not s["loss"])
    target = "".join(s["text"] for s in segments if s["loss"])
    sep = _SEPARATOR.get(task, "")
    if sep and target.startswith(sep) and not target[len(sep) :].startswith("<"):
        target = target[len(sep) :]
    return _IMG_RE.sub("", prefix), target


_PICTURE_RE = re.compile(r"Picture \d+: <img>(.*?)</img>\n|<img>(.*?)</img>", re.S)


def image_placeholders(text: str, placeholder: str = "<image>") -> tuple[str, list[str]]:
    """`Picture N: <img>path</img>\n` (or a bare `<img>path</img>`) -> `<image>`, as LLaMA-Factory and
    ms-swift read multimodal chats; returns the text and the paths in order."""
    paths: list[str] = []

    def sub(m):
        paths.append(m.group(1) if m.group(1) is not None else m.group(2))
        return placeholder

    return _PICTURE_RE.sub(sub, text), paths


def rename_images(text: str, names: list[str]) -> tuple[str, list[str]]:
    """Replace each `<img>path</img>` in order by the next member name; return the text + the paths."""
    paths: list[str] = []

    def sub(m):
        paths.append(m.group(1))
        return image_tag(names[len(paths) - 1]) if len(paths) <= len(names) else m.group(0)

    return _IMG_RE.sub(sub, text), paths


def image_refs(text: str) -> list[str]:
    return _IMG_RE.findall(text)


def picture_prefix(names: list[str], start: int = 1) -> str:
    """`Picture 1: <img>a</img>\\nPicture 2: <img>b</img>\\n` (numbered in conversation order)."""
    return "".join(f"Picture {start + i}: {image_tag(n)}\n" for i, n in enumerate(names))


def chat_segments(turns: list[tuple[str, str]], system: str = DEFAULT_SYSTEM, mask: str = "official") -> list[dict]:
    """ChatML segments of [(role, text)] with role user|assistant, after a system turn.

    mask "official": per turn `<|im_start|>` (loss) | `{role}\n` (none) | content (loss for the assistant
    only) + `<|im_end|>\n` (loss). mask "answers": loss on `{answer}<|im_end|>` only."""
    if mask not in STAGE3_MASKS:
        raise ValueError(f"unknown stage-3 mask {mask!r} (expected one of {', '.join(STAGE3_MASKS)})")
    segs: list[dict] = []
    for i, (role, text) in enumerate([("system", system)] + list(turns)):
        if role not in ("user", "assistant") and i:
            raise ValueError(f"unknown role {role!r} (expected user or assistant)")
        answer = role == "assistant"
        if mask == "official":
            head, tail = [(IM_START, True), (f"{role}\n", False)], [(text, answer), (f"{IM_END}\n", True)]
        else:
            head, tail = [(f"{IM_START}{role}\n", False)], [(text, answer), (IM_END, answer), ("\n", False)]
        segs += _merged(head) + _merged(tail)  # never merged across the role line | content boundary
    return segs


def _merged(parts) -> list[dict]:
    """Adjacent (text, loss) pieces with equal loss joined (at a special token: no token changes)."""
    out: list[dict] = []
    for piece, loss in parts:
        if out and out[-1]["loss"] == loss:
            out[-1]["text"] += piece
        elif piece:
            out.append({"text": piece, "loss": loss})
    return out


_TURN_RE = re.compile(re.escape(IM_START) + r"(system|user|assistant)\n(.*?)" + re.escape(IM_END) + "\n", re.S)


def chat_turns(text: str) -> tuple[str | None, list[tuple[str, str]]]:
    """The inverse of `chat_segments` (on the joined text): (system or None, [(role, content)]).
    Raises ValueError when the text is not a whole number of ChatML turns."""
    system, pos = None, 0
    turns: list[tuple[str, str]] = []
    for m in _TURN_RE.finditer(text):
        if m.start() != pos:
            break
        pos = m.end()
        if m.group(1) == "system" and not turns and system is None:
            system = m.group(2)
        elif m.group(1) == "system":
            raise ValueError("a system turn after the first turn")
        else:
            turns.append((m.group(1), m.group(2)))
    if pos != len(text):
        raise ValueError(f"not ChatML at character {pos}: {text[pos : pos + 40]!r}")
    return system, turns


# Stage-3 instructions for task samples turned into chat turns ({x} is filled per task).
CHAT_INSTRUCTIONS = {
    "caption": {"en": "Describe the image in English.", "zh": "用中文描述这张图片。"},
    "grounding": {
        "en": "Describe the image in English and ground the objects you mention.",
        "zh": "用英文描述这张图片，并给出所提到物体的位置。",
    },
    "ref_grounding": {"en": "Give the bounding box of {x} in the image.", "zh": "框出图中{x}的位置"},
    "grounded_caption": {"en": "Describe the region {x} of the image.", "zh": "描述图中{x}区域的内容"},
    "ocr": {
        "en": "Read all the text in the image and give the position of each line.",
        "zh": "识别图中所有文字，并给出每行文字的位置。",
    },
}


def pick_lang(uid: str, zh_fraction: float) -> str:
    """A stable per-sample choice of instruction language (the same uid always gets the same one)."""
    h = int.from_bytes(hashlib.sha1(uid.encode("utf-8")).digest()[:4], "big") / 2**32
    return "zh" if h < zh_fraction else "en"


def task_to_chat(sample: dict, instruction_lang: str) -> tuple[str, str]:
    """A task sample -> (user text without picture prefix, assistant answer)."""
    task, prompt, target = sample["task"], sample["prompt"], sample["target"]
    if task == "vqa":  # the question is already an instruction in its own language
        question = prompt.strip()
        question = question[: -len("Answer:")].rstrip() if question.endswith("Answer:") else question
        return question, target
    if task == "caption":
        lang = sample.get("lang", "en")
        return CHAT_INSTRUCTIONS["caption"][lang if lang in ("en", "zh") else "en"], target
    if task == "ref_grounding":
        expr = _between(prompt, "<ref>", "</ref>")
        return CHAT_INSTRUCTIONS[task][instruction_lang].format(x=expr), f"{format_ref(expr)}{target}"
    if task == "grounded_caption":
        box = prompt[prompt.find("<box>") : prompt.find("</box>") + len("</box>")]
        return CHAT_INSTRUCTIONS[task][instruction_lang].format(x=box), target
    if task in ("grounding", "ocr"):
        return CHAT_INSTRUCTIONS[task][instruction_lang], target
    raise ValueError(f"task {task!r} has no chat form")


def _between(text: str, a: str, b: str) -> str:
    i = text.find(a)
    j = text.find(b, i + len(a))
    return text[i + len(a) : j] if i >= 0 and j >= 0 else text
