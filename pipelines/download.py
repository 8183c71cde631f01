"""`qwenvl-data download`: the filter's clean pairs -> webdataset shards of (image, caption).

    qwenvl-data download --input OUT/filter/pairs --output OUT/download [--allow-addresses 127.0.0.1]

img2dataset does the fetching, resizing and tar writing (its Reader, Resizer, Downloader and
distributors); this job assembles them with our three seams (pipelines/download_parts.py), then:
- drops exact duplicate images across all shards (same sha256 of the downloaded bytes; the sample
  with the smallest key stays; reason `duplicate_image`),
- writes `OUT/failures/{shard}.parquet` (every pair that is not a sample, with its reason),
- checks that samples + failures = input pairs, and writes `OUT/download.json` (counts per reason,
  source and language; the input path, so `qwenvl-data report` can show the filter funnel beside it).
Resume: a shard whose `{shard}_stats.json` exists is done; a rerun downloads only the others.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from qwenvl_data import storage
from qwenvl_data.config import load_section
from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.images import ImageLimits
from qwenvl_data.netguard import AddressPolicy, parse_allow
from qwenvl_data.outdir import own_output
from qwenvl_data.pipelines.download_dedup import drop_duplicates
from qwenvl_data.shards.loaders import write_loader_index

# The snake_case reasons our own checks put at the front of an error message (netguard, images).
REASONS = (
    "bad_scheme",
    "refused_address",
    "dns_error",
    "connection_error",
    "timeout",
    "http_error",
    "too_large",
    "opted_out",
    "not_an_image",
    "decode_error",
    "too_many_pixels",
    "image_too_small",
    "aspect_ratio",
    "duplicate_image",
    "resize_error",
    "download_error",
)
_PREFIXED = re.compile(r"(?:^|<urlopen error )([a-z][a-z0-9_]*): ")
_HTTP = re.compile(r"HTTP Error (\d{3})")


def failure_reason(error_message: str | None) -> str:
    """img2dataset's free-text error message -> one snake_case reason (http errors keep the code)."""
    msg = error_message or ""
    for m in _PREFIXED.finditer(msg):
        if m.group(1) in REASONS:
            return m.group(1)
    if m := _HTTP.search(msg):
        return f"http_{m.group(1)}"
    low = msg.lower()
    if "x-robots-tag" in low:
        return "opted_out"
    if "timed out" in low or "timeout" in low:
        return "timeout"
    if "unknown url type" in low:
        return "bad_scheme"
    if "image decoding error" in low:
        return "decode_error"
    if any(
        s in low
        for s in (
            "connection refused",
            "remote end closed",
            "connection reset",
            "remotedisconnected",
            "incompleteread",
            "bad status line",
        )
    ):
        return "connection_error"
    return "download_error"


OOM_SHARDS = 6  # shard names 000000.tar (docs/CONTRACTS.md)
PAIR_COLUMNS = ("uid", "source", "lang", "caption", "url")
FAILURE_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("source", pa.string()),
        ("lang", pa.string()),
        ("url", pa.string()),
        ("caption", pa.string()),
        ("shard", pa.string()),
        ("key", pa.string()),
        ("reason", pa.string()),
        ("error_message", pa.string()),
    ],
    metadata={b"qwenvl.schema": b"download_failure"},
)


def add_arguments(p):
    p.add_argument("--input", required=True, help="directory of pair parquet files (filter OUT/pairs)")
    p.add_argument("--output", required=True, help="output directory for shards")
    p.add_argument("--config", help="YAML file with a download: section overriding configs/download.yaml")
    p.add_argument(
        "--engine",
        choices=("local", "ray", "spark"),
        default="local",
        help="img2dataset distributor: local processes (default), ray or spark",
    )
    p.add_argument("--ray-address", help="Ray cluster address (engine ray); default: a local Ray")
    p.add_argument(
        "--spark-master", help="Spark master URL (engine spark); default: an active session, else local[processes]"
    )
    p.add_argument("--image-size", type=int, help="stored image size (shorter side), default 512")
    p.add_argument("--encode-format", choices=("jpg", "png", "webp"))
    p.add_argument("--processes", type=int, help="worker processes (default: CPU count)")
    p.add_argument("--threads", type=int, help="concurrent downloads per process")
    p.add_argument("--timeout", type=float, help="seconds per connect/read")
    p.add_argument("--deadline", type=float, help="seconds per whole request (connect + headers + body)")
    p.add_argument("--samples-per-shard", type=int)
    p.add_argument(
        "--allow-addresses",
        metavar="IP|CIDR,...",
        help="non-public addresses that may be fetched (test servers, intranet mirrors)",
    )


