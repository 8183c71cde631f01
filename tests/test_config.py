"""Config validated at load time (qwenvl_data/config_schema.py) and numbers on the command line
(qwenvl_data/cliargs.py): wrong types, strings for lists, negative thresholds, misspelled keys and
sections are one-line usage errors (issue 14, findings 8 and 9)."""

import subprocess
import sys
from pathlib import Path

import pytest

from qwenvl_data.config import default_file, known_sections, load_section
from qwenvl_data.config_schema import RULES, SELF_CHECKED, check_section
from qwenvl_data.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["download", "clip_score", "synth_ocr", "tasks", "shards"]
FILE_OF = {"sources": "filter", "paths": "filter"}


@pytest.mark.parametrize("section", STAGES + ["sources", "paths"])
def test_shipped_defaults_conform_and_rules_name_documented_keys(section):
    shipped = default_file(FILE_OF.get(section, section))[section] or {}
    check_section(section, shipped, shipped, f"configs/{section}.yaml")  # e.g. a YAML `no` read as false
    for dotted in RULES.get(section, {}):
        node = shipped
        for part in [p for p in dotted.split(".") if p]:
            assert isinstance(node, dict) and part in node, f"rule for {section}.{dotted}: not in the defaults"
            node = node[part]


def _load(tmp_path, section, text):
    path = tmp_path / "user.yaml"
    path.write_text(text)
    return load_section(section, path)


@pytest.mark.parametrize(
    "section, text, message",
    [
        ("download", "download: {timeout: 10s}", r"download\.timeout: expected a number, got str '10s'"),
        ("download", "download: {threads: -4}", r"download\.threads: -4 is below the minimum 1"),
        ("download", "download: {max_aspect_ratio: 0.5}", r"max_aspect_ratio: 0.5 is below the minimum 1"),
        ("download", "download: {timeout: .nan}", r"download\.timeout: expected a number"),
        ("download", "download: {samples_per_shard: 10.5}", r"samples_per_shard: expected an integer"),
        ("download", "download: {resize_only_if_bigger: 1}", r"resize_only_if_bigger: expected true or false"),
        ("download", "download: {threads: true}", r"download\.threads: expected an integer, got bool"),
        (
            "download",
            "download: {allow_addresses: 127.0.0.1}",
            r"allow_addresses: expected a list, got str '127.0.0.1' \(write a list",
        ),
        ("download", "download: {encode_format: gif}", r"encode_format: 'gif' is not one of jpg, png, webp"),
        ("download", "download: {timout: 3}", r"download: unknown key 'timout'; did you mean 'timeout'\?"),
        ("download", "download: {image_size: null}", r"download\.image_size: must not be null"),
        ("download", "donwload: {timeout: 3}", r"unknown section 'donwload'; did you mean 'download'\?"),
        ("download", "download: [1, 2]", r"section 'download' must be a mapping, got list"),
        ("clip_score", "clip_score: {thresholds: {default: .inf}}", r"thresholds\.default: expected a number or 'qP'"),
        ("clip_score", "clip_score: {thresholds: {by_lang: {zh: q1.5}}}", r"thresholds\.by_lang\.zh: expected"),
        ("clip_score", "clip_score: {batch_size: 0}", r"clip_score\.batch_size: 0 is below the minimum 1"),
        ("synth_ocr", "synth_ocr: {aspect: [0.9, 0.6]}", r"synth_ocr\.aspect: \[0\.9, 0\.6\] must be \[low, high\]"),
        ("synth_ocr", "synth_ocr: {blur_p: 1.5}", r"synth_ocr\.blur_p: 1\.5 is above the maximum 1"),
        ("synth_ocr", "synth_ocr: {font_sizes: 14}", r"synth_ocr\.font_sizes: expected a list, got int"),
        ("synth_ocr", "synth_ocr: {pdf: {min_side: -1}}", r"synth_ocr\.pdf\.min_side: -1 is below the minimum 1"),
        ("tasks", "tasks: {refcoco: {splits: train}}", r"tasks\.refcoco\.splits: expected a list, got str 'train'"),
        ("tasks", "tasks: {grit: {min_confidence: -0.1}}", r"min_confidence: -0\.1 is below the minimum 0"),
        ("tasks", "tasks: {shard_sise: 5}", r"unknown key 'shard_sise'; did you mean 'shard_size'\?"),
        ("shards", "shards: {stage1: {weights: {laion: -1}}}", r"stage1\.weights\.laion: -1 is below the minimum 0"),
        ("shards", "shards: {stage3: {zh_instruction_fraction: 2}}", r"zh_instruction_fraction: 2 is above"),
    ],
)
def test_bad_values_are_one_line_usage_errors(tmp_path, section, text, message):
    with pytest.raises(UsageError, match=message) as e:
        _load(tmp_path, section, text)
    assert "\n" not in str(e.value) and str(e.value).startswith(str(tmp_path / "user.yaml"))


