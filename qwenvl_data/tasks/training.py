"""Training samples (schema "train") from pair shards, task shards and fine-tuning JSON.

Two passes keep memory small and reads sequential: `scan_*` reads only the `.json` members (the shard
reader seeks past images) into `Record`s, checked and grouped; after the mix is planned, `read_records`
streams the chosen samples' files back in file order and `build_*` turns each into the training
json + image members (`img0.jpg`, `img1.png`, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import formats
from ..shards.reader import scan
from ..vocab import is_image_ext
from .common import Reject, image_from_bytes, task_error
from .text import guess_lang


@dataclass(slots=True)
class Record:
    group: str  # the mixing group: a source (stage 1) or a task (stage 2, 3; "chat" for SFT)
    source: str
    lang: str
    uid: str
    origin: Path  # the tar or JSON file it comes from
    pos: int  # its position there (file order)
    key: str = ""
    meta: dict = field(default_factory=dict)


def scan_tar(path: Path):
    """[(key, {ext, ...}, json dict | None | "bad_json")] for each sample, reading only json."""
    out: list[list] = []
    with open(path, "rb") as f:
        for key, found in scan(path):
            meta = None
            if "json" in found:
                offset, size = found["json"]
                f.seek(offset)
                try:
                    meta = json.loads(f.read(size))
                except (ValueError, RecursionError):
                    meta = "bad_json"
            out.append([key, set(found), meta])
    return out


def image_ext(exts) -> str | None:
    """The sample's image member (vocab.is_image_ext: any case, webp included), or None."""
    return next((e for e in sorted(exts) if e != "json" and is_image_ext(e)), None)


_MAX_SIDE = 1 << 20  # far above any real image side; also what a 32-bit cast downstream can hold


def _bad_size(meta: dict) -> str | None:
    """The sample's recorded width/height, when present, must be whole numbers of pixels in range."""
    for key in ("width", "height", "original_width", "original_height"):
        v = meta.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or not (1 <= v <= _MAX_SIDE) or int(v) != v:
            return f"{key}={v!r} is not a pixel count in 1..{_MAX_SIDE}"
    return None


def scan_pairs(path: Path):
    """Stage 1: caption records from a pair shard, grouped by source."""
    for pos, (key, exts, meta) in enumerate(scan_tar(path)):
        uid = str(meta["uid"]) if isinstance(meta, dict) and meta.get("uid") else f"{path.name}:{key}"
        if not isinstance(meta, dict):
            yield Reject(uid, "bad_json" if meta else "missing_json")
        elif image_ext(exts) is None:
            yield Reject(uid, "missing_image")
        elif meta.get("lang") not in formats.CAPTION_PROMPT:
            yield Reject(uid, "unknown_lang", str(meta.get("lang")))
        elif not str(meta.get("caption") or "").strip():
            yield Reject(uid, "empty_caption")
        elif (bad := _bad_size(meta)) is not None:
            yield Reject(uid, "bad_image_size", bad)
        else:
            src = str(meta.get("source") or "unknown")
            yield Record(src, src, meta["lang"], uid, path, pos, key, {"ext": image_ext(exts)})


def scan_tasks(path: Path):
    """Stage 2/3: task-sample records (schema task/ocr), grouped by task."""
    for pos, (key, exts, meta) in enumerate(scan_tar(path)):
        uid = str(meta["uid"]) if isinstance(meta, dict) and meta.get("uid") else f"{path.name}:{key}"
        if not isinstance(meta, dict):
            yield Reject(uid, "bad_json" if meta else "missing_json")
            continue
        err = task_error(meta)
        ext = image_ext(exts)
        if err:
            yield Reject(uid, "schema_mismatch", err)
        elif meta["task"] != "text" and ext is None:
            yield Reject(uid, "missing_image")
        else:
            # only what the mix needs stays in memory; the json is read again when the sample is written
            yield Record(
                meta["task"], str(meta.get("source") or path.stem), meta["lang"], uid, path, pos, key, {"ext": ext}
            )


