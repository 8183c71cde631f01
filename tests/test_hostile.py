"""Every command on hostile input ends with one line and exit 1 (data) or 2 (usage), never a traceback.

Each case runs the real entry point (`qwenvl-data <cmd>`, `qwenvl-train`, `qwenvl-chat`) in a subprocess
on inputs an attacker or a careless user hands it (issue 14, finding 9 and the rest): config values of
the wrong type, strings for lists, misspelled keys, negative numbers on the command line, a read-only
output, input inside output, a folder another run holds, deeply nested JSON, JSON that is a list, 0-byte
and text files named .tar, decompression bombs, changed settings on --resume. A case fails on any
'Traceback', on the last-resort "unexpected ..." line (an unchecked input), on a multi-line error, and
when the message does not say what is wrong.
"""

import io
import json
import socket
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from qwenvl_data import outdir
from qwenvl_data.model.fixtures import SAMPLE_TEXT, train_tokenizer, write_stage_shards

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
QD = [PY, "-m", "qwenvl_data.pipelines.cli"]
TRAIN = [PY, "-m", "qwenvl_data.model.train"]
CHAT = [PY, "-m", "qwenvl_data.model.chat"]
NESTED = ("[" * 100_000 + "]" * 100_000).encode()  # deeper than any JSON parser's recursion limit