def settings(args) -> dict:
    cfg = load_section("download", args.config)
    for flag in ("image_size", "encode_format", "processes", "threads", "timeout", "deadline", "samples_per_shard"):
        if getattr(args, flag, None) is not None:
            cfg[flag] = getattr(args, flag)
    if args.allow_addresses:
        cfg["allow_addresses"] = list(cfg.get("allow_addresses") or []) + args.allow_addresses.split(",")
    if int(cfg["image_size"]) < 1 or int(cfg["samples_per_shard"]) < 1:
        raise UsageError("image_size and samples_per_shard must be positive")
    return cfg


def _abs(url) -> str:
    """Local paths absolute (workers run elsewhere); fsspec URLs (s3://, gs://) as given."""
    return str(url) if storage.is_remote(url) else str(Path(url).resolve())


def input_files(input_dir: str) -> tuple[list[str], int]:
    """The pair parquet files and their total rows; a missing column is named with its file."""
    if not storage.isdir(input_dir):
        raise UsageError(f"--input {input_dir}: not a directory of pair parquet files")
    files = storage.glob(storage.join(input_dir, "*.parquet"))
    if not files:
        raise UsageError(f"--input {input_dir}: no .parquet files")
    total = 0
    for f in files:
        try:
            meta = pq.ParquetFile(storage.open(f, "rb"))
        except Exception as e:  # noqa: BLE001 - any unreadable file is bad input
            raise BadInput(f"{f}: not a readable parquet file ({type(e).__name__}: {e})") from None
        missing = [c for c in PAIR_COLUMNS if c not in meta.schema_arrow.names]
        if missing:
            raise BadInput(f"{f}: missing pair column(s) {', '.join(missing)} (schemas/pair.schema.json)")
        schema = meta.schema_arrow
        wrong = [
            f"{c} ({schema.field(c).type})"
            for c in PAIR_COLUMNS
            if not (pa.types.is_string(schema.field(c).type) or pa.types.is_large_string(schema.field(c).type))
        ]
        if wrong:  # a list-typed uid would fail the string cast of the failures table, after the download
            raise BadInput(f"{f}: pair column(s) {', '.join(wrong)} must be strings (schemas/pair.schema.json)")
        total += meta.metadata.num_rows
    return files, total


def done_shards(output: str) -> set[int]:
    """Shards img2dataset finished: stats json readable, tar and parquet under their final names."""
    done = set()
    for stats in storage.glob(storage.join(output, "*_stats.json")):
        sid = storage.name(stats).split("_", 1)[0]
        try:
            storage.read_json(stats)
        except ValueError:
            continue  # killed while writing the stats: redo the shard
        if sid.isdigit() and all(storage.exists(storage.join(output, f"{sid}{e}")) for e in (".tar", ".parquet")):
            done.add(int(sid))
    return done


