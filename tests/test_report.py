"""`qwenvl-data report`: the filter funnel beside download and clip-score summaries (Markdown, HTML,
chart), found by following the inputs each summary records."""

import json

from qwenvl_data.pipelines import cli
from qwenvl_data.pipelines.report import drop_reasons, find_stages, funnel_rows

STATS = {
    "in": 1000,
    "kept": 400,
    "dropped": {"lang_not_en_zh": 350, "caption_too_short": 250},
    "kept_pct": 40.0,
    "kept_by_lang": {"en": 300, "zh": 100},
}


def make_tree(root):
    (root / "filter" / "pairs").mkdir(parents=True)
    (root / "filter" / "funnel.json").write_text(
        json.dumps(
            {
                "stage": "filter",
                "rules": ["lang_not_en_zh", "caption_too_short"],
                "sources": {"laion": STATS},
                "total": STATS,
                "bad_files": [],
                "engine": "local",
                "seconds": 1.5,
            }
        )
    )
    (root / "download").mkdir()
    (root / "download" / "download.json").write_text(
        json.dumps(
            {
                "stage": "download",
                "input": str(root / "filter" / "pairs"),
                "in": 400,
                "samples": 310,
                "failed": {"http_404": 60, "timeout": 20, "duplicate_image": 10},
                "success_pct": 77.5,
                "sources": {
                    "laion": {
                        "in": 400,
                        "samples": 310,
                        "failed": {"http_404": 60, "timeout": 20, "duplicate_image": 10},
                    }
                },
                "seconds": 9.0,
            }
        )
    )
    (root / "clip").mkdir()
    (root / "clip" / "clip.json").write_text(
        json.dumps(
            {
                "stage": "clip-score",
                "input": str(root / "download"),
                "models": {"default": "ViT-B-32@w.pt"},
                "in": 310,
                "kept": 250,
                "dropped": {"clip_score": 58, "decode_error": 2},
                "sources": {"laion": {"in": 310, "kept": 250, "dropped": {"clip_score": 58, "decode_error": 2}}},
                "thresholds": [{"source": "laion", "lang": "en", "threshold_max": 0.28}],
                "seconds": 3.0,
            }
        )
    )


def test_report_follows_inputs_and_renders(tmp_path, capsys):
    make_tree(tmp_path)
    stages = find_stages([str(tmp_path / "clip")])
    assert set(stages) == {"filter", "download", "clip-score"}
    assert funnel_rows(stages) == [("filter", 1000, 400), ("download", 400, 310), ("clip-score", 310, 250)]
    assert drop_reasons(stages)[0] == ("filter", "lang_not_en_zh", 350)
    assert cli.main(["report", str(tmp_path / "clip")]) == 0
    md = (tmp_path / "clip" / "report.md").read_text()
    assert "| download | 400 | 310 | 77.5% |" in md and "| http_404 | 60 | 15.0% |" in md
    assert "Overall: 1000 input rows -> 250 samples (25.0%)" in md
    assert "| laion | 310 | 250 | 80.6% | clip_score 58, decode_error 2 |" in md
    page = (tmp_path / "clip" / "report.html").read_text()
    assert "data:image/png;base64," in page and "<td>http_404</td>" in page
    assert (tmp_path / "clip" / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_report_of_filter_only_and_bad_summary(tmp_path, capsys):
    make_tree(tmp_path)
    out = tmp_path / "r"
    assert cli.main(["report", str(tmp_path / "filter"), "--output", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "| filter | 1000 | 400 | 40.0% |" in md and "## Download" not in md
    summary = json.loads((tmp_path / "download" / "download.json").read_text())
    (tmp_path / "download" / "download.json").write_text(json.dumps({**summary, "in": 200}))
    assert cli.main(["report", str(tmp_path / "download"), "--output", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "Overall" not in md and "Note: download read 200 rows while filter wrote 400" in md
    (tmp_path / "download" / "download.json").write_text("{broken")
    assert cli.main(["report", str(tmp_path / "download")]) == 1
    assert cli.main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "download.json: not a readable stage summary" in err[0] and "not a directory" in err[1]


def test_report_dispatches_on_the_stage_key_not_the_file_name(tmp_path, capsys):
    """synth-ocr's summary is never read as the filter's funnel; a funnel.json without a stage key is
    not a summary; the same summary under another file name is still found by its key."""
    ocr = tmp_path / "ocr"
    ocr.mkdir()
    (ocr / "synth_ocr.json").write_text(
        json.dumps(
            {"stage": "synth-ocr", "sources": {"synthdog-en": {"in": 10, "kept": 9, "dropped": {"no_text_lines": 1}}}}
        )
    )
    (ocr / "funnel.json").write_text(json.dumps({"sources": {}, "total": {"in": 0, "kept": 0}}))
    stages = find_stages([str(ocr)])
    assert set(stages) == {"synth-ocr"}
    assert cli.main(["report", str(ocr)]) == 0
    md = (ocr / "report.md").read_text()
    assert "Pages kept 9/10 (90.0%)" in md and "| filter |" not in md and "## Filter" not in md
    make_tree(tmp_path)
    (tmp_path / "download" / "download.json").rename(tmp_path / "download" / "old-run.json")
    assert set(find_stages([str(tmp_path / "download")])) == {"download", "filter"}
