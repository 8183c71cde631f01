"""The filter on hostile or unusual input files and configs (issues 9 and 14): encodings and column
layouts, sizes that do not fit an integer, duplicate uids, colliding file names, corrupt data pages,
mistyped settings. Each is handled, or a one-line error naming what is wrong; never a traceback."""

import json
import math
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qwenvl_data.errors import UsageError
from qwenvl_data.pipelines.cli import main
from qwenvl_data.pipelines.filter import load_config, unique_stems
from qwenvl_data.rules import PairRules

CLI = [sys.executable, "-m", "qwenvl_data.pipelines.cli"]
EN = "A red bicycle leaning against a brick wall"


def cli(*args):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True)


def outputs(out):
    kept = pq.read_table(out / "pairs").to_pylist() if list((out / "pairs").glob("*.parquet")) else []
    rej = pq.read_table(out / "rejects").to_pylist() if list((out / "rejects").glob("*.parquet")) else []
    return kept, rej, json.loads((out / "funnel.json").read_text())


def run(inputs, out, *extra):
    assert main(["filter", "--input", *map(str, inputs), "--output", str(out), "--source", "laion", *extra]) == 0
    return outputs(out)


def laion_table(n, **cols):
    base = {
        "URL": [f"https://x.com/{i}.jpg" for i in range(n)],
        "TEXT": [EN] * n,
        "WIDTH": [640.0] * n,
        "HEIGHT": [480.0] * n,
        "similarity": [0.3] * n,
    }
    base.update(cols)
    return pa.table(base)


def test_dictionary_view_and_large_string_columns_read_like_plain_ones(tmp_path):
    t = laion_table(6)
    plain = tmp_path / "plain.parquet"
    pq.write_table(t, plain)
    odd = t.set_column(0, "URL", t["URL"].combine_chunks().dictionary_encode()).set_column(
        1, "TEXT", t["TEXT"].cast(pa.string_view())
    )
    pq.write_table(odd, tmp_path / "odd.parquet")
    pq.write_table(t.set_column(1, "TEXT", t["TEXT"].cast(pa.large_string())), tmp_path / "large.parquet")
    k0, _, _ = run([plain], tmp_path / "o0")
    for name in ("odd", "large"):
        k, rej, fun = run([tmp_path / f"{name}.parquet"], tmp_path / f"o-{name}")
        assert len(k) == len(k0) == 6 and rej == [] and fun["total"]["kept"] == 6


def test_invalid_utf8_in_a_string_column_is_bad_metadata_not_a_crash(tmp_path):
    text = pa.array([EN.encode(), b"broken \xff\xfe bytes in a caption", EN.encode()], pa.binary()).view(pa.string())
    url = pa.array([b"https://x.com/1.jpg", b"https://x.com/2.jpg", b"https://x.com/\xc3.jpg"]).view(pa.string())
    f = tmp_path / "bad_utf8.parquet"
    pq.write_table(pa.table({"URL": url, "TEXT": text}), f)
    kept, rej, fun = run([f], tmp_path / "o")
    assert [r["uid"] for r in kept] == ["laion:bad_utf8:0"]
    assert sorted((r["uid"], r["reason"]) for r in rej) == [
        ("laion:bad_utf8:1", "bad_metadata"),
        ("laion:bad_utf8:2", "bad_metadata"),
    ]


@pytest.mark.parametrize(
    "column,values,expect",
    [
        ("URL", pa.array([1, 2], pa.int64()), "'URL'"),
        ("SAMPLE_ID", pa.array([[1], [2]], pa.list_(pa.int64())), "'SAMPLE_ID'"),
    ],
)
def test_a_column_of_the_wrong_type_is_a_one_line_error_naming_file_and_column(tmp_path, column, values, expect):
    t = laion_table(2).append_column("SAMPLE_ID", pa.array(["a", "b"])) if column == "URL" else laion_table(2)
    t = (
        t.set_column(t.column_names.index(column), column, values)
        if column in t.column_names
        else t.append_column(column, values)
    )
    f = tmp_path / "typed.parquet"
    pq.write_table(t, f)
    r = cli("filter", "--input", f, "--source", "laion", "--output", tmp_path / "o")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "typed.parquet" in r.stderr and expect in r.stderr


def test_sizes_that_do_not_fit_an_integer_are_bad_metadata(tmp_path):
    w = [1e30, math.inf, -math.inf, math.nan, 640.5, 2.0**63, 640.0, None]
    t = laion_table(len(w), WIDTH=pa.array(w, pa.float64()))
    t = t.set_column(2, "WIDTH", pa.array(w, pa.float64()))
    f = tmp_path / "sizes.parquet"
    pq.write_table(t, f)
    kept, rej, fun = run([f], tmp_path / "o")
    assert sorted(r["uid"] for r in rej if r["reason"] == "bad_metadata") == [f"laion:sizes:{i}" for i in range(6)]
    assert sorted((r["uid"], r["width"]) for r in kept) == [("laion:sizes:6", 640), ("laion:sizes:7", None)]
    assert fun["total"]["in"] == len(w) == fun["total"]["kept"] + sum(fun["total"]["dropped"].values())
    s = tmp_path / "sizes_text.parquet"  # sizes published as text: "1e30" parses, then fails the range check
    pq.write_table(laion_table(3, WIDTH=["1e30", "inf", "640"], HEIGHT=["480", "480", "480"]), s)
    kept, rej, _ = run([s], tmp_path / "o2")
    assert [r["uid"] for r in kept] == ["laion:sizes_text:2"] and {r["reason"] for r in rej} == {"bad_metadata"}


