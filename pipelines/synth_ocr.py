"""`qwenvl-data synth-ocr`: synthetic OCR pages (English, Chinese) and real PDF / HTML pages, written
as stage-2 OCR task shards (schemas/ocr.schema.json).

    qwenvl-data synth-ocr --output out/ocr --num 400 --lang both --seed 0 [--pdf DIR] [--html DIR]

- The unit of work is one shard: `synthdog-{lang}-NNNNNN` holds pages [i*shard_size, (i+1)*shard_size)
  of that language, `pdf-NNNNNN` / `html-NNNNNN` a fixed slice of the sorted input files. A job is a
  small picklable object; the local process pool (default) and Ray run the same function on it.
- Resumable and deterministic: finished shards (stats json present) are skipped; a page's pixels
  depend only on (seed, language, page number), so reruns and any worker count give identical bytes.
- Every input page ends up in a shard or in the funnel's dropped counts with a reason;
  `synth_ocr.json` (stage "synth-ocr") is checked (in = kept + dropped) before the job reports success.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from qwenvl_data import funnel, storage
from qwenvl_data.config import load_section
from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.outdir import own_output
from qwenvl_data.pipelines.engines.units import map_units
from qwenvl_data.shards import ShardWriter, clean_stale_temps, shard_done, shard_name
from qwenvl_data.shards.loaders import write_loader_index

ROW_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("uid", pa.string()),
        ("source", pa.string()),
        ("lang", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("lines", pa.int64()),
        ("words", pa.int64()),
        ("chars", pa.int64()),
    ]
)
FILES_PER_SHARD = 50  # real pages: input files per shard


def add_arguments(p):
    p.add_argument("--output", required=True, help="output folder for the shards and synth_ocr.json")
    p.add_argument("--num", type=int, default=0, help="synthetic pages in all (split over languages)")
    p.add_argument("--lang", choices=["en", "zh", "both"], default="both")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corpus", help="text file, JSONL or parquet (column text/caption), or a folder")
    p.add_argument("--backgrounds", help="folder of natural images (default: procedural textures)")
    p.add_argument("--fonts", help="font folder (default: fonts shipped by matplotlib and paperang-p2-fonts-cjk)")
    p.add_argument("--pdf", help="folder of PDF files")
    p.add_argument("--html", help="folder of HTML files")
    p.add_argument("--config", help="YAML with a synth_ocr: section overriding configs/synth_ocr.yaml")
    p.add_argument("--shard-size", type=int, help="synthetic pages per shard (config: shard_size)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="local processes / Ray tasks")
    p.add_argument("--engine", choices=["local", "ray"], default="local")
    p.add_argument("--ray-address", help="address of a running Ray cluster (default: start a local one)")


@dataclass
class ShardJob:
    """One shard to write: synthetic pages [first, first+count) of `lang`, or a list of files."""

    kind: str  # "synth", "pdf" or "html"
    prefix: str
    shard_id: int
    out_dir: str
    cfg: dict
    lang: str = ""
    seed: int = 0
    first: int = 0
    count: int = 0
    files: list = field(default_factory=list)  # [path, name relative to the input folder]
    corpus: str | None = None
    fonts: str | None = None
    backgrounds: str | None = None


_RESOURCES: dict = {}  # per worker process: fonts, corpus and backgrounds of each language


def _resources(job: ShardJob):
    from qwenvl_data.ocr.render import load_resources

    key = (job.lang, job.corpus, job.fonts, job.backgrounds)
    if key not in _RESOURCES:
        _RESOURCES[key] = load_resources(job.lang, job.cfg, job.corpus, job.fonts, job.backgrounds)
    return _RESOURCES[key]


def _row(key: str, sample: dict) -> dict:
    return {
        "key": key,
        "uid": sample["uid"],
        "source": sample["source"],
        "lang": sample["lang"],
        "width": sample["width"],
        "height": sample["height"],
        "lines": len(sample["lines"]),
        "words": sum(len(ln["words"]) for ln in sample["lines"]),
        "chars": sum(len(ln["text"]) for ln in sample["lines"]),
    }


def _real_pages(job: ShardJob):
    """(uid, RGB array, sample, reason) for every page of the job's files."""
    if job.kind == "pdf":
        from qwenvl_data.ocr.pdf import pdf_pages

        for path, name in job.files:
            yield from pdf_pages(path, job.cfg["pdf"], name)
    else:
        from qwenvl_data.ocr.html import HtmlRenderer

        with HtmlRenderer(job.cfg["html"]) as renderer:
            for path, name in job.files:
                yield renderer.render(path, name)


def _encode_png(image) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return buf.tobytes()


def write_shard(job: ShardJob) -> dict:
    """Write one shard and return its funnel stats {source: {in, kept, dropped}}; module level so
    that process pools and Ray can pickle it."""
    tally = funnel.Tally()
    counters: dict = {}
    rejects = []

    def count(source, reason=None):
        if reason:
            tally.drop(source, reason)
        else:
            tally.keep(source)

    with ShardWriter(job.out_dir, job.shard_id, job.prefix, parquet_schema=ROW_SCHEMA) as writer:
        if job.kind == "synth":
            from qwenvl_data.ocr.render import render_page

            res = _resources(job)
            for page_no in range(job.first, job.first + job.count):
                jpeg, sample, c = render_page(job.cfg, res, job.seed, page_no)
                for k, v in c.items():
                    counters[k] = counters.get(k, 0) + v
                if not sample["lines"]:
                    count(sample["source"], "no_text_lines")
                    rejects.append({"uid": sample["uid"], "reason": "no_text_lines"})
                    continue
                key = sample["uid"]
                writer.add(key, {"jpg": jpeg, "json": sample}, _row(key, sample))
                count(sample["source"])
        else:
            for uid, image, sample, reason in _real_pages(job):
                if reason:
                    count(job.kind, reason)
                    rejects.append({"uid": uid, "reason": reason})
                    continue
                writer.add(uid, {"png": _encode_png(image), "json": sample}, _row(uid, sample))
                count(job.kind)
        writer.close({"funnel": tally.counts, "counters": counters, "rejects": rejects})
    return tally.counts


