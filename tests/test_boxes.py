"""Property tests of the one box formula (qwenvl_data.boxes): n = floor(v/size*1000) in [0,999]."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenvl_data.boxes import (
    BoxError,
    box_to_bins,
    clip_box,
    degenerate,
    denormalise,
    format_box,
    normalise,
    parse_answer,
    parse_refs,
)

sizes = st.integers(min_value=1, max_value=20000)
coords = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(v=coords, size=sizes)
def test_always_in_range(v, size):
    n = normalise(v, size)
    assert isinstance(n, int) and 0 <= n <= 999


@settings(max_examples=300, deadline=None)
@given(a=coords, b=coords, size=sizes)
def test_monotone(a, b, size):
    lo, hi = min(a, b), max(a, b)
    assert normalise(lo, size) <= normalise(hi, size)


@settings(max_examples=300, deadline=None)
@given(frac=st.floats(min_value=0, max_value=1, exclude_max=True), size=sizes)
def test_round_trip_within_one_bin(frac, size):
    v = frac * size
    back = denormalise(normalise(v, size), size)
    assert back <= v + 1e-9 * size  # floor: the bin's lower edge
    assert v - back < size / 1000 + 1e-9 * size  # ... at most one bin below


@settings(max_examples=100, deadline=None)
@given(vals=st.lists(coords, min_size=1, max_size=50), size=sizes)
def test_numpy_matches_scalar(vals, size):
    arr = normalise(np.array(vals), size)
    assert arr.tolist() == [normalise(v, size) for v in vals]


@settings(max_examples=200, deadline=None)
@given(x1=coords, y1=coords, w=st.floats(0.5, 1e5), h=st.floats(0.5, 1e5), W=sizes, H=sizes)
def test_clipped_box_inside_image_or_rejected(x1, y1, w, h, W, H):
    try:
        cx1, cy1, cx2, cy2 = clip_box(x1, y1, x1 + w, y1 + h, W, H)
    except BoxError as e:
        assert e.reason == "empty_box"  # fully outside the image
        return
    assert 0 <= cx1 < cx2 <= W and 0 <= cy1 < cy2 <= H
    try:
        bins = box_to_bins((x1, y1, x1 + w, y1 + h), W, H)
    except BoxError as e:  # a sliver thinner than one bin
        assert e.reason == "degenerate_box"
        assert min(normalise(cx2, W) - normalise(cx1, W), normalise(cy2, H) - normalise(cy1, H)) == 0
        return
    assert all(0 <= b <= 999 for b in bins) and bins[0] < bins[2] and bins[1] < bins[3]
    assert parse_refs(format_box(bins))[0]["boxes"] == [bins]


def test_inverted_and_empty_rejected_with_reason():
    with pytest.raises(BoxError) as e:
        clip_box(50, 10, 20, 40, 100, 100)
    assert e.value.reason == "inverted_box"
    with pytest.raises(BoxError) as e:
        clip_box(10, 10, 10, 40, 100, 100)
    assert e.value.reason == "empty_box"
    with pytest.raises(BoxError) as e:
        clip_box(math.nan, 10, 10, 40, 100, 100)
    assert e.value.reason == "invalid_box"


def test_box_outside_is_clipped():
    assert box_to_bins((-20, -5, 250, 80), 200, 100) == (0, 0, 999, 800)


def test_degenerate_box_rejected_with_its_own_reason():
    # 1.5 px wide in a 2000 px image (2 px per bin): x1=500 and x2=501.5 both land in bin 250
    with pytest.raises(BoxError) as e:
        box_to_bins((500, 10, 501.5, 90), 2000, 100)
    assert e.value.reason == "degenerate_box"
    with pytest.raises(BoxError) as e:  # GRIT's 0-1 coordinates: thinner than 1/1000
        box_to_bins((0.1, 0.2, 0.3, 0.2004), 1.0, 1.0)
    assert e.value.reason == "degenerate_box"
    assert box_to_bins((500, 10, 504, 90), 2000, 100) == (250, 100, 252, 900)
    assert degenerate(np.array([[250, 100, 250, 900], [1, 2, 3, 2], [1, 2, 3, 4]])).tolist() == [True, True, False]


def test_parse_refs_reads_every_form_the_official_parser_reads():
    # spaces after commas, a coordinate of 1000, the ref stripped as the official parser returns it
    assert parse_refs("<ref> a dog </ref><box>(123, 456),(789,1000)</box>") == [
        {"ref": "a dog", "boxes": [(123, 456, 789, 1000)], "quads": []}
    ]
    assert parse_refs("<box>( 1 ,2 ), (3,4)</box>")[0]["boxes"] == [(1, 2, 3, 4)]
    assert parse_refs("<box>1,2,3,4</box>")[0]["boxes"] == [(1, 2, 3, 4)]  # brackets are dropped, not required
    # several boxes after one ref stay with it; a box that is not 4 integers is skipped
    refs = parse_refs(
        "<ref>bees</ref><box>(661,612),(833,812)</box><box>(120,555),(265,770)</box> gathering "
        "<ref>a flower</ref><box>(1,2),(3)</box><box>(1.5,2),(3,4)</box>"
    )
    assert refs == [
        {"ref": "bees", "boxes": [(661, 612, 833, 812), (120, 555, 265, 770)], "quads": []},
        {"ref": "a flower", "boxes": [], "quads": []},
    ]
    assert parse_refs("<ref>Cafe\u0301</ref><quad>(1, 2),(3,4),(5,6),(7,1000)</quad>") == [
        {"ref": "Caf\u00e9", "boxes": [], "quads": [[(1, 2), (3, 4), (5, 6), (7, 1000)]]}
    ]  # NFC, as official


def test_parse_answer_continues_a_prompt_that_ends_in_box():
    prompt = "<img>img0.jpg</img><ref>the ear on a giraffe</ref><box>"  # the official grounding eval prompt
    assert parse_answer("(176,106),(232,160)</box>", prompt) == [
        {"ref": "the ear on a giraffe", "boxes": [(176, 106, 232, 160)], "quads": []}
    ]
    assert parse_answer("(176, 106),(232,1000)", prompt)[0]["boxes"] == [(176, 106, 232, 1000)]  # cut short
    assert parse_answer("(1,2),(3,4)</box><ref>x</ref><box>(5,6),(7,8)</box>", "<img>a</img><box>") == [
        {"ref": None, "boxes": [(1, 2, 3, 4)], "quads": []},
        {"ref": "x", "boxes": [(5, 6, 7, 8)], "quads": []},
    ]
    assert parse_answer("(1,2),(3,4)</box>", "What is it?") == []  # no open box: nothing to continue


def test_ocr_lines_and_words_with_degenerate_boxes_left_out_and_counted():
    from qwenvl_data.ocr.sample import ocr_sample

    lines = [
        {
            "text": "ok",
            "quad": [(10, 10), (300, 10), (300, 40), (10, 40)],
            "words": [
                {"text": "i", "quad": [(10, 10), (11, 10), (11, 40), (10, 40)]},  # 1 px wide: 0 bins
                {"text": "ok", "quad": [(20, 10), (300, 10), (300, 40), (20, 40)]},
            ],
        },
        {"text": "thin", "quad": [(10, 50), (300, 50), (300, 51), (10, 51)]},  # 1 px tall
        {"text": "out", "quad": [(3000, 50), (3100, 50), (3100, 60), (3000, 60)]},
    ]
    sample, dropped = ocr_sample("u", "synthdog-en", "en", 2000, 2000, lines)
    assert dropped == {"lines_outside_image": 1, "degenerate_box": 1, "degenerate_word_box": 1}
    assert sample["target"] == "<ref>ok</ref><quad>(5,5),(150,5),(150,20),(5,20)</quad>"
    assert [w["text"] for w in sample["lines"][0]["words"]] == ["ok"]
    assert sample["lines"][0]["box"] == [5, 5, 150, 20]


def test_converters_and_grit_reject_degenerate_boxes_with_the_reason():
    from qwenvl_data.tasks.common import Reject, bins_or_reject
    from qwenvl_data.tasks.grit import span_boxes

    r = bins_or_reject([500, 10, 501.5, 90], 2000, 100, "refcoco:1")  # RefCOCO / VG / VQA go through this
    assert isinstance(r, Reject) and (r.uid, r.reason) == ("refcoco:1", "degenerate_box")
    assert bins_or_reject([500, 10, 504, 90], 2000, 100, "refcoco:2") == (250, 100, 252, 900)
    dropped = {}
    spans = [[0, 4, 0.1, 0.2, 0.3, 0.2004, 0.9], [5, 9, 0.1, 0.2, 0.3, 0.4, 0.9]]  # the first 0.0004 tall
    assert span_boxes(spans, 9, 0.5, dropped) == {(5, 9): [(100, 200, 300, 400)]}
    assert dropped == {"degenerate_box": 1}
