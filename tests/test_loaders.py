"""Every kind of shard the project writes, read whole by the loaders users train with.

The shards come from the real stages on small inputs: pair shards from `download` against a loopback
image server, clip shards from clip-score's writer, OCR shards from `synth-ocr`, task shards from
`tasks`, stage 1/2/3 training shards from `shards`. Each shard family (docs/CONTRACTS.md: one member
set per family) is then read with webdataset (`to_tuple` and `decode`), wids, Hugging Face `datasets`
(normal and streaming), Ray Data `read_webdataset` and a mosaicml-streaming MDS conversion, and
compared sample for sample and field for field with what the tar holds (read with Python's tarfile).
"""

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from qwenvl_data.pipelines import cli
from qwenvl_data.vocab import is_image_ext

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "qwenvl_data.pipelines.cli"]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


serve = _load("serve_demo_images", ROOT / "scripts" / "serve_demo_images.py")
fixtures = _load("make_task_fixtures", ROOT / "scripts" / "make_task_fixtures.py")
JPEG_BYTES = fixtures.jpeg(16, 16, 1)


def write_pairs(folder: Path, urls: list[str]):
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    n = len(urls)
    pq.write_table(
        pa.table(
            {
                "uid": [f"laion:p{i}" for i in range(n)],
                "source": ["laion"] * 3 + ["coyo"] * (n - 3),
                "url": urls,
                "caption": [f"a caption {i}" for i in range(n)],
                "caption_raw": [f"a caption {i}" for i in range(n)],
                "width": pa.nulls(n, pa.int64()),
                "height": pa.nulls(n, pa.int64()),
                "score": [0.3] * n,
                "lang": ["zh"] + ["en"] * (n - 1),
                "lang_score": [0.9] * n,
            }
        ),
        folder / "part-0.parquet",
    )


def start(*args) -> subprocess.Popen:
    return subprocess.Popen(
        CLI + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )


def finish(proc: subprocess.Popen):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]