def run_img2dataset(
    cfg: dict,
    input_dir: str,
    output: str,
    engine: str,
    ray_address: str | None,
    spark_master: str | None = None,
    n_in: int = 0,
):
    """Assemble img2dataset's own parts around our seams and run its distributor."""
    from img2dataset import distributor as dist
    from img2dataset.reader import Reader

    from qwenvl_data.pipelines.download_parts import AtomicShardWriter, CheckedResizer, GuardedDownloader

    storage.clean_stale_temps(output)
    tmp = storage.join(output, "_tmp")  # img2dataset's input slices: workers read them (fsspec)
    storage.makedirs(tmp)
    columns = ["uid", "source", "lang"]
    reader = Reader(
        _abs(input_dir),
        "parquet",
        "url",
        "caption",
        None,
        None,
        columns,
        int(cfg["samples_per_shard"]),
        done_shards(output),
        tmp,
    )
    limits = ImageLimits(cfg.get("max_pixels"), cfg.get("min_image_side"), cfg.get("max_aspect_ratio"))
    resizer = CheckedResizer(
        limits,
        image_size=int(cfg["image_size"]),
        resize_mode=cfg["resize_mode"],
        resize_only_if_bigger=bool(cfg["resize_only_if_bigger"]),
        encode_format=cfg["encode_format"],
        encode_quality=int(cfg["encode_quality"]),
    )
    deadline = float(cfg["deadline"]) if cfg.get("deadline") else None
    policy = AddressPolicy(
        parse_allow(cfg.get("allow_addresses")), cfg.get("max_bytes"), float(cfg["timeout"]), deadline
    )
    directives = cfg.get("disallowed_header_directives") or None
    downloader = GuardedDownloader(
        policy,
        sample_writer_class=AtomicShardWriter,
        resizer=resizer,
        thread_count=int(cfg["threads"]),
        save_caption=True,
        extract_exif=False,
        output_folder=output,
        column_list=reader.column_list,
        timeout=float(cfg["timeout"]),
        number_sample_per_shard=int(cfg["samples_per_shard"]),
        oom_shard_count=OOM_SHARDS,
        compute_hash="sha256",
        verify_hash_type=None,
        encode_format=cfg["encode_format"],
        retries=int(cfg["retries"]),
        user_agent_token=cfg.get("user_agent_token"),
        disallowed_header_directives=directives,
    )
    processes = int(cfg.get("processes") or os.cpu_count() or 1)
    retry = int(cfg["max_shard_retry"])
    total = -(-n_in // int(cfg["samples_per_shard"]))
    with shard_progress(output, total, len(reader.done_shards)):
        _distribute(dist, engine, processes, downloader, reader, retry, ray_address, spark_master)
    storage.remove(tmp)


def _distribute(dist, engine, processes, downloader, reader, retry, ray_address, spark_master):
    if engine == "local":
        dist.multiprocessing_distributor(processes, downloader, reader, None, retry)
    elif engine == "ray":
        from qwenvl_data.pipelines.engines.ray_setup import ray_session

        with ray_session(ray_address, processes):
            dist.ray_distributor(processes, downloader, reader, None, retry)
    else:
        from qwenvl_data.pipelines.engines.spark_setup import spark_session

        with spark_session(spark_master, processes):
            dist.pyspark_distributor(processes, downloader, reader, 1000, retry)


@contextlib.contextmanager
def shard_progress(output: str, total: int, done: int, every: float = 2.0):
    """A progress bar of finished shards (their stats json) for every engine: img2dataset's local, Ray
    and Spark distributors report nothing to the driver, so the driver watches the output itself."""
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, unit="shard", desc="download", mininterval=1.0)
    stop = threading.Event()

    def watch():
        while not stop.wait(every):
            with contextlib.suppress(OSError):
                bar.update(max(0, len(storage.glob(storage.join(output, "*_stats.json"))) - bar.n))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(OSError):
            bar.update(max(0, len(storage.glob(storage.join(output, "*_stats.json"))) - bar.n))
        bar.close()


def write_failures(output: str, shard: str, table: pa.Table) -> pa.Table:
    """OUT/failures/{shard}.parquet: the shard's pairs that are not samples, with their reason."""
    bad = table.filter(pc.not_equal(table["status"], "success"))
    reasons = [failure_reason(m) for m in bad["error_message"].to_pylist()]
    out = pa.table(
        {
            **{c: bad[c].cast(pa.string()) for c in ("uid", "source", "lang", "url", "caption")},
            "shard": pa.array([shard] * bad.num_rows, pa.string()),
            "key": bad["key"],
            "reason": pa.array(reasons, pa.string()),
            "error_message": bad["error_message"],
        },
        schema=FAILURE_SCHEMA,
    )
    storage.write_parquet(out, storage.join(output, "failures", f"{shard}.parquet"))
    return out


