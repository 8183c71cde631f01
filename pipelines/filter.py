"""`qwenvl-data filter`: web image-text pairs → a clean English+Chinese pair corpus.

    qwenvl-data filter --input 'laion/*.parquet' --source laion --output out/filter
    qwenvl-data filter --input a.parquet b.parquet --config my.yaml --engine beam -- --runner=DataflowRunner ...

Writes OUT/pairs/*.parquet (kept), OUT/rejects/*.parquet (every dropped row with its reasons),
OUT/funnel.json and OUT/funnel.md (per source: in, dropped per rule, kept, kept % and languages).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import fsspec

from qwenvl_data import funnel
from qwenvl_data.config import default_file, merge_user_sections
from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.outdir import own_output
from qwenvl_data.pipelines.engines import ENGINES, EngineOptions, get_engine
from qwenvl_data.pipelines.filter_job import Chunk, FilterJob, one_line, open_parquet, read_counts
from qwenvl_data.rules import RULES, PairRules
from qwenvl_data.sources import layouts_from_config, source_for_path

ROWS_PER_PARTITION = 262_144


def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("--input", nargs="+", required=True, metavar="PATH", help="parquet files, globs or fsspec URLs")
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--source", help="source layout of every input (laion, datacomp, coyo, cc3m, ...)")
    p.add_argument("--config", help="YAML overriding configs/filter.yaml (sections filter:, sources:, paths:)")
    p.add_argument("--engine", choices=ENGINES, default="local")
    p.add_argument("--workers", type=int, default=0, help="processes / Ray CPUs (default: all cores)")
    p.add_argument("--ray-address", help="join this Ray cluster instead of starting a local Ray")
    p.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="read every row group once first; list unreadable files in the funnel and go on",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "beam_args",
        nargs=argparse.REMAINDER,
        help="after `--`: Beam pipeline options (e.g. --runner=DataflowRunner ...)",
    )


def load_config(user: str | None) -> dict:
    """The three sections the filter reads (filter, sources, paths), defaults merged with the user's."""
    shipped = default_file("filter")
    return merge_user_sections(
        {"filter": shipped["filter"], "sources": shipped.get("sources") or {}, "paths": shipped.get("paths") or {}},
        user,
    )


def expand_inputs(patterns: list[str]) -> list[str]:
    """Paths, globs, directories (every *.parquet below) or fsspec URLs -> a sorted list of files."""
    paths: list[str] = []
    for pat in patterns:
        fs, path = fsspec.core.url_to_fs(pat)
        proto = pat.split("://", 1)[0] + "://" if "://" in pat else ""
        if any(ch in pat for ch in "*?["):
            hits = sorted(fs.glob(path))
            if not hits:
                raise UsageError(f"{pat}: no file matches")
        elif fs.isdir(path):
            hits = sorted(fs.glob(path.rstrip("/") + "/**/*.parquet"))
        elif fs.exists(path):
            hits = [path]
        else:
            raise UsageError(f"{pat}: no such file")
        paths += [proto + h for h in hits] if proto else hits
    return paths


def _stem(path: str) -> str:
    return Path(path.split("://", 1)[-1]).stem


def unique_stems(paths: list[str]) -> list[str]:
    """Each input's file stem for its uids; a repeated stem gets `~k`, the smallest k that names no
    other input (`a.parquet` twice and a real `a~1.parquet` give a, a~2, a~1)."""
    taken = {_stem(p) for p in paths}
    seen: set[str] = set()
    out = []
    for p in paths:
        stem = _stem(p)
        if stem in seen:
            k = 1
            while f"{stem}~{k}" in taken or f"{stem}~{k}" in seen:
                k += 1
            stem = f"{stem}~{k}"
        seen.add(stem)
        out.append(stem)
    return out


def _check_readable(pf, columns: dict) -> None:
    """Decode every row group once (only with --skip-bad-files): a corrupt data page, not only a bad
    footer, makes the whole file a bad file before any of it is filtered."""
    for rg in range(pf.metadata.num_row_groups):
        pf.read_row_group(rg, columns=sorted({c for c in columns.values() if c}))