def _shard_stats(job: ShardJob) -> dict:
    return storage.read_json(storage.join(job.out_dir, f"{shard_name(job.prefix, job.shard_id)}.json"))["funnel"]


def _done(job: ShardJob) -> bool:
    return shard_done(job.out_dir, job.shard_id, job.prefix)


def _real_jobs(kind: str, folder: str | None, suffixes, out: str, cfg: dict) -> list[ShardJob]:
    if not folder:
        return []
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"--{kind} {folder}: not a directory")
    files = sorted([str(p), p.relative_to(root).as_posix()] for p in root.rglob("*") if p.suffix.lower() in suffixes)
    if not files:
        raise BadInput(f"--{kind} {folder}: no {'/'.join(suffixes)} files in it")
    return [
        ShardJob(kind, kind, i, out, cfg, files=files[s : s + FILES_PER_SHARD])
        for i, s in enumerate(range(0, len(files), FILES_PER_SHARD))
    ]


def plan(args, cfg: dict) -> list[ShardJob]:
    out = str(args.output)
    langs = ["en", "zh"] if args.lang == "both" else [args.lang]
    size = args.shard_size or int(cfg["shard_size"])
    if size <= 0 or args.num < 0:
        raise UsageError("--num must be >= 0 and --shard-size > 0")
    jobs = []
    for i, lang in enumerate(langs):
        n = args.num // len(langs) + (1 if i < args.num % len(langs) else 0)
        for sid in range(math.ceil(n / size)):
            jobs.append(
                ShardJob(
                    "synth",
                    f"synthdog-{lang}",
                    sid,
                    out,
                    cfg,
                    lang=lang,
                    seed=args.seed,
                    first=sid * size,
                    count=min(size, n - sid * size),
                    corpus=args.corpus,
                    fonts=args.fonts,
                    backgrounds=args.backgrounds,
                )
            )
    jobs += _real_jobs("pdf", args.pdf, (".pdf",), out, cfg)
    jobs += _real_jobs("html", args.html, (".html", ".htm"), out, cfg)
    if not jobs:
        raise UsageError("nothing to do: give --num N (> 0), --pdf DIR or --html DIR")
    return jobs


def run_jobs(jobs: list[ShardJob], engine: str, workers: int, ray_address: str | None) -> list[dict]:
    """One unit per shard on the shared engine layer (pipelines/engines/units.py): a process pool or one
    Ray task per shard (local Ray, or the cluster at ray_address); finished shards are skipped."""
    engine = "ray" if ray_address else engine  # --ray-address names a cluster: run there
    return map_units(write_shard, jobs, engine, workers, ray_address, done=_done, desc="synth-ocr shards")


def merge_funnel(parts: list[dict]) -> dict:
    """Per-source {in, kept, dropped} of all shards; raises when a source does not add up."""
    return funnel.check_sources(funnel.merge(*parts))


def _check_inputs(args, cfg: dict):
    """Fail fast, in the parent, on a bad --corpus / --fonts / --backgrounds (one clear line)."""
    from qwenvl_data.ocr.corpus import load_corpus
    from qwenvl_data.ocr.fonts import fonts_for

    langs = ["en", "zh"] if args.lang == "both" else [args.lang]
    if args.num:
        for lang in langs:
            fonts_for(lang, args.fonts)
            if args.corpus:
                load_corpus(args.corpus, lang)
    if args.backgrounds and not Path(args.backgrounds).is_dir():
        raise UsageError(f"--backgrounds {args.backgrounds}: not a directory")


def run(args) -> int:
    cfg = load_section("synth_ocr", args.config)
    _check_inputs(args, cfg)
    jobs = plan(args, cfg)
    inputs = [(f"--{k}", getattr(args, k, None)) for k in ("corpus", "backgrounds", "fonts", "pdf", "html")]
    with own_output(args.output, stage="synth-ocr", inputs=inputs):
        clean_stale_temps(args.output)
        todo = [j for j in jobs if not _done(j)]
        start = time.time()
        run_jobs(todo, args.engine, args.workers, args.ray_address)
        if not storage.is_remote(args.output):
            write_loader_index(args.output)  # wids-index.json (qwenvl_data/shards/loaders.py)
        seconds = time.time() - start
        sources = merge_funnel([_shard_stats(j) for j in jobs])
        report = {
            "sources": sources,
            "shards": len(jobs),
            "shards_written": len(todo),
            "engine": "ray" if args.ray_address else args.engine,
            "workers": args.workers,
            "seconds": round(seconds, 2),
        }
        funnel.write_summary(args.output, "synth-ocr", report)
        kept = sum(s["kept"] for s in sources.values())
        print(
            f"synth-ocr: {kept} pages kept in {len(jobs)} shards ({len(todo)} written, "
            f"{len(jobs) - len(todo)} already done) in {seconds:.1f}s -> {args.output}"
        )
        for source, s in sorted(sources.items()):
            print(f"  {source}: in {s['in']}, kept {s['kept']}, dropped {s['dropped'] or 0}")
        return 0
