"""Converters on tiny fixtures in each dataset's real layout (scripts/make_task_fixtures.py)."""

import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from qwenvl_data.errors import BadInput
from qwenvl_data.pipelines.tasks import convert_dataset
from qwenvl_data.shards import iter_tar_samples
from qwenvl_data.tasks.grit import resolve_nesting
from qwenvl_data.tasks.safe_pickle import safe_load
from qwenvl_data.tasks.vqa import most_frequent

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_task_fixtures", ROOT / "scripts" / "make_task_fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return fixtures.make_all(tmp_path_factory.mktemp("fixtures"))


def convert(data, tmp_path, dataset, **kw):
    stats = convert_dataset(dataset, data / dataset, tmp_path / dataset, **kw)
    samples = [
        json.loads(f["json"]) | {"_members": sorted(f)}
        for tar in sorted((tmp_path / dataset).glob("*.tar"))
        for _, f in iter_tar_samples(tar)
    ]
    assert stats["in"] == stats["out"] + sum(stats["rejected"].values())
    assert stats["out"] == len(samples)
    return stats, {s["uid"]: s for s in samples}


@pytest.mark.parametrize("dataset", ["refcoco", "refcoco+", "refcocog"])
def test_refcoco_family(data, tmp_path, dataset):
    stats, s = convert(data, tmp_path, dataset)
    assert stats["rejected"] == {"empty_box": 2, "missing_image": 2, "split_excluded": 2}
    ref, region = s[f"{dataset}:0:0:ref"], s[f"{dataset}:0:0:region"]
    # bbox [20,10,50,40] in a 200x100 image -> (100,100),(350,500)
    assert (ref["task"], ref["prompt"], ref["target"]) == (
        "ref_grounding",
        "<ref>the ear on a giraffe</ref>",
        "<box>(100,100),(350,500)</box>",
    )
    assert (region["task"], region["prompt"], region["target"]) == (
        "grounded_caption",
        "<ref>This</ref><box>(100,100),(350,500)</box> is",
        "the ear on a giraffe",
    )
    assert s[f"{dataset}:1:2:ref"]["target"] == "<box>(750,500),(999,999)</box>"  # clipped at the edge
    assert ref["_members"] == ["jpg", "json"] and (ref["width"], ref["height"]) == (200, 100)


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (subprocess.call, (["touch", str(marker)],))

    for payload in (
        pickle.dumps([Evil()], protocol=2),
        pickle.dumps({"x": Evil()}, protocol=4),
        b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.",
    ):
        with pytest.raises(BadInput, match="refused unsafe"):
            safe_load(payload, "refs(unc).p")
    assert not marker.exists()
    assert safe_load(pickle.dumps([{"a": 1, "b": [1.5, "x", None, (1, 2)], "c": {1, 2}}], protocol=2)) == [
        {"a": 1, "b": [1.5, "x", None, (1, 2)], "c": {1, 2}}
    ]


def test_malicious_refs_file_fails_cli_with_one_line(data, tmp_path):
    bad = tmp_path / "evil"
    bad.mkdir()
    (bad / "instances.json").write_text("{}")
    (bad / "refs(unc).p").write_bytes(b"cposix\nsystem\n(S'echo hi'\ntR.")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "qwenvl_data.pipelines.cli",
            "tasks",
            "--dataset",
            "refcoco",
            "--input",
            str(bad),
            "--output",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "refused unsafe" in r.stderr and "posix.system" in r.stderr


def test_visual_genome(data, tmp_path):
    stats, s = convert(data, tmp_path, "vg")
    assert stats["rejected"] == {"inverted_box": 2, "empty_question_or_answer": 1}
    # Box B.1: region (288, 325.5, 93x97.5) of an 800x600 image
    assert s["vg:region100:region"]["prompt"] == "<ref>This</ref><box>(360,542),(476,705)</box> is"
    assert s["vg:region100:region"]["target"] == "Yellow cross country ski racing gloves"
    assert s["vg:region100:ref"]["target"] == "<box>(360,542),(476,705)</box>"
    qa = s["vg:qa7"]
    assert qa["prompt"] == " Does the bandage have a different color than the wrist band? Answer:"
    assert qa["image_ref"] == "VG_100K_2/1.jpg" and qa["task"] == "vqa"