def bomb_png(width=50_000, height=50_000) -> bytes:
    """A valid PNG header claiming 2.5 gigapixels, with a few bytes of data: refused before decoding."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def jpeg(w=64, h=48) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def tar_of(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def pairs(path: Path, **overrides) -> Path:
    n = 3
    cols = {
        "uid": [f"laion:{i}" for i in range(n)],
        "source": ["laion"] * n,
        "url": [f"http://127.0.0.1:9/{i}.jpg" for i in range(n)],
        "caption": ["a red box on a table"] * n,
        "caption_raw": ["a red box on a table"] * n,
        "lang": ["en"] * n,
    }
    cols.update(overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({k: v for k, v in cols.items() if v is not None}), path)
    return path


def laion(path: Path, ids) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(ids)
    pq.write_table(
        pa.table(
            {
                "URL": [f"http://e.com/{i}.jpg" for i in range(n)],
                "TEXT": ["a photo of a small red house"] * n,
                "WIDTH": [640] * n,
                "HEIGHT": [480] * n,
                "similarity": [0.35] * n,
                "SAMPLE_ID": ids,
            }
        ),
        path,
    )
    return path


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    """Shared inputs: a tokenizer, a tiny model config, stage-1 shards and a 1-step checkpoint."""
    root = tmp_path_factory.mktemp("hostile")
    train_tokenizer(SAMPLE_TEXT * 20, root / "tok", 400)
    from qwenvl_data.model.config import load_config

    cfg = load_config("tiny").to_dict()
    cfg["adapter"].update(num_queries=64, query_grid=8)
    (root / "tiny16.json").write_text(json.dumps(cfg))
    write_stage_shards(root / "stage1", 1, 8, shards=1)
    r = subprocess.run(
        TRAIN
        + [
            "--stage",
            "1",
            "--data",
            str(root / "stage1"),
            "--out",
            str(root / "ckpt"),
            "--tokenizer",
            str(root / "tok"),
            "--config",
            str(root / "tiny16.json"),
            "--steps",
            "1",
            "--batch-size",
            "2",
            "--workers",
            "0",
            "--warmup",
            "1",
            "--image-size",
            "56",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return root


def yaml(tmp, text) -> str:
    p = tmp / "user.yaml"
    p.write_text(text)
    return str(p)


def _lock_held_by_live_process(tmp):
    out = tmp / "held"
    out.mkdir()
    proc = subprocess.Popen(["sleep", "600"])
    LIVE.append(proc)
    (out / outdir.LOCK).write_text(
        json.dumps(
            {
                "pid": proc.pid,
                "host": socket.gethostname(),
                "run_id": "other",
                "start": outdir._start_time(proc.pid),
                "stage": "filter",
            }
        )
    )
    return out


def _in_progress(tmp):
    out = tmp / "half"
    pairs(out / "pairs" / "p.parquet")
    (out / outdir.MARKER).write_text(json.dumps({"run_id": "dead", "stage": "filter"}))
    return out


def _task_shard(tmp, doc: bytes, name="t-000000.tar"):
    return tar_of(tmp / "tasks" / name, {"k0.jpg": jpeg(), "k0.json": doc})


def filter_with_config(t, config_text: str, rows=(1, 2)) -> list:
    """argv: `qwenvl-data filter` on a small good LAION file with this YAML as --config."""
    return QD + [
        "filter",
        "--input",
        str(laion(t / "in/a.parquet", list(rows))),
        "--output",
        str(t / "o"),
        "--source",
        "laion",
        "--config",
        yaml(t, config_text),
    ]


# (id, argv builder(tmp, w) -> list, expected exit code (a set when either is right), words the error names)
CASES = [
    (
        "filter-config-wrong-type",
        lambda t, w: filter_with_config(t, "filter: {min_units: '3'}"),
        2,
        "min_units",
    ),
    (
        "filter-languages-string",
        lambda t, w: filter_with_config(t, "filter: {languages: en}"),
        2,
        "languages",
    ),
    (
        "filter-misspelled-key",
        lambda t, w: filter_with_config(t, "filter: {min_unit: 3}", rows=[1]),
        2,
        "min_units",
    ),
    (
        "filter-negative-threshold",
        lambda t, w: filter_with_config(t, "filter: {min_image_side: -5}", rows=[1]),
        2,
        "min_image_side",
    ),
    (
        "filter-workers-negative",
        lambda t, w: QD + ["filter", "--input", "x.parquet", "--output", str(t / "o"), "--workers", "-1"],
        2,
        "--workers",
    ),
    (
        "filter-input-inside-output",
        lambda t, w: QD
        + [
            "filter",
            "--input",
            str(laion(t / "out/pairs/a.parquet", [1])),
            "--output",
            str(t / "out"),
            "--source",
            "laion",
        ],
        2,
        "inside the output folder",
    ),
    (
        "filter-unwritable-output",
        lambda t, w: QD
        + [
            "filter",
            "--input",
            str(laion(t / "in/a.parquet", [1])),
            "--output",
            "/sys/qwenvl-hostile/out",
            "--source",
            "laion",
        ],
        2,
        "output folder",
    ),
    (
        "filter-folder-held",
        lambda t, w: QD
        + [
            "filter",
            "--input",
            str(laion(t / "in/a.parquet", [1])),
            "--output",
            str(_lock_held_by_live_process(t)),
            "--source",
            "laion",
        ],
        2,
        "in use by run other",
    ),
    (
        "filter-list-id-column",
        lambda t, w: QD
        + [
            "filter",
            "--input",
            str(laion(t / "in/a.parquet", [[1], [2, 3]])),
            "--output",
            str(t / "o"),
            "--source",
            "laion",
        ],
        {0, 1},
        "",
    ),
    (
        "download-config-wrong-type",
        lambda t, w: QD
        + [
            "download",
            "--input",
            str(pairs(t / "p/a.parquet").parent),
            "--output",
            str(t / "o"),
            "--config",
            yaml(t, "download: {timeout: fast}"),
        ],
        2,
        "download.timeout",
    ),
    (
        "download-missing-column",
        lambda t, w: QD
        + ["download", "--input", str(pairs(t / "p/a.parquet", url=None).parent), "--output", str(t / "o")],
        1,
        "url",
    ),
    (
        "download-list-uid-column",
        lambda t, w: QD
        + ["download", "--input", str(pairs(t / "p/a.parquet", uid=[[1], [2], [3]]).parent), "--output", str(t / "o")],
        1,
        "uid (list<element: int64>) must be strings",
    ),
    (
        "download-input-unfinished",
        lambda t, w: QD + ["download", "--input", str(_in_progress(t) / "pairs"), "--output", str(t / "o")],
        1,
        "unfinished output",
    ),
    (
        "download-processes-zero",
        lambda t, w: QD + ["download", "--input", "p", "--output", "o", "--processes", "0"],
        2,
        "--processes",
    ),
    (
        "download-input-is-output",
        lambda t, w: QD + ["download", "--input", str(pairs(t / "p/a.parquet").parent), "--output", str(t / "p")],
        2,
        "output folder",
    ),
    (
        "clip-score-config-wrong-type",
        lambda t, w: QD
        + [
            "clip-score",
            "--input",
            str(t),
            "--output",
            str(t / "o"),
            "--config",
            yaml(t, "clip_score: {batch_size: many}"),
        ],
        2,
        "batch_size",
    ),
    (
        "clip-score-checkpoint-not-weights",
        lambda t, w: QD
        + ["clip-score", "--input", str(t), "--output", str(t / "o"), "--checkpoint", str(_text_file(t / "w.pt"))],
        2,
        "weights file",
    ),
    ("report-in-progress", lambda t, w: QD + ["report", str(_in_progress(t))], 1, "unfinished output"),
    (
        "report-summary-wrong-type",
        lambda t, w: QD
        + ["report", str(_write(t / "r/download.json", b'{"stage": "download", "in": "many", "samples": 2}').parent)],
        1,
        "'in' must be",
    ),
    (
        "synth-ocr-config-range",
        lambda t, w: QD
        + ["synth-ocr", "--output", str(t / "o"), "--num", "2", "--config", yaml(t, "synth_ocr: {aspect: 0.5}")],
        2,
        "aspect",
    ),
    (
        "synth-ocr-workers-negative",
        lambda t, w: QD + ["synth-ocr", "--output", str(t / "o"), "--workers", "-1"],
        2,
        "--workers",
    ),
    ("preview-json-list", lambda t, w: QD + ["preview", str(_task_shard(t, b"[1, 2]"))], 1, "not an object"),
    ("preview-json-nested", lambda t, w: QD + ["preview", str(_task_shard(t, NESTED))], 1, "not valid JSON"),
    (
        "preview-bad-quads",
        lambda t, w: QD + ["preview", str(_task_shard(t, b'{"lines": [{"quad": "12px"}]}'))],
        1,
        "quad",
    ),
    (
        "preview-bomb",
        lambda t, w: QD + ["preview", str(tar_of(t / "b.tar", {"k.png": bomb_png(), "k.json": b"{}"}))],
        1,
        "too_many_pixels",
    ),
    ("preview-text-named-tar", lambda t, w: QD + ["preview", str(_text_file(t / "x.tar"))], 1, "x.tar"),
    (
        "tasks-config-wrong-type",
        lambda t, w: QD
        + [
            "tasks",
            "--dataset",
            "refcoco",
            "--input",
            str(t),
            "--output",
            str(t / "o"),
            "--config",
            yaml(t, "tasks: {shard_size: big}"),
        ],
        2,
        "shard_size",
    ),
    (
        "tasks-coordinate-12px",
        lambda t, w: QD
        + [
            "tasks",
            "--dataset",
            "refcoco",
            "--input",
            str(_refcoco(t, bbox=["12px", 10, 50, 40])),
            "--output",
            str(t / "o"),
        ],
        {0, 1},
        "",
    ),
    (
        "tasks-width-zero",
        lambda t, w: QD
        + ["tasks", "--dataset", "refcoco", "--input", str(_refcoco(t, width=0)), "--output", str(t / "o")],
        {0, 1},
        "",
    ),
    (
        "tasks-file-name-outside",
        lambda t, w: QD
        + [
            "tasks",
            "--dataset",
            "refcoco",
            "--input",
            str(_refcoco(t, file_name=str(_write(t / "secret.jpg", jpeg())))),
            "--output",
            str(t / "o"),
        ],
        {0, 1},
        "",
    ),
    (
        "shards-json-nested",
        lambda t, w: QD
        + ["shards", "--stage", "2", "--input", str(_task_shard(t, NESTED).parent), "--output", str(t / "o")],
        {0, 1},
        "",
    ),
    (
        "shards-json-list",
        lambda t, w: QD
        + ["shards", "--stage", "2", "--input", str(_task_shard(t, b"[]").parent), "--output", str(t / "o")],
        {0, 1},
        "",
    ),
    (
        "shards-config-wrong-type",
        lambda t, w: QD
        + [
            "shards",
            "--stage",
            "1",
            "--input",
            str(t),
            "--output",
            str(t / "o"),
            "--config",
            yaml(t, "shards: {seed: zero}"),
        ],
        2,
        "shards.seed",
    ),
    ("validate-json-nested", lambda t, w: QD + ["validate", str(_task_shard(t, NESTED))], 1, "k0"),
    ("validate-zero-byte-tar", lambda t, w: QD + ["validate", str(_empty(t / "z.tar"))], 1, "z.tar"),
    ("validate-in-progress", lambda t, w: QD + ["validate", str(_in_progress(t) / "pairs")], 1, "unfinished output"),
    (
        "export-json-nested",
        lambda t, w: QD
        + [
            "export",
            "--input",
            str(tar_of(t / "s/stage3-000000.tar", {"k.img0.jpg": jpeg(), "k.json": NESTED}).parent),
            "--output",
            str(t / "o"),
        ],
        0,
        "",
    ),
    (
        "export-input-is-output",
        lambda t, w: QD + ["export", "--input", str(w / "stage1"), "--output", str(w)],
        2,
        "output folder",
    ),
    (
        "decontaminate-config-range",
        lambda t, w: QD
        + [
            "decontaminate",
            "--input",
            str(w / "stage1"),
            "--output",
            str(t / "o"),
            "--eval-root",
            str(t),
            "--config",
            yaml(t, "decontaminate: {hash: {max_distance: 65}}"),
        ],
        2,
        "max_distance",
    ),
    (
        "prove-steps-negative",
        lambda t, w: QD + ["prove", "--output", str(t / "o"), "--stage1-steps", "-1"],
        2,
        "--stage1-steps",
    ),
    ("gen-pairs-negative", lambda t, w: QD + ["gen-pairs", "--output", str(t / "o"), "--rows", "-1"], 2, "--rows"),
    (
        "train-workers-negative",
        lambda t, w: TRAIN + ["--stage", "1", "--data", str(w / "stage1"), "--out", str(t / "o"), "--workers", "-1"],
        2,
        "--workers",
    ),
    (
        "train-zero-byte-tar",
        lambda t, w: _train(t, w, _empty(t / "d/stage1-000000.tar").parent),
        1,
        "stage1-000000.tar",
    ),
    (
        "train-text-named-tar",
        lambda t, w: _train(t, w, _text_file(t / "d/stage1-000000.tar").parent),
        1,
        "stage1-000000.tar",
    ),
    (
        "train-json-nested",
        lambda t, w: _train(t, w, tar_of(t / "d/stage1-000000.tar", {"k.img0.jpg": jpeg(), "k.json": NESTED}).parent),
        {0, 1, 2},
        "bad_json",
    ),
    ("train-resume-image-size", lambda t, w: _resume(t, w, "--image-size", "112"), 2, "image"),
    ("train-resume-stage", lambda t, w: _resume(t, w, "--stage", "2"), 2, "stage"),
    (
        "chat-bomb",
        lambda t, w: CHAT
        + ["--checkpoint", str(w / "ckpt"), "--prompt", "hi", "--image", str(_write(t / "bomb.png", bomb_png()))],
        1,
        "too_many_pixels",
    ),
    (
        "chat-text-image",
        lambda t, w: CHAT
        + ["--checkpoint", str(w / "ckpt"), "--prompt", "hi", "--image", str(_text_file(t / "a.jpg"))],
        {1, 2},
        "a.jpg",
    ),
    (
        "chat-tokens-negative",
        lambda t, w: CHAT + ["--checkpoint", "c", "--prompt", "hi", "--image", "a.jpg", "--max-new-tokens", "-1"],
        2,
        "--max-new-tokens",
    ),
]


COUNTED = {
    "tasks-coordinate-12px": "invalid_box",
    "tasks-width-zero": "bad_image_size",
    "tasks-file-name-outside": "unsafe_path",
    "export-json-nested": "'bad_json': 1",
}


def _refcoco(t: Path, **changes) -> Path:
    """The RefCOCO fixture of scripts/make_task_fixtures.py with the first image/annotation altered."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fixtures", ROOT / "scripts" / "make_task_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.refcoco(t / "refcoco")
    inst = json.loads((t / "refcoco" / "instances.json").read_text())
    for k, v in changes.items():
        (inst["annotations"][0] if k == "bbox" else inst["images"][0])[k] = v
    (t / "refcoco" / "instances.json").write_text(json.dumps(inst))
    return t / "refcoco"


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _empty(path: Path) -> Path:
    return _write(path, b"")