def run_cli(*args):
    assert cli.main([str(a) for a in args]) == 0


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The folder of every kind of shard, written by the stages themselves."""
    root = tmp_path_factory.mktemp("kinds")
    with serve.ImageServer("127.0.0.1") as srv:
        urls = [
            f"{srv.base}/img/p{i}.{'png' if i % 3 == 1 else 'jpg'}?w={160 + 8 * i}&h=120&seed={i}" for i in range(7)
        ]
        for u in urls:
            serve.image_for(u.split(str(srv.port), 1)[-1])
        write_pairs(root / "pairs_in", urls)
        for name, procs, threads in (("dl", 1, 4), ("dl_again", 1, 1)):
            (root / f"{name}.yaml").write_text(
                f"download:\n  processes: {procs}\n  threads: {threads}\n"
                "  samples_per_shard: 4\n  min_image_side: 50\n  image_size: 128\n"
            )
        # three jobs at once (they mostly wait on process start): two downloads and synth-ocr
        jobs = [
            start(
                "download",
                "--input",
                root / "pairs_in",
                "--output",
                root / out,
                "--allow-addresses",
                "127.0.0.1",
                "--config",
                root / f"{cfg}.yaml",
            )
            for out, cfg in (("pairs", "dl"), ("pairs_again", "dl_again"))
        ]
        jobs.append(
            start(
                "synth-ocr",
                "--output",
                root / "ocr",
                "--num",
                4,
                "--shard-size",
                2,
                "--seed",
                3,
                "--lang",
                "en",
                "--workers",
                1,
            )
        )
        data = fixtures.make_all(root / "fx")
        from qwenvl_data.pipelines.tasks import convert_dataset

        for d in ("refcoco", "vqav2", "docvqa", "text"):
            convert_dataset(d, data / d, root / "tasks" / d)
        for j in jobs:
            finish(j)
    # clip-score's writer over the pair shards (scores given; the scoring itself is tests/test_clip_score.py)
    from qwenvl_data.pipelines.clip_stages import write_kept_shard
    from qwenvl_data.shards import iter_tar_samples
    from qwenvl_data.shards.loaders import write_loader_index

    rows = []
    for t in sorted((root / "pairs").glob("*.tar")):
        keys = [k for k, _ in iter_tar_samples(t)][1:]  # the first of each shard "scores low"
        rows.append(
            {
                "shard": t.stem,
                "path": str(t),
                "keys": keys,
                "scores": [0.25] * len(keys),
                "roles": ["default"] * len(keys),
            }
        )
    write_kept_shard(pa.Table.from_pylist(rows), str(root / "clip"), {"default": "tiny"})
    write_loader_index(root / "clip")
    # pair shards whose images are webp (a documented download encode_format) join stage 1 as their own family
    from qwenvl_data.shards import ShardWriter

    with ShardWriter(root / "pairs_webp", 0, "") as w:
        for i in range(3):
            buf = io.BytesIO()
            Image.new("RGB", (24 + i, 20), (40 * i, 90, 200)).save(buf, "WEBP")
            w.add(
                f"9{i:05d}",
                {
                    "webp": buf.getvalue(),
                    "txt": f"a blue box {i}",
                    "json": {
                        "schema": "sample",
                        "uid": f"webp:{i}",
                        "source": "coyo",
                        "caption": f"a blue box {i}",
                        "lang": "en",
                    },
                },
            )
        w.close()
    run_cli("shards", "--stage", 1, "--all", "--input", root / "clip", root / "pairs_webp", "--output", root / "stage1")
    run_cli(
        "shards",
        "--stage",
        2,
        "--all",
        "--input",
        root / "tasks",
        root / "ocr",
        "--output",
        root / "stage2",
        "--shard-size",
        4,
    )
    run_cli(
        "shards", "--stage", 3, "--input", data / "sft" / "finetune.json", root / "tasks", "--output", root / "stage3"
    )
    return root


def test_download_shards_are_byte_deterministic(made):
    """Two downloads of the same pairs with different process/thread counts: the same bytes."""
    a = {p.name: p.read_bytes() for p in sorted((made / "pairs").glob("*")) if p.suffix in (".tar", ".parquet")}
    b = {p.name: p.read_bytes() for p in sorted((made / "pairs_again").glob("*")) if p.suffix in (".tar", ".parquet")}
    assert len(a) == 4 and a == b
    with tarfile.open(made / "pairs" / "000000.tar") as tf:
        infos = tf.getmembers()
    assert [m.name for m in infos] == sorted(m.name for m in infos)
    assert {(m.mtime, m.mode, m.uid, m.gid, m.uname, m.gname) for m in infos} == {(0, 0o644, 0, 0, "", "")}


def families(folder: Path) -> dict[str, list[Path]]:
    """Shards grouped by family: the name without its 6-digit counter."""
    out: dict[str, list[Path]] = {}
    for t in sorted(folder.glob("*.tar")):
        out.setdefault(t.stem.rsplit("-", 1)[0] if "-" in t.stem else "", []).append(t)
    return out


KINDS = {
    "pairs": "pairs",
    "clip": "clip",
    "ocr": "ocr",
    "tasks-refcoco": "tasks/refcoco",
    "tasks-docvqa": "tasks/docvqa",
    "tasks-text": "tasks/text",
    "stage1": "stage1",
    "stage2": "stage2",
    "stage3": "stage3",
}


def truth(tars: list[Path]) -> list[tuple[str, dict]]:
    """(key, {ext: bytes}) of every sample, by Python's tarfile: what each loader must give back."""
    out = []
    for t in tars:
        with tarfile.open(t) as tf:
            for m in tf:
                key, ext = m.name.split(".", 1)
                if not out or out[-1][0] != key:
                    out.append((key, {}))
                out[-1][1][ext] = tf.extractfile(m).read()
    return out


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def same_json(got, want, path="json"):
    """Every written field comes back equal; a loader may add keys (as None) that a sample lacks."""
    if isinstance(want, dict):
        assert isinstance(got, dict), path
        for k, v in want.items():
            same_json(got.get(k), v, f"{path}.{k}")
        assert all(got[k] is None for k in got if k not in want), (path, got)
    elif isinstance(want, list):
        assert isinstance(got, (list, tuple, np.ndarray)) and len(got) == len(want), (path, got, want)
        for i, (g, w) in enumerate(zip(got, want)):
            same_json(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want), (path, got, want)
    else:
        assert got == want, (path, got, want)