@pytest.mark.parametrize(
    "section, text",
    [
        ("download", "download: {timeout: 2.5, deadline: null, max_pixels: null, allow_addresses: [127.0.0.1]}"),
        ("clip_score", "clip_score: {thresholds: {default: q0.3, by_lang: {en: null}, by_source: {mine: {zh: 0.2}}}}"),
        ("shards", "shards: {stage1: {weights: {inhouse: 3, laion: 0.5}}, stage2: {weights: null}}"),
        ("tasks", "tasks: {grit: {min_confidence: null}}\nfilter: {languages: [en]}\nsources: {}"),
    ],
)
def test_good_values_pass(tmp_path, section, text):
    _load(tmp_path, section, text)


def test_sources_layouts_are_checked(tmp_path):
    path = tmp_path / "user.yaml"
    path.write_text("sources: {mine: {columns: {url: [u], caption: c}, score_threshold: -x}}")
    from qwenvl_data.config import merge_user_sections

    with pytest.raises(UsageError, match=r"sources\.mine\.score_threshold: expected a number"):
        merge_user_sections({"sources": {}}, path)


def test_every_shipped_section_conforms():
    """Sections added later (any configs/*.yaml) are checked too: derived from their own defaults."""
    names = []
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        for section, value in (default_file(path.stem) or {}).items():
            check_section(section, value or {}, value or {}, str(path))
            names.append(section)
    assert sorted(names) == known_sections() and set(STAGES) <= set(names)
    assert SELF_CHECKED == {"filter"}  # qwenvl_data/filter_settings.py checks that one


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["filter", "--input", "x", "--output", "y", "--workers", "-1"],
            "argument --workers: must be at least 0, got -1",
        ),
        (["download", "--input", "x", "--output", "y", "--timeout", "0"], "argument --timeout: must be greater than 0"),
        (
            ["download", "--input", "x", "--output", "y", "--deadline", "inf"],
            "argument --deadline: 'inf' is not a finite",
        ),
        (
            ["shards", "--stage", "1", "--input", "x", "--output", "y", "--shard-size", "0"],
            "--shard-size: must be at least 1",
        ),
        (["preview", "x.tar", "--max", "-3"], "argument --max: must be at least 1, got -3"),
        (["synth-ocr", "--output", "y", "--num", "-5"], "argument --num: must be at least 0, got -5"),
    ],
)
def test_cli_numbers_range_checked_exit_2(argv, message):
    r = subprocess.run(
        [sys.executable, "-m", "qwenvl_data.pipelines.cli", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_config_error_through_the_cli_exit_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("download:\n  threads: many\n")
    (tmp_path / "in").mkdir()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "qwenvl_data.pipelines.cli",
            "download",
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(tmp_path / "out"),
            "--config",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 2 and "download.threads: expected an integer, got str 'many'" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and not (tmp_path / "out").exists()