def _text_file(path: Path) -> Path:
    return _write(path, b"this is not a tar file, just some text\n" * 20)


def _train(t, w, data):
    return TRAIN + [
        "--stage",
        "1",
        "--data",
        str(data),
        "--out",
        str(t / "o"),
        "--tokenizer",
        str(w / "tok"),
        "--config",
        str(w / "tiny16.json"),
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--image-size",
        "56",
    ]


def _resume(t, w, flag, value):
    import shutil

    shutil.copytree(w / "ckpt", t / "ckpt")
    argv = [
        "--stage",
        "1",
        "--data",
        str(w / "stage1"),
        "--out",
        str(t / "ckpt"),
        "--resume",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--image-size",
        "56",
    ]
    argv[argv.index(flag) + 1] = value
    return TRAIN + argv


# One interpreter runs every case (each a real entry point's main(argv), stdout and stderr captured at the
# file-descriptor level, so loader workers and child processes are captured too): imports are paid once.
DRIVER = r"""
import importlib, json, os, sys, tempfile, traceback
cases, results = json.load(open(sys.argv[1])), {}
entries = {"qd": "qwenvl_data.pipelines.cli", "train": "qwenvl_data.model.train", "chat": "qwenvl_data.model.chat"}
for name, entry, argv, tmp in cases:
    tempfile.tempdir = tmp  # last-resort logs land in the case's folder
    paths = [os.path.join(tmp, "_stdout"), os.path.join(tmp, "_stderr")]
    fds = [os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) for p in paths]
    sys.stdout.flush(); sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(fds[0], 1); os.dup2(fds[1], 2)
    try:
        rc = importlib.import_module(entries[entry]).main(argv)
    except SystemExit as e:  # argparse
        rc = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
        rc = -1
    sys.stdout.flush(); sys.stderr.flush()
    os.dup2(saved[0], 1); os.dup2(saved[1], 2)
    for fd in fds + saved:
        os.close(fd)
    results[name] = {"rc": rc, "out": open(paths[0]).read(), "err": open(paths[1]).read()}
json.dump(results, open(sys.argv[2], "w"))
"""
ENTRY = {id(QD): "qd", id(TRAIN): "train", id(CHAT): "chat"}
LIVE: list = []  # processes a case started (a lock holder), ended after the run