def scan_sft(path: Path):
    """Stage 3: conversations from a Qwen-VL fine-tuning JSON (images relative to the file).

    As the official finetune.py `preprocess`: a conversation whose first turn is not the user's loses
    that one turn (with its images), and one that ends with a user turn is kept (that turn teaches
    only `<|im_start|>`, `<|im_end|>`, `\n`). One left with no assistant turn is rejected
    (`no_assistant_turn`; the official code would train on its special tokens alone). An optional
    string `system` per conversation (written by `qwenvl-data export`) overrides the configured one."""
    from .common import read_json

    data = read_json(path)
    if not isinstance(data, list):
        from ..errors import BadInput

        raise BadInput(f"{path}: fine-tuning JSON must be a list of {{id, conversations}}")
    for pos, conv in enumerate(data):
        uid = f"{path.stem}:{conv.get('id', pos) if isinstance(conv, dict) else pos}"
        turns = conv.get("conversations") if isinstance(conv, dict) else None
        if (
            not isinstance(turns, list)
            or not turns
            or not all(
                isinstance(t, dict) and t.get("from") in ("user", "assistant") and isinstance(t.get("value"), str)
                for t in turns
            )
        ):
            yield Reject(uid, "bad_conversation", "conversations must be [{from: user|assistant, value}]")
            continue
        if turns[0]["from"] != "user":
            turns = turns[1:]
        if not any(t["from"] == "assistant" for t in turns):
            yield Reject(uid, "no_assistant_turn", "no assistant turn after the first user turn")
            continue
        system = conv.get("system")
        if system is not None and not isinstance(system, str):
            yield Reject(uid, "bad_conversation", "system must be a string")
            continue
        paths = [p for t in turns for p in formats.image_refs(t["value"])]
        files = [(path.parent / p) if not Path(p).is_absolute() else Path(p) for p in paths]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            yield Reject(uid, "missing_image", missing[0])
            continue
        text = " ".join(t["value"] for t in turns)
        yield Record(
            "chat",
            path.stem,
            guess_lang(text),
            uid,
            path,
            pos,
            "",
            {"turns": [(t["from"], t["value"]) for t in turns], "files": [str(f) for f in files], "system": system},
        )


def read_records(records):
    """Yield (record, {ext: bytes}) for records in order; one sequential read per run of one tar."""
    run: list[Record] = []
    for r in records:
        if run and (r.origin != run[-1].origin or r.pos <= run[-1].pos):
            yield from _read_run(run)
            run = []
        run.append(r)
    if run:
        yield from _read_run(run)


def _read_run(run: list[Record]):
    if run[0].origin.suffix != ".tar":
        for r in run:
            yield r, {}
        return
    wanted = {r.key: r for r in run}
    with open(run[0].origin, "rb") as f:
        for key, found in scan(run[0].origin):
            if key not in wanted:
                continue
            files = {}
            for ext, (offset, size) in found.items():
                if ext == "json" or is_image_ext(ext):
                    f.seek(offset)
                    files[ext] = f.read(size)
            yield wanted[key], files


def _train_json(r: Record, stage: int, task: str, lang: str, images: list[str], segments: list[dict]):
    return {
        "schema": "train",
        "uid": r.uid,
        "stage": stage,
        "task": task,
        "lang": lang,
        "source": r.source,
        "images": images,
        "segments": segments,
    }


def _member(ext: str, i: int) -> str:
    """Image member i of a training sample: `img0.jpg`, `img1.png` (lower case; jpeg -> jpg; `KEY.JPG` in)."""
    ext = ext.rsplit(".", 1)[-1].lower()
    return f"img{i}.{'jpg' if ext == 'jpeg' else ext}"


def build_stage12(r: Record, files: dict, stage: int):
    """(train json, {member ext: bytes}) for a stage-1 caption or stage-2 task sample."""
    m = r.meta | json.loads(files["json"])
    if stage == 1:
        task, prompt, target = "caption", formats.caption_prompt(r.lang), str(m["caption"]).strip()
    else:
        task, prompt, target = m["task"], m["prompt"], m["target"]
    images, members = [], {}
    if m.get("ext"):
        name = _member(m["ext"], 0)
        images, members = [name], {name: files[m["ext"]]}
    return _train_json(r, stage, task, r.lang, images, formats.train_segments(task, prompt, target, images)), members


def build_stage3(r: Record, files: dict, system: str, zh_fraction: float, mask: str = "official"):
    """(train json, members) for a stage-3 chat: an SFT conversation or a task sample as one turn;
    `mask` is the loss mask (formats.STAGE3_MASKS)."""
    if r.group == "chat":
        members, names = {}, []
        for i, f in enumerate(r.meta["files"]):
            img = image_from_bytes(Path(f).read_bytes(), f, r.uid)
            if isinstance(img, Reject):
                return img
            names.append(_member(img.ext, i))
            members[names[-1]] = img.data
        turns, used = [], 0
        for role, text in r.meta["turns"]:
            n = len(formats.image_refs(text))
            text, _ = formats.rename_images(text, names[used : used + n])
            used += n
            turns.append((role, text))
        segments = formats.chat_segments(turns, r.meta.get("system") or system, mask)
        return _train_json(r, 3, "chat", r.lang, names, segments), members
    m = r.meta | json.loads(files["json"])
    if m["task"] == "text":
        return Reject(r.uid, "no_chat_form")
    lang = formats.pick_lang(r.uid, zh_fraction)
    try:  # a task of vocab.TASKS that formats has no chat form for yet: counted, never a traceback
        question, answer = formats.task_to_chat(m, lang)
    except ValueError as e:
        return Reject(r.uid, "no_chat_form", str(e))
    name = _member(m["ext"], 0)
    lang = r.lang if m["task"] in ("vqa", "caption") else lang
    turns = [("user", formats.picture_prefix([name]) + question), ("assistant", answer)]
    return _train_json(r, 3, m["task"], lang, [name], formats.chat_segments(turns, system, mask)), {
        name: files[m["ext"]]
    }
