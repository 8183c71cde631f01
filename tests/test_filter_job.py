"""The filter end to end: engines agree, every row is accounted for, bad input gives one-line errors."""

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qwenvl_data.pipelines.cli import main
from qwenvl_data.synthetic_pairs import generate

CLI = [sys.executable, "-m", "qwenvl_data.pipelines.cli"]


def write(path, rows=None, table=None, **kw):
    pq.write_table(table if table is not None else pa.Table.from_pylist(rows), path, **kw)
    return str(path)


def run_filter(inp, out, *extra):
    assert main(["filter", "--input", *inp, "--output", str(out), *extra]) == 0
    return run_filter_outputs(out)


def run_filter_outputs(out):
    kept = pq.read_table(out / "pairs").to_pylist() if list((out / "pairs").glob("*.parquet")) else []
    rej = pq.read_table(out / "rejects").to_pylist() if list((out / "rejects").glob("*.parquet")) else []
    return kept, rej, json.loads((out / "funnel.json").read_text())


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    d = tmp_path_factory.mktemp("noisy")
    t = generate(3000, seed=7)
    t = t.append_column("SAMPLE_ID", pa.array([f"s{i}" for i in range(3000)]))
    # c.parquet repeats 150 sample ids: 100 with other URLs (duplicate_uid across URL partitions),
    # 50 with the same URL (duplicate_uid inside one partition)
    again = pa.concat_tables([t.slice(0, 100), t.slice(1700, 50)])
    urls = [f"https://elsewhere.example.com/{i}.jpg" for i in range(100)] + again["URL"].to_pylist()[100:]
    again = again.set_column(again.schema.get_field_index("URL"), "URL", pa.array(urls))
    return [
        write(d / "a.parquet", table=t.slice(0, 1700), row_group_size=500),
        write(d / "b.parquet", table=t.slice(1700), row_group_size=500),
        write(d / "c.parquet", table=again, row_group_size=100),
    ]


