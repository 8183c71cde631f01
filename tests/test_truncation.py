"""A shard cut short never passes: the shard reader (qwenvl_data/shards/reader.py) refuses a tar cut at a
member boundary, inside a header or inside data, and one holding fewer samples than its stats sidecar,
naming the file and the last sample; `validate`, `shards`, `clip-score` and `qwenvl-train` stop with that
one line or, with --skip-bad-files, leave the file out and say so. Also: members a json names must exist."""

import json
from pathlib import Path

from test_shards import JPEG, cli, shards, write_task_shard

from qwenvl_data.shards import ShardWriter


def _cut(src: Path, dst: Path, at: int) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes()[:at])
    for ext in (".json", ".parquet"):  # the sidecars travel with the shard, as a copy or sync would
        dst.with_suffix(ext).write_bytes(src.with_suffix(ext).read_bytes())
    return dst


def _truncated_copies(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A 12-sample task shard and copies cut at a member boundary, inside a header, inside data, and
    one re-closed with tar's end blocks after 8 samples (a valid tar that only the sidecar count catches)."""
    import tarfile

    write_task_shard(tmp_path / "ok", "caption", 12)
    src = tmp_path / "ok" / "caption-000000.tar"
    with tarfile.open(src) as tf:
        infos = tf.getmembers()
    ninth = infos[16].offset  # the header of sample 8's first member
    cuts = {
        "boundary": _cut(src, tmp_path / "boundary" / src.name, ninth),
        "header": _cut(src, tmp_path / "header" / src.name, ninth + 200),
        "data": _cut(src, tmp_path / "data" / src.name, infos[16].offset_data + 5),
    }
    short = _cut(src, tmp_path / "short" / src.name, ninth)
    short.write_bytes(short.read_bytes() + b"\0" * 1024)
    cuts["short"] = short
    return src, cuts


def test_truncated_tars_never_pass(tmp_path):
    src, cuts = _truncated_copies(tmp_path)
    assert cli("validate", src).returncode == 0
    for how, path in cuts.items():
        r = cli("validate", path)
        assert r.returncode == 1 and "Traceback" not in r.stderr, (how, r.stderr)
        line = r.stderr.strip().splitlines()[-1]
        assert str(path) in line and "'000007'" in line, (how, line)  # the file and the last sample read
        r = cli("shards", "--stage", 2, "--all", "--input", path.parent, "--output", tmp_path / f"o-{how}")
        assert r.returncode == 1 and str(path) in r.stderr and "Traceback" not in r.stderr, (how, r.stderr)
    # --skip-bad-files: the good input is used, the bad ones are listed in the index and named on stdout
    r = shards(
        "--stage",
        2,
        "--all",
        "--skip-bad-files",
        "--input",
        src.parent,
        cuts["boundary"].parent,
        cuts["short"].parent,
        "--output",
        tmp_path / "o",
    )
    index = json.loads((tmp_path / "o" / "index.json").read_text())
    assert (
        index["totals"]["samples"] == 12
        and [b["path"] for b in index["bad_files"]] == [str(cuts["boundary"]), str(cuts["short"])]
        and r.stdout.count("skipped bad file") == 2
    )
    r = cli("validate", "--skip-bad-files", *cuts.values(), src)
    assert r.returncode == 1 and r.stdout.count("bad: ") == 4 and "4 of 5 files are bad" in r.stderr
    pair = _cut(cuts["short"], tmp_path / "pairs" / "000000.tar", cuts["short"].stat().st_size)
    from qwenvl_data import clip

    ckpt = clip.save_random_checkpoint(clip.TINY, tmp_path / "tiny.pt", seed=0)
    r = cli(
        "clip-score", "--input", pair.parent, "--output", tmp_path / "clip", "--model", clip.TINY, "--checkpoint", ckpt
    )  # stops on the input before any Ray work
    assert r.returncode == 1 and f"{pair}: holds 8 samples, its stats sidecar says 12" in r.stderr


def test_validate_finds_a_member_the_json_names(tmp_path):
    obj = {
        "schema": "train",
        "uid": "u0",
        "stage": 2,
        "task": "caption",
        "lang": "en",
        "source": "s",
        "images": ["img0.jpg", "img1.png"],
        "segments": [{"text": "<img>img0.jpg</img><img>img1.png</img>x", "loss": False}, {"text": " y", "loss": True}],
    }
    with ShardWriter(tmp_path, 0, "stage2-x") as w:
        w.add("000000000", {"img0.jpg": JPEG, "json": obj})
        w.close()
    r = cli("validate", tmp_path)
    assert r.returncode == 1 and "sample '000000000': member 'img1.png' named by its json is missing" in r.stderr


def test_train_stops_or_skips_on_a_bad_shard(tmp_path, capsys):
    from qwenvl_data.model.config import load_config
    from qwenvl_data.model.fixtures import SAMPLE_TEXT, train_tokenizer, write_stage_shards
    from qwenvl_data.model.train import main as train_main

    tok = train_tokenizer(SAMPLE_TEXT * 20, tmp_path / "tok", 400)
    cfg = load_config("tiny").to_dict()
    cfg["adapter"].update(num_queries=16, query_grid=4)
    (tmp_path / "tiny.json").write_text(json.dumps(cfg))
    data = write_stage_shards(tmp_path / "d", 1, 8, shards=2)
    good = sorted(data.glob("*.tar"))[0]
    _cut(good, data / "stage1-bad-000002.tar", good.stat().st_size // 2)  # a truncated copy
    (data / "stage1-bad-000003.tar").write_bytes(b"")  # 0 bytes
    (data / "stage1-bad-000004.tar").write_text("not a tar\n" * 100)  # text
    args = [
        "--stage",
        "1",
        "--data",
        data,
        "--tokenizer",
        tok,
        "--config",
        tmp_path / "tiny.json",
        "--steps",
        1,
        "--batch-size",
        2,
        "--workers",
        0,
        "--image-size",
        56,
    ]
    assert train_main([str(a) for a in args + ["--out", tmp_path / "o1"]]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stage1-bad-000002.tar: truncated tar shard" in err[0] and "--skip-bad-files" in err[0]
    assert train_main([str(a) for a in args + ["--out", tmp_path / "o2", "--skip-bad-files"]]) == 0
    err = capsys.readouterr().err
    assert all(f"stage1-bad-00000{i}.tar" in err for i in (2, 3, 4)) and "Traceback" not in err