def test_duplicate_uids_across_files_keep_the_earliest_copy(tmp_path):
    n = 24  # same SAMPLE_IDs, different URLs: some copies meet in one URL partition, some do not
    a = laion_table(n).append_column("SAMPLE_ID", pa.array([f"id{i}" for i in range(n)]))
    b = laion_table(n, URL=[f"https://y.com/{i}.jpg" for i in range(n)]).append_column(
        "SAMPLE_ID", pa.array([f"id{i}" for i in range(n)])
    )
    pq.write_table(a, tmp_path / "a.parquet")
    pq.write_table(b, tmp_path / "b.parquet")
    kept, rej, fun = run([tmp_path / "a.parquet", tmp_path / "b.parquet"], tmp_path / "o")
    assert sorted(r["uid"] for r in kept) == sorted(f"laion:id{i}" for i in range(n))
    assert all(r["url"].startswith("https://x.com/") for r in kept)  # a.parquet comes first
    assert sorted((r["uid"], r["reason"]) for r in rej) == sorted((f"laion:id{i}", "duplicate_uid") for i in range(n))
    assert fun["total"]["dropped"]["duplicate_uid"] == n and fun["total"]["kept"] == n
    assert main(["validate", str(tmp_path / "o" / "pairs"), str(tmp_path / "o" / "rejects")]) == 0


def test_file_stem_suffix_never_collides_with_a_real_file_name(tmp_path):
    assert unique_stems(["d1/a.parquet", "d2/a.parquet", "d3/a~1.parquet", "d4/a.parquet"]) == [
        "a",
        "a~2",
        "a~1",
        "a~3",
    ]
    paths = []
    for d in ("d1/a", "d2/a", "d3/a~1"):
        (tmp_path / d).parent.mkdir(exist_ok=True)
        pq.write_table(
            pa.table({"url": [f"https://{d.replace('/', '-').replace('~', '-')}.com/x.jpg"], "caption": [EN]}),
            tmp_path / f"{d}.parquet",
        )
        paths.append(str(tmp_path / f"{d}.parquet"))
    assert main(["filter", "--input", *paths, "--output", str(tmp_path / "o"), "--source", "sbu"]) == 0
    kept, _, _ = outputs(tmp_path / "o")
    assert sorted(r["uid"] for r in kept) == ["sbu:a:0", "sbu:a~1:0", "sbu:a~2:0"]


def test_skip_bad_files_skips_a_corrupt_data_page(tmp_path):
    good = tmp_path / "good.parquet"
    pq.write_table(laion_table(5), good)
    bad = tmp_path / "badpage.parquet"
    pq.write_table(laion_table(100), bad, compression="zstd")
    data = bytearray(bad.read_bytes())
    data[8:60] = b"\xab" * 52  # the first page header; the footer still reads
    bad.write_bytes(bytes(data))
    assert pq.ParquetFile(bad).metadata.num_rows == 100
    r = cli("filter", "--input", good, bad, "--source", "laion", "--output", tmp_path / "o")
    assert r.returncode == 1 and "badpage.parquet" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0
    r = cli("filter", "--input", good, bad, "--source", "laion", "--output", tmp_path / "o", "--skip-bad-files")
    assert r.returncode == 0, r.stderr
    kept, rej, fun = outputs(tmp_path / "o")
    assert fun["bad_files"][0]["path"].endswith("badpage.parquet") and fun["total"]["in"] == 5
    assert len(kept) == 5 and rej == []


def test_filter_refuses_an_input_inside_its_output_and_keeps_it(tmp_path):
    out = tmp_path / "out"
    (out / "pairs").mkdir(parents=True)
    f = out / "pairs" / "in.parquet"
    pq.write_table(laion_table(3), f)
    r = cli("filter", "--input", out / "pairs", "--source", "laion", "--output", out)
    assert r.returncode == 2 and "Traceback" not in r.stderr and f.exists()


@pytest.mark.parametrize(
    "override,words",
    [
        ({"languages": "en"}, ["filter.languages", "list"]),
        ({"min_units": -3}, ["min_units", "-3"]),
        ({"min_unit": 3}, ["min_unit", "min_units"]),  # did you mean
        ({"min_lang_score": 0.4}, ["language.min_score"]),  # renamed
        ({"language": {"min_score": 2}}, ["min_score"]),
        ({"language": {"lowercase": "sometimes"}}, ["lowercase"]),
        ({"special_tag_pattern": "(unclosed"}, ["special_tag_pattern", "RE2"]),
        ({"clean": {"patterns": {"url": {"regex": "[a-"}}}}, ["clean.patterns.url"]),
        ({"script": {"allowed": {"ascii": "0020-007E"}}}, ["script.allowed.ascii"]),
        ({"placeholder_text": {"min_items": "five"}}, ["min_items"]),
    ],
)
def test_mistyped_filter_settings_are_usage_errors(override, words):
    cfg = load_config(None)["filter"]
    bad = dict(cfg)
    for k, v in override.items():
        bad[k] = dict(cfg[k], **v) if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    with pytest.raises(UsageError) as e:
        PairRules.from_config(bad)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_mistyped_setting_from_a_user_file_exits_2_in_one_line(tmp_path):
    f = tmp_path / "x.parquet"
    pq.write_table(laion_table(2), f)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("filter:\n  languages: en\n")
    r = cli("filter", "--input", f, "--source", "laion", "--output", tmp_path / "o", "--config", cfg)
    assert r.returncode == 2 and "languages" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0