@pytest.fixture(scope="module")
def local_out(noisy, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    run_filter(noisy, out, "--source", "laion")
    return out


@pytest.fixture(scope="module")
def local_result(local_out):
    return run_filter_outputs(local_out)


def test_conservation_and_output_schema(local_out, local_result):
    kept, rej, fun = local_result
    assert fun["total"]["in"] == 3150 == len(kept) + len(rej)
    assert len({r["uid"] for r in kept} | {r["uid"] for r in rej}) == 3000  # 150 rows repeat a sample id
    assert len({r["uid"] for r in kept}) == len(kept)  # ... and only one copy is kept
    dropped = fun["total"]["dropped"]
    assert sum(dropped.values()) == len(rej) and fun["total"]["kept"] == len(kept)
    assert 0 < dropped["duplicate_uid"] <= 150
    for reason in (
        "bad_metadata",
        "aspect_ratio",
        "clip_score",
        "emoji",
        "script",
        "placeholder_text",
        "language",
        "duplicate_url",
    ):
        assert dropped[reason] > 0, reason
    assert {r["lang"] for r in kept} == {"en", "zh"}
    assert len({r["url"] for r in kept}) == len(kept)
    assert main(["validate", str(local_out / "pairs"), str(local_out / "rejects")]) == 0


def test_engines_agree(noisy, local_result, tmp_path):
    kept, rej, fun = local_result

    def rows(k, r):
        return (
            sorted((x["uid"], x["url"], x["caption"], x["lang"]) for x in k),
            sorted((x["uid"], x["url"], x["reason"], tuple(x["reasons"])) for x in r),
        )

    expected = rows(kept, rej)
    for engine in ("beam", "ray"):
        k2, r2, f2 = run_filter(noisy, tmp_path / engine, "--source", "laion", "--engine", engine, "--workers", "2")
        assert rows(k2, r2) == expected
        assert f2["sources"] == fun["sources"] and f2["total"] == fun["total"]


def test_duplicate_url_keeps_longest_caption_then_source_order(tmp_path):
    en = "A brown dog running across the sandy beach"
    a = write(
        tmp_path / "laion.parquet",
        [
            {"URL": "https://x.com/1.jpg", "TEXT": en, "WIDTH": 500, "HEIGHT": 400, "similarity": 0.3},
            {
                "URL": "HTTPS://X.COM:443/1.jpg#top",
                "TEXT": en + " at sunset",
                "WIDTH": 500,
                "HEIGHT": 400,
                "similarity": 0.3,
            },
            {"URL": "https://x.com/2.jpg", "TEXT": en, "WIDTH": 500, "HEIGHT": 400, "similarity": 0.3},
        ],
    )
    b = write(
        tmp_path / "coco.parquet",
        [{"id": 7, "coco_url": "https://x.com/2.jpg", "caption": en, "width": 500, "height": 400}],
    )
    cfg = tmp_path / "c.yaml"
    cfg.write_text("paths: {'*laion.parquet': laion, '*coco.parquet': coco}\n")
    kept, rej, fun = run_filter([a, b], tmp_path / "out", "--config", str(cfg))
    assert sorted(r["uid"] for r in kept) == ["coco:7", "laion:laion:1"]
    assert sorted((r["uid"], r["reason"]) for r in rej) == [
        ("laion:laion:0", "duplicate_url"),
        ("laion:laion:2", "duplicate_url"),
    ]
    assert fun["sources"]["coco"]["kept"] == 1 and fun["sources"]["laion"]["dropped"]["duplicate_url"] == 2


def test_source_layouts_and_uids(tmp_path):
    en = "Two children playing football in a green park"
    coyo = write(
        tmp_path / "coyo.parquet",
        [
            {
                "id": 99,
                "url": "https://c.com/a.jpg",
                "text": en,
                "width": 640,
                "height": 480,
                "clip_similarity_vitb32": 0.31,
            }
        ],
    )
    sbu = write(tmp_path / "sbu.parquet", [{"url": "https://s.com/a.jpg", "caption": en}])
    k1, _, _ = run_filter([coyo], tmp_path / "o1", "--source", "coyo")
    k2, _, _ = run_filter([sbu], tmp_path / "o2", "--source", "sbu")
    assert k1[0]["uid"] == "coyo:99" and k1[0]["score"] == pytest.approx(0.31)
    assert k2[0]["uid"] == "sbu:sbu:0" and k2[0]["width"] is None


def cli(*args):
    return subprocess.run(CLI + list(args), capture_output=True, text=True)


def test_corrupt_file_is_one_line_error_or_skipped(tmp_path):
    good = write(
        tmp_path / "good.parquet",
        [
            {
                "URL": "https://x.com/1.jpg",
                "TEXT": "A red car parked by the road",
                "WIDTH": 500,
                "HEIGHT": 400,
                "similarity": 0.3,
            }
        ],
    )
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet at all")
    r = cli("filter", "--input", good, str(bad), "--source", "laion", "--output", str(tmp_path / "o"))
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "bad.parquet" in r.stderr and "Traceback" not in r.stderr
    r = cli(
        "filter", "--input", good, str(bad), "--source", "laion", "--output", str(tmp_path / "o"), "--skip-bad-files"
    )
    assert r.returncode == 0, r.stderr
    fun = json.loads((tmp_path / "o" / "funnel.json").read_text())
    assert fun["bad_files"][0]["path"].endswith("bad.parquet") and fun["total"]["kept"] == 1


def test_missing_column_names_column_file_and_layout(tmp_path):
    f = write(tmp_path / "x.parquet", [{"URL": "https://x.com/1.jpg", "TEXT": "hello there world"}])
    r = cli("filter", "--input", f, "--source", "datacomp", "--output", str(tmp_path / "o"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "x.parquet" in r.stderr and "'url'" in r.stderr and "datacomp" in r.stderr


def test_usage_errors_exit_2(tmp_path):
    r = cli("filter", "--input", str(tmp_path / "nope.parquet"), "--output", str(tmp_path / "o"))
    assert r.returncode == 2 and "nope.parquet" in r.stderr and "Traceback" not in r.stderr
    f = write(tmp_path / "x.parquet", [{"url": "https://x.com/1.jpg", "caption": "hello there world"}])
    r = cli("filter", "--input", f, "--source", "martian", "--output", str(tmp_path / "o"))
    assert r.returncode == 2 and "martian" in r.stderr
    r = cli("filter", "--input", f, "--output", str(tmp_path / "o"))
    assert r.returncode == 2 and "--source" in r.stderr
    assert cli("nonsense").returncode == 2


def test_empty_input_gives_empty_outputs_and_zero_funnel(tmp_path):
    f = write(
        tmp_path / "e.parquet", table=pa.table({"URL": pa.array([], pa.string()), "TEXT": pa.array([], pa.string())})
    )
    kept, rej, fun = run_filter([f], tmp_path / "o", "--source", "laion")
    assert kept == [] and rej == [] and fun["total"]["in"] == 0 and fun["total"]["kept"] == 0


def test_validate_names_first_bad_row_and_field(tmp_path):
    ok = {
        "uid": "laion:1",
        "source": "laion",
        "url": "https://x.com/1.jpg",
        "caption": "a cat",
        "caption_raw": "a cat",
        "width": 10,
        "height": 10,
        "score": None,
        "lang": "en",
        "lang_score": 0.9,
    }
    f = write(tmp_path / "p.parquet", [ok, dict(ok, uid="laion:2", lang="de")])
    r = cli("validate", f)
    assert r.returncode == 1 and "row 1" in r.stderr and "laion:2" in r.stderr and "lang" in r.stderr
    write(tmp_path / "q.parquet", [ok])
    assert cli("validate", str(tmp_path / "q.parquet")).returncode == 0


def test_fsspec_urls_for_inputs_and_output(tmp_path):
    en = "A red bicycle leaning against a brick wall"
    f = write(
        tmp_path / "in.parquet",
        [
            {"URL": f"https://x.com/{i}.jpg", "TEXT": en, "WIDTH": 500, "HEIGHT": 400, "similarity": 0.3}
            for i in range(5)
        ],
    )
    assert main(["filter", "--input", f"file://{f}", "--source", "laion", "--output", f"file://{tmp_path}/o"]) == 0
    assert len(pq.read_table(tmp_path / "o" / "pairs")) == 5
    assert json.loads((tmp_path / "o" / "funnel.json").read_text())["total"]["kept"] == 5
    assert not (tmp_path / "o" / "_work").exists()
