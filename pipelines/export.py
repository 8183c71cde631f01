"""`qwenvl-data export --input DIR... --output DIR`: training shards -> chat JSON that other trainers read.

    qwenvl-data export --input out/shards/stage3 out/shards/stage2 --output out/export

Writes, beside one folder of images (`OUT/images/000000/00000000-0.jpg`, paths relative to OUT):
- `OUT/qwenvl.json`: the official QwenLM/Qwen-VL fine-tuning JSON, `[{"id", "conversations": [{"from":
  "user"|"assistant", "value"}]}]`, images as `Picture N: <img>images/…</img>\\n` in the user turns;
  a system prompt other than the default rides in an extra `system` key (finetune.py ignores it,
  `shards --stage 3` reads it back).
- `OUT/messages.json`: the multimodal chat JSON of LLaMA-Factory and ms-swift, `[{"id", "messages":
  [{"role", "content"}], "images": [...]}]`, one `<image>` placeholder per image, in order. Paths are
  relative to OUT (`--absolute`: absolute): LLaMA-Factory's `media_dir` / the working folder is OUT.
- `OUT/export.json`: samples in, exported, rejected by reason (in = exported + rejected);
  `OUT/rejects.jsonl`: shard, key and reason of each rejected sample.

Stage-3 samples give their ChatML turns back (formats.chat_turns); stage-1/2 samples become one user
turn (the task's chat instruction, as `shards --stage 3` writes task samples) and the target as the
answer; pure text has no chat form (`no_chat_form`). Round trip: `shards --stage 3 --input
OUT/qwenvl.json` writes the same segments as the exported stage-3 shards. One sample is in memory at a
time: the JSON arrays are written item by item to temporary files, renamed when complete. --input and
--output may be `s3://` (any fsspec URL): staged through a local temp folder (qwenvl_data/staging.py).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from qwenvl_data import formats, storage
from qwenvl_data.config import load_section
from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.outdir import own_output
from qwenvl_data.shards import iter_tar_samples
from qwenvl_data.staging import staged_args

FORMATS = ("qwenvl", "messages")


def add_arguments(p):
    p.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH",
        help="folders of training shards (qwenvl-data shards --stage 1|2|3) or .tar files",
    )
    p.add_argument("--output", required=True, help="folder for qwenvl.json, messages.json and images/")
    p.add_argument(
        "--format",
        default="qwenvl,messages",
        help="comma-separated: qwenvl (official fine-tuning JSON), messages (LLaMA-Factory / ms-swift)",
    )
    p.add_argument("--config", help="YAML with a 'shards:' section (stage-3 system prompt, instruction language)")
    p.add_argument(
        "--absolute",
        action="store_true",
        help="write absolute image paths (finetune.py opens them relative to its working folder)",
    )


class JsonArray:
    """A JSON array written one item at a time into an open text file (storage.atomic_write: the file
    appears under its name only when the export finishes)."""

    def __init__(self, f):
        self.f, self.n = f, 0
        self.f.write("[")

    def add(self, item: dict):
        self.f.write(("," if self.n else "") + "\n" + json.dumps(item, ensure_ascii=False))
        self.n += 1

    def finish(self):
        self.f.write("\n]\n")


def shard_files(inputs) -> list[Path]:
    files: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            files += sorted(q for q in p.rglob("*.tar") if not q.name.startswith(".tmp-"))
        elif p.is_file() and p.suffix == ".tar":
            files.append(p)
        else:
            raise UsageError(f"{raw}: no such shard folder or .tar file (--input)")
    if not files:
        raise UsageError(f"no training shards (*.tar) under {' '.join(map(str, inputs))}")
    return files


def sample_chat(meta: dict, files: dict, image_paths: list[str], system: str, zh_fraction: float):
    """(system, [(role, text)]) of one training sample with its images renamed to `image_paths`, or a
    reject reason. `files` maps the sample's members (`img0.jpg`, ...) to bytes."""
    if not isinstance(meta, dict) or meta.get("schema") != "train" or not isinstance(meta.get("segments"), list):
        return "bad_json"
    images = meta.get("images") or []
    if any(name not in files for name in images):
        return "missing_image"
    try:
        text = "".join(s["text"] for s in meta["segments"])
        if meta.get("stage") == 3:
            own, turns = formats.chat_turns(text)
            system = own if own is not None else system
        else:
            task = meta.get("task")
            if task == "text":
                return "no_chat_form"
            prompt, target = formats.task_from_segments(task, meta["segments"])
            sample = {"task": task, "prompt": prompt, "target": target, "lang": meta.get("lang", "en")}
            question, answer = formats.task_to_chat(sample, formats.pick_lang(str(meta.get("uid")), zh_fraction))
            turns = [("user", formats.picture_prefix(images) + question), ("assistant", answer)]
    except (KeyError, TypeError, ValueError):
        return "bad_segments"
    renamed, used = [], 0
    for role, t in turns:  # member names in the text -> the exported paths, in order
        n = len(formats.image_refs(t))
        t, refs = formats.rename_images(t, image_paths[used : used + n])
        if refs != images[used : used + n]:
            return "bad_segments"
        used += n
        renamed.append((role, t))
    return (system, renamed) if used == len(images) else "bad_segments"