def _counts(table: pa.Table, by: list[str]) -> list[dict]:
    return table.group_by(by).aggregate([([], "count_all")]).to_pylist() if table.num_rows else []


def summarise(output: str, input_dir: str, n_in: int, cfg: dict, engine: str, seconds: float) -> dict:
    shards = sorted(storage.name(p).split("_", 1)[0] for p in storage.glob(storage.join(output, "*_stats.json")))
    cols = ["uid", "source", "lang", "url", "caption", "key", "status", "error_message", "sha256"]
    tables = {s: storage.read_parquet(storage.join(output, f"{s}.parquet"), columns=cols) for s in shards}
    if cfg.get("dedup_sha256"):
        tables = drop_duplicates(output, tables)
    fails = (
        pa.concat_tables([write_failures(output, s, t) for s, t in tables.items()])
        if tables
        else FAILURE_SCHEMA.empty_table()
    )
    samples = (
        pa.concat_tables([t.filter(pc.equal(t["status"], "success")) for t in tables.values()]) if tables else None
    )
    n_ok = samples.num_rows if samples is not None else 0
    if n_ok + fails.num_rows != n_in:
        raise BadInput(
            f"{output}: {n_ok} samples + {fails.num_rows} failures != {n_in} input pairs in "
            f"{input_dir}: some shards did not finish (see the errors above); rerun the same "
            f"command to resume them"
        )
    sources: dict[str, dict] = {}
    for row in _counts(samples, ["source", "lang"]) if samples is not None else []:
        s = sources.setdefault(row["source"], {"samples": 0, "failed": {}, "samples_by_lang": {}})
        s["samples"] += row["count_all"]
        s["samples_by_lang"][row["lang"]] = row["count_all"]
    for row in _counts(fails, ["source", "reason"]):
        s = sources.setdefault(row["source"], {"samples": 0, "failed": {}, "samples_by_lang": {}})
        s["failed"][row["reason"]] = row["count_all"]
    for s in sources.values():
        s["in"] = s["samples"] + sum(s["failed"].values())
    reasons = {r["reason"]: r["count_all"] for r in _counts(fails, ["reason"])}
    summary = {
        "stage": "download",
        "input": _abs(input_dir),
        "engine": engine,
        "in": n_in,
        "samples": n_ok,
        "failed": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "success_pct": round(100.0 * n_ok / n_in, 2) if n_in else 0.0,
        "shards": len(shards),
        "sources": sources,
        "seconds": round(seconds, 2),
        "image_size": cfg["image_size"],
        "encode_format": cfg["encode_format"],
    }
    storage.write_json(storage.join(output, "download.json"), summary, indent=1)
    return summary


def run(args) -> int:
    cfg = settings(args)
    parse_allow(cfg.get("allow_addresses"))  # a bad range is a usage error before any work
    files, n_in = input_files(args.input)
    with own_output(args.output, stage="download", inputs=[("--input", args.input)]):
        return _download(args, cfg, n_in)


def _download(args, cfg: dict, n_in: int) -> int:
    output = _abs(args.output)
    start = time.time()
    run_img2dataset(cfg, args.input, output, args.engine, args.ray_address, getattr(args, "spark_master", None), n_in)
    s = summarise(output, args.input, n_in, cfg, args.engine, time.time() - start)
    if not storage.is_remote(output):
        write_loader_index(output)  # wids-index.json (qwenvl_data/shards/loaders.py)
    failed = ", ".join(f"{k} {v}" for k, v in s["failed"].items()) or "none"
    print(
        f"download: {s['samples']}/{s['in']} pairs -> samples ({s['success_pct']}%) in {s['shards']} "
        f"shards under {output}; failed: {failed}; {s['seconds']} s"
    )
    return 0