def same_value(ext: str, got, want: bytes):
    if hasattr(got, "read"):  # wids hands a member it does not decode (webp) over as a stream
        got = got.read()
    if ext == "json":
        same_json(got if not isinstance(got, (bytes, str)) else json.loads(got), json.loads(want))
    elif ext in ("txt", "text"):
        assert (got.decode() if isinstance(got, bytes) else got) == want.decode()
    elif is_image_ext(ext) and not isinstance(got, bytes):
        arr = np.asarray(got)
        assert arr.shape == pixels(want).shape and np.array_equal(arr, pixels(want)), ext
    else:
        assert got == want, ext


@pytest.fixture(scope="module")
def each_family(made):
    fams = {}
    for kind, sub in KINDS.items():
        for fam, tars in families(made / sub).items():
            fams[f"{kind}:{fam}"] = tars
    assert {k.split(":")[0] for k in fams} == set(KINDS)
    return fams


def test_every_sample_of_a_family_has_the_same_members(each_family):
    for fam, tars in each_family.items():
        sigs = Counter(tuple(sorted(files)) for _, files in truth(tars))
        assert len(sigs) == 1, (fam, sigs)


def test_webdataset_to_tuple_and_decode(each_family):
    import webdataset as wds

    for fam, tars in each_family.items():
        want = truth(tars)
        exts = sorted(want[0][1])
        urls = [str(t) for t in tars]
        raw = list(wds.WebDataset(urls, shardshuffle=False).to_tuple("__key__", *exts))
        decoded = list(wds.WebDataset(urls, shardshuffle=False).decode("pil").to_tuple("__key__", *exts))
        assert [r[0] for r in raw] == [r[0] for r in decoded] == [k for k, _ in want], fam
        for (key, files), r, d in zip(want, raw, decoded):
            for i, ext in enumerate(exts):
                assert r[i + 1] == files[ext], (fam, key, ext)
                same_value(ext, d[i + 1], files[ext])


def test_wids_index(each_family, made):
    """wids as the dataset card tells users to call it: local shards read in place. (By default wids copies
    each shard to /tmp/_wids_cache under its path and keeps reading that copy: a later run whose temporary
    folder has the same path, or shards rewritten in place, would read stale samples.)"""
    import wids

    for sub in KINDS.values():
        folder = made / sub
        ds = wids.ShardListDataset(str(folder / "wids-index.json"), localname=lambda url: url)
        want = truth(sorted(folder.glob("*.tar")))
        assert len(ds) == len(want), sub
        got = sorted((ds[i] for i in range(len(ds))), key=lambda s: s["__key__"])
        for (key, files), sample in zip(sorted(want, key=lambda x: x[0]), got):
            assert sample["__key__"] == key and {k[1:] for k in sample if k.startswith(".")} == set(files)
            for ext, data in files.items():
                same_value(ext, sample["." + ext], data)