def test_grit_grounded_caption_box_b1(data, tmp_path):
    stats, s = convert(data, tmp_path, "grit")
    assert stats["rejected"] == {"no_boxes": 1, "not_downloaded": 1, "unknown_resize": 1}
    g = s["grit:1"]
    assert g["prompt"] == "Generate the caption in English with grounding:"
    assert g["target"] == (
        "Beautiful shot of <ref>bees</ref><box>(661,612),(833,812)</box>"
        "<box>(120,555),(265,770)</box> gathering nectars from <ref>an apricot flower</ref>"
        "<box>(224,13),(399,313)</box>"
    )
    assert g["dropped_spans"]["nested"] == 2


def test_nesting_keeps_most_boxes():
    # "a dog with a ball": the outer span has 1 box, the two inner ones 1 each -> keep the inner two
    assert resolve_nesting({(0, 17): [1], (0, 5): [1], (11, 17): [1]}) == [(0, 5), (11, 17)]
    # the outer span with 3 boxes beats two inner with 1 each
    assert resolve_nesting({(0, 17): [1, 2, 3], (0, 5): [1], (11, 17): [1]}) == [(0, 17)]
    # partial overlap counts as nesting too
    assert resolve_nesting({(0, 6): [1], (4, 10): [1, 2], (10, 12): [1]}) == [(4, 10), (10, 12)]
    assert resolve_nesting({}) == []


def test_grit_confidence_threshold(data, tmp_path):
    stats, s = convert(data, tmp_path, "grit", cfg={"grit": {"min_confidence": 0.1}})
    assert "grit:2" in s and s["grit:2"]["target"] == "<ref>a dog</ref><box>(100,100),(500,500)</box> on grass"


@pytest.mark.parametrize(
    "dataset,uid,prompt,target,rejected",
    [
        ("vqav2", "vqav2:90", " What color is the square? Answer:", "pink", {"empty_question_or_answer": 1}),
        ("gqa", "gqa:q1", " Is the box red? Answer:", "yes", {"missing_image": 1}),
        ("textvqa", "textvqa:1", " what brand? Answer:", "nike", {}),
        ("docvqa", "docvqa:5", " What is the date? Answer:", "1 May 1999", {}),
        ("chartqa", "chartqa:train_augmented:0", " What is the sum? Answer:", "12", {}),
        ("ocrvqa", "ocrvqa:b1:0", " Who wrote this book? Answer:", "Ann Author", {"split_excluded": 1}),
        ("dvqa", "dvqa:1", " How many bars are there? Answer:", "3", {}),
        (
            "ai2d",
            "ai2d:0.png-0",
            " Which stage comes first? Options: (A) egg (B) larva (C) pupa (D) adult Answer:",
            "egg",
            {"split_excluded": 1},
        ),  # the question on test image 1 (ai2d_test_ids.csv)
    ],
)
def test_vqa_sets(data, tmp_path, dataset, uid, prompt, target, rejected):
    stats, s = convert(data, tmp_path, dataset)
    assert stats["rejected"] == rejected
    assert (s[uid]["task"], s[uid]["prompt"], s[uid]["target"]) == ("vqa", prompt, target)


def test_vqav2_answer_choice():
    assert most_frequent(["a", "b", "b", "a"], [False, True, False, False]) == "b"  # tie: the surer one
    assert most_frequent(["a", "b", "b"]) == "b"
    assert most_frequent(["x", "y"]) == "x" and most_frequent(["", None]) is None


def test_coco_captions_and_text(data, tmp_path):
    stats, s = convert(data, tmp_path, "coco")
    assert stats["rejected"] == {"empty_caption": 1, "missing_annotation": 1}
    assert (s["coco:1"]["prompt"], s["coco:1"]["target"]) == (
        "Generate the caption in English:",
        "A red square on a green field.",
    )
    stats, s = convert(data, tmp_path, "text")
    assert stats["rejected"] == {"bad_record": 2}
    langs = {v["target"]: (v["lang"], v["prompt"], v["width"], v["_members"]) for v in s.values()}
    assert langs["今天天气很好，我们去公园散步。"] == ("zh", "", None, ["json"])
    assert langs["The quick brown fox jumps over the lazy dog."][0] == "en"