@pytest.fixture(scope="module")
def results(w, tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    cases = []
    for name, build, _, _ in CASES:
        tmp = root / name
        tmp.mkdir()
        argv = build(tmp, w)
        prefix = next(p for p in (QD, TRAIN, CHAT) if argv[: len(p)] == p)
        cases.append([name, ENTRY[id(prefix)], [str(a) for a in argv[len(prefix) :]], str(tmp)])
    (root / "cases.json").write_text(json.dumps(cases))
    try:
        r = subprocess.run(
            [PY, "-c", DRIVER, str(root / "cases.json"), str(root / "results.json")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=900,
        )
    finally:
        for proc in LIVE:
            proc.kill()
            proc.wait()
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return json.loads((root / "results.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_ends_in_one_line(case, results, tmp_path_factory):
    name, _, codes, words = case
    r = results[name]
    out = r["out"] + r["err"]
    codes = codes if isinstance(codes, set) else {codes}
    assert "Traceback" not in out, out[-3000:]
    assert "unexpected" not in r["err"], r["err"][-2000:]  # the last-resort handler: an unchecked input
    assert r["rc"] in codes, (r["rc"], out[-2000:])
    if name in COUNTED:  # accepted runs: the hostile record is rejected with its reason and counted
        assert COUNTED[name] in r["out"], r["out"][-1000:]
    if r["rc"]:
        last = r["err"].strip().splitlines()[-1]
        assert ": error: " in last and words in last, last
        assert _only_warnings(r["err"]), r["err"][-2000:]


def test_input_inside_output_left_the_input_alone(results, tmp_path_factory):
    base = Path(tmp_path_factory.getbasetemp())
    held = list(base.glob("cases*/filter-input-inside-output/out/pairs/a.parquet"))
    assert held and results["filter-input-inside-output"]["rc"] == 2


def _only_warnings(stderr: str) -> bool:
    """One error line (argparse's usage block or progress lines of other tools may precede it)."""
    lines = stderr.strip().splitlines()
    return sum(": error: " in ln for ln in lines) == 1


def test_last_resort_is_one_line_naming_a_log(monkeypatch, tmp_path, capsys):
    """An exception no check caught: one line, exit 1, and the traceback kept in a log file, not printed."""
    import tempfile

    from qwenvl_data.pipelines import cli, validate

    def boom(args):
        raise RuntimeError("a bug\nsecond line")

    monkeypatch.setattr(validate, "run", boom)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert cli.main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qwenvl-data validate: error: unexpected RuntimeError: a bug (")
    log = Path(err[0].rsplit("traceback in ", 1)[1].rstrip(")"))
    assert log.parent == tmp_path and "Traceback" in log.read_text() and "boom" in log.read_text()
