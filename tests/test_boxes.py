"""Property tests of the one box formula (qwenvl_data.boxes): n = floor(v/size*1000) in [0,999]."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qwenvl_data.boxes import BoxError, box_to_bins, clip_box, denormalise, format_box, normalise, parse_refs

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
    assert back <= v + 1e-9 * size                 # floor: the bin's lower edge
    assert v - back < size / 1000 + 1e-9 * size     # ... at most one bin below


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
    bins = box_to_bins((x1, y1, x1 + w, y1 + h), W, H)
    assert all(0 <= b <= 999 for b in bins) and bins[0] <= bins[2] and bins[1] <= bins[3]
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