def test_wids_in_place_reads_shards_rewritten_at_the_same_path(tmp_path, monkeypatch):
    """The card's `localname=lambda url: url`: a shard rewritten at the same path is read anew (wids' default
    cache would keep serving the first copy), and nothing is copied to wids' cache folder."""
    import wids

    monkeypatch.setenv("WIDS_CACHE", str(tmp_path / "wids_cache"))  # wids' default cache, were it used

    from qwenvl_data.shards import ShardWriter
    from qwenvl_data.shards.loaders import write_loader_index

    out = tmp_path / "shards"
    names = set()
    for run in ("first", "second"):
        with ShardWriter(out, 0, "fam") as w:
            w.add("000000", {"json": {"run": run}})
            w.close()
        write_loader_index(out)
        names |= {p.name for p in out.glob("*.tar")}
        ds = wids.ShardListDataset(str(out / "wids-index.json"), localname=lambda url: url)
        assert len(ds) == 1 and ds[0][".json"]["run"] == run
    assert len(names) == 1  # the same path both times
    assert not (tmp_path / "wids_cache").exists()  # read in place, never copied


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("via", ["data_files", "card"])
def test_hf_datasets(each_family, tmp_path, streaming, via):
    """`load_dataset("webdataset", data_files=...)` as users call it, and `load_dataset(FOLDER, FAMILY)`
    through the dataset card the stages write (README.md: the family's files and features)."""
    from datasets import load_dataset

    for fam, tars in each_family.items():
        want = truth(tars)
        if via == "card":
            ds = load_dataset(
                str(tars[0].parent),
                fam.split(":", 1)[1] or "default",
                split="train",
                streaming=streaming,
                cache_dir=str(tmp_path / "hf"),
            )
        else:
            ds = load_dataset(
                "webdataset",
                data_files={"train": [str(t) for t in tars]},
                split="train",
                streaming=streaming,
                cache_dir=str(tmp_path / "hf"),
            )
        rows = list(ds)
        assert [r["__key__"] for r in rows] == [k for k, _ in want], fam
        for (key, files), row in zip(want, rows):
            assert {k for k in row if not k.startswith("__")} == set(files), (fam, key)
            for ext, data in files.items():
                same_value(ext, row[ext], data)


def test_hf_card_keeps_json_keys_the_first_samples_lack(tmp_path):
    """HF infers a json struct from the first 5 samples and drops keys that appear later (task extras
    vary by task); the card's features, computed from every sample, keep them."""
    from datasets import load_dataset

    from qwenvl_data.shards import ShardWriter
    from qwenvl_data.shards.loaders import write_loader_index

    docs = [
        {"uid": f"u{i}", "n": i, **({"objects": [{"box": [1, 2, 3, 4], "ref": "x"}], "coco_id": "c"} if i >= 6 else {})}
        for i in range(9)
    ]
    with ShardWriter(tmp_path / "d", 0, "fam") as w:
        for i, doc in enumerate(docs):
            w.add(f"{i:06d}", {"jpg": JPEG_BYTES, "json": doc})
        w.close()
    write_loader_index(tmp_path / "d")
    rows = list(load_dataset(str(tmp_path / "d"), "fam", split="train", cache_dir=str(tmp_path / "hf")))
    assert len(rows) == 9
    for row, doc in zip(rows, docs):
        same_json(row["json"], doc)
        assert np.array_equal(np.asarray(row["jpg"]), pixels(JPEG_BYTES))


@pytest.fixture(scope="module")
def ray_session():
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, object_store_memory=200 * 1024 * 1024, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


def test_ray_read_webdataset(each_family, ray_session):
    for fam, tars in each_family.items():
        want = truth(tars)
        rows = ray_session.data.read_webdataset([str(t) for t in tars]).take_all()
        rows.sort(key=lambda r: r["__key__"])
        assert [r["__key__"] for r in rows] == sorted(k for k, _ in want), fam
        for (_, files), row in zip(sorted(want, key=lambda x: x[0]), rows):
            for ext, data in files.items():
                same_value(ext, row[ext], data)


def test_mds_conversion(each_family, tmp_path):
    import webdataset as wds
    from streaming import MDSWriter
    from streaming.base.local import LocalDataset

    for n, (fam, tars) in enumerate(each_family.items()):
        want = truth(tars)
        exts = sorted(want[0][1])
        columns = {"__key__": "str", **{e: "json" if e == "json" else "str" if e == "txt" else "bytes" for e in exts}}
        out = tmp_path / f"mds{n}"
        with MDSWriter(out=str(out), columns=columns) as w:
            for s in wds.WebDataset([str(t) for t in tars], shardshuffle=False):
                w.write(
                    {
                        "__key__": s["__key__"],
                        **{e: json.loads(s[e]) if e == "json" else s[e].decode() if e == "txt" else s[e] for e in exts},
                    }
                )
        ds = LocalDataset(local=str(out))
        assert len(ds) == len(want), fam
        for i, (key, files) in enumerate(want):
            got = ds[i]
            assert got["__key__"] == key
            for ext, data in files.items():
                same_value(ext, got[ext], data)