def plan(paths, cfg, explicit_source, skip_bad) -> tuple[list[Chunk], list[dict]]:
    layouts = layouts_from_config(cfg["sources"])
    chunks, bad = [], []
    for path, stem in zip(paths, unique_stems(paths)):
        source = source_for_path(path, explicit_source, cfg["paths"], layouts)
        try:
            pf = open_parquet(path)
            meta = pf.metadata
            columns = layouts[source].resolve(pf.schema_arrow.names, path)
            if skip_bad:
                _check_readable(pf, columns)
        except BadInput:
            raise
        except Exception as e:
            msg = f"not a readable parquet file ({type(e).__name__}: {one_line(e)[:160]})"
            if not skip_bad:
                raise BadInput(f"{path}: {msg}") from None
            bad.append({"path": path, "error": msg})
            continue
        offset = 0
        for rg in range(meta.num_row_groups):
            n = meta.row_group(rg).num_rows
            chunks.append(Chunk(len(chunks), path, source, stem, rg, offset, n, tuple(sorted(columns.items()))))
            offset += n
    return chunks, bad


def run(args) -> int:
    beam_args = [a for a in (args.beam_args or []) if a != "--"]
    if beam_args and args.engine != "beam":
        raise UsageError(f"unexpected arguments {beam_args[:3]} (pipeline options after -- need --engine beam)")
    cfg = load_config(args.config)
    rules = PairRules.from_config(cfg["filter"])
    paths = expand_inputs(args.input)
    chunks, bad = plan(paths, cfg, args.source, args.skip_bad_files)
    out = args.output.rstrip("/")
    inputs = [("--input", p) for p in list(args.input) + paths]
    with own_output(out, stage="filter", inputs=inputs):  # the lock, the marker, no overlap with inputs
        fs, root = fsspec.core.url_to_fs(out)
        for sub in ("pairs", "rejects", "_work"):
            if fs.exists(f"{root}/{sub}"):
                fs.rm(f"{root}/{sub}", recursive=True)
        fs.makedirs(root, exist_ok=True)
        total_rows = sum(c.num_rows for c in chunks)
        num_partitions = max(2, math.ceil(total_rows / ROWS_PER_PARTITION))
        job = FilterJob(
            rules,
            layouts_from_config(cfg["sources"]),
            out,
            num_partitions,
            list(cfg["filter"].get("source_order") or []),
        )
        options = EngineOptions(args.workers, args.ray_address, beam_args, not args.no_progress and sys.stderr.isatty())
        t0 = time.perf_counter()
        if chunks:
            if args.engine == "local":
                rules.warm()  # the forked worker processes share the loaded model instead of each loading it
            get_engine(args.engine).run(job, chunks, options)
            job.resolve_duplicate_uids()
        seconds = time.perf_counter() - t0
        counts = read_counts(out)
        for c in chunks:  # a source whose every row was read shows up even with zero rows
            counts.setdefault(c.source, {})
        result = funnel.finalise(
            counts,
            RULES,
            bad_files=bad,
            engine=args.engine,
            seconds=round(seconds, 3),
            rows_per_s=round(total_rows / seconds) if seconds > 0 and total_rows else 0,
        )
        if result["total"]["in"] != total_rows:
            raise funnel.ConservationError(f"read {total_rows} rows but the funnel counts {result['total']['in']}")
        if fs.exists(f"{root}/_work"):
            fs.rm(f"{root}/_work", recursive=True)
        for sub in ("pairs", "rejects"):
            fs.makedirs(f"{root}/{sub}", exist_ok=True)
        funnel.write(result, out)
        print(funnel.to_markdown(result))
        t = result["total"]
        print(
            f"filter: {t['kept']}/{t['in']} rows kept ({t['kept_pct']}%) by engine {args.engine} in "
            f"{seconds:.1f} s -> {out}"
        )
        return 0