def test_pairs_to_caption_samples(data, tmp_path):
    stats, s = convert(data, tmp_path, "pairs")
    assert stats["out"] == 12 and stats["by_task"]["caption"] == {"en": 8, "zh": 4}
    assert s["laion:2"]["prompt"] == "Generate the caption in Chinese:" and s["laion:2"]["lang"] == "zh"


def test_rerun_skips_finished_shards_and_outputs_validate(data, tmp_path):
    first = convert_dataset("vg", data / "vg", tmp_path / "vg", shard_size=2)
    tars = sorted((tmp_path / "vg").glob("*.tar"))
    assert len(tars) == 3 and first["skipped_shards"] == 0
    before = [t.read_bytes() for t in tars]
    again = convert_dataset("vg", data / "vg", tmp_path / "vg", shard_size=2)
    assert again["skipped_shards"] == 3 and again["out"] == first["out"]
    assert [t.read_bytes() for t in tars] == before
    r = subprocess.run(
        [sys.executable, "-m", "qwenvl_data.pipelines.cli", "validate", str(tmp_path / "vg")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr


def test_missing_annotation_file_is_one_line_error(tmp_path):
    (tmp_path / "in").mkdir()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "qwenvl_data.pipelines.cli",
            "tasks",
            "--dataset",
            "vg",
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "image_data.json: missing" in r.stderr and "Traceback" not in r.stderr


def test_fast_task_check_agrees_with_schema():
    from qwenvl_data.schema import first_error
    from qwenvl_data.tasks.common import task_error

    good = {
        "schema": "task",
        "uid": "u",
        "source": "s",
        "task": "vqa",
        "lang": "en",
        "prompt": " q Answer:",
        "target": "a",
        "width": 4,
        "height": 3,
    }
    text = good | {"task": "text", "prompt": "", "width": None, "height": None}
    variants = [
        good,
        text,
        good | {"schema": "ocr"},
        good | {"schema": "pair"},
        good | {"uid": ""},
        good | {"task": "chat"},
        good | {"lang": "fr"},
        good | {"target": ""},
        good | {"width": None},
        good | {"width": 0},
        good | {"height": True},
        good | {"prompt": 3},
        text | {"prompt": "x"},
        text | {"width": 5},
        {k: v for k, v in good.items() if k != "height"},
        good | {"source": ""},
    ]
    for v in variants:
        assert (task_error(v) is None) == (first_error("task", v) is None), v


def test_tar_member_reader_plain_and_pax(tmp_path):
    import io
    import tarfile

    from qwenvl_data.shards.reader import members

    for fmt in (tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        path = tmp_path / f"{fmt}.tar"
        names = ["000001.jpg", "000001.json", "dir/" + "k" * 120 + ".txt", "é.json"]
        with tarfile.open(path, "w", format=fmt) as tar:
            for i, n in enumerate(names):
                if fmt == tarfile.USTAR_FORMAT and (len(n) > 100 or not n.isascii()):
                    continue
                data = bytes([i]) * (700 * i + 1)
                info = tarfile.TarInfo(n)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        raw = path.read_bytes()
        got = members(path)
        assert len(got) == (2 if fmt == tarfile.USTAR_FORMAT else 4)
        for name, off, size in got:
            i = names.index(name)
            assert raw[off : off + size] == bytes([i]) * (700 * i + 1)


def test_nesting_is_optimal_against_brute_force():
    import itertools

    from hypothesis import given, settings
    from hypothesis import strategies as st

    span = st.tuples(st.integers(0, 20), st.integers(1, 8), st.integers(1, 3))

    @settings(max_examples=150, deadline=None)
    @given(st.lists(span, max_size=7))
    def check(raw):
        spans = {}
        for s, ln, nb in raw:
            spans[(s, s + ln)] = list(range(nb))
        chosen = resolve_nesting(spans)
        ordered = sorted(chosen)
        assert all(a[1] <= b[0] for a, b in zip(ordered, ordered[1:]))  # no nesting, no overlap
        best = 0
        for r in range(len(spans) + 1):
            for combo in itertools.combinations(sorted(spans), r):
                if all(a[1] <= b[0] for a, b in zip(combo, combo[1:])):
                    best = max(best, sum(len(spans[c]) for c in combo))
        assert sum(len(spans[c]) for c in chosen) == best

    check()