def run(args) -> int:
    if args.absolute and storage.is_remote(args.output):
        raise UsageError("--absolute: image paths on an object store are relative to --output; drop --absolute")
    with staged_args(args, stage="export") as a:
        return _run(a)


def _run(args) -> int:
    t0 = time.time()
    wanted = [f.strip() for f in args.format.split(",") if f.strip()]
    if not wanted or any(f not in FORMATS for f in wanted):
        raise UsageError(f"--format {args.format!r}: choose from {', '.join(FORMATS)} (comma-separated)")
    s3 = load_section("shards", args.config).get("stage3") or {}
    default_system = s3.get("system") or formats.DEFAULT_SYSTEM
    zh_fraction = float(s3.get("zh_instruction_fraction") or 0.0)
    files = shard_files(args.input)
    out = Path(args.output)
    with own_output(out, stage="export", inputs=[("--input", p) for p in args.input]):
        return _export(args, out, files, wanted, default_system, zh_fraction, t0)


def _write_samples(
    files, out: Path, root: str, writers: dict, rejects, stats: dict, default_system: str, zh_fraction: float
):
    """Every sample of every shard: its images into out/images/, its chat into each JSON, or a reject."""
    for shard in files:
        for key, members in iter_tar_samples(shard):
            stats["in"] += 1
            try:
                meta = json.loads(members.get("json", b""))
            except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
                meta = None
            n = stats["exported"]
            names = meta.get("images") if isinstance(meta, dict) else None
            if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
                meta, names = None, []  # sample_chat calls it bad_json
            folder = f"images/{n // 1000:06d}"
            paths = [f"{folder}/{n:08d}-{i}.{name.rsplit('.', 1)[-1]}" for i, name in enumerate(names)]
            written = [f"{root}{p}" for p in paths]  # as the JSON names them (absolute with --absolute)
            chat = sample_chat(meta, members, written, default_system, zh_fraction)
            if isinstance(chat, str):
                stats["rejected"][chat] = stats["rejected"].get(chat, 0) + 1
                rejects.write(json.dumps({"shard": str(shard), "key": key, "reason": chat}) + "\n")
                continue
            if paths:
                (out / folder).mkdir(exist_ok=True)
            for name, path in zip(names, paths):
                (out / path).write_bytes(members[name])
            write_item(
                writers,
                str(meta.get("uid") or f"{shard.name}:{key}"),
                *chat,
                default_system,
                written,
            )
            stats["exported"] += 1
            stats["images"] += len(paths)
            stage = str(meta.get("stage"))
            stats["by_stage"][stage] = stats["by_stage"].get(stage, 0) + 1


def _export(args, out: Path, files, wanted, default_system: str, zh_fraction: float, t0: float) -> int:
    (out / "images").mkdir(parents=True, exist_ok=True)
    root = f"{out.resolve()}/" if args.absolute else ""
    stats = {"in": 0, "exported": 0, "images": 0, "rejected": {}, "by_stage": {}}
    with contextlib.ExitStack() as files_open:
        writers = {f: JsonArray(files_open.enter_context(storage.atomic_write(out / f"{f}.json", "w"))) for f in wanted}
        rejects = files_open.enter_context(storage.atomic_write(out / "rejects.jsonl", "w"))
        _write_samples(files, out, root, writers, rejects, stats, default_system, zh_fraction)
        for w in writers.values():
            w.finish()
    if stats["in"] != stats["exported"] + sum(stats["rejected"].values()):
        raise BadInput(
            f"export: accounting error: {stats['in']} in, {stats['exported']} exported, rejected {stats['rejected']}"
        )
    stats.update(formats=wanted, inputs=[str(f) for f in files], seconds=round(time.time() - t0, 3))
    storage.write_json(out / "export.json", stats, indent=1, sort_keys=True)
    print(
        f"export: {stats['exported']} of {stats['in']} samples, {stats['images']} images -> "
        f"{', '.join(str(out / f'{f}.json') for f in wanted)}; rejected {stats['rejected'] or 'none'}"
    )
    return 0


def write_item(writers: dict, uid: str, system: str, turns, default_system: str, paths: list[str]):
    """One conversation into each wanted format."""
    if "qwenvl" in writers:
        item = {"id": uid, "conversations": [{"from": r, "value": t} for r, t in turns]}
        if system != default_system:
            item["system"] = system
        writers["qwenvl"].add(item)
    if "messages" in writers:
        messages = [] if system == default_system else [{"role": "system", "content": system}]
        for role, text in turns:
            content, _ = formats.image_placeholders(text)
            messages.append({"role": role, "content": content})
        writers["messages"].add({"id": uid, "messages": messages, "images": list(paths)})
