"""Each rule of the pair filter, with its exact reason, on a few inline rows."""

import pyarrow as pa
import pytest

from qwenvl_data.pipelines.filter import load_config
from qwenvl_data.rules import PairRules
from qwenvl_data.sources import layouts_from_config, normalise
from qwenvl_data.text.clean import Cleaner

CFG = load_config(None)
LAYOUTS = layouts_from_config(CFG["sources"])
RULES = PairRules.from_config(CFG["filter"])

GOOD_EN = "A brown dog running across the sandy beach at sunset"
GOOD_ZH = "今天天气很好，我们一起去公园散步，看到了很多美丽的花"


def run_rules(rows, source="laion", rules=RULES):
    layout = LAYOUTS[source]
    t = pa.Table.from_pylist(rows)
    cols = layout.resolve(t.column_names, "inline.parquet")
    return rules.apply(normalise(t, layout, cols, source, "inline", 0), layout).to_pylist()


def laion(text, url="https://img.example.com/a.jpg", w=640, h=480, sim=0.33):
    return {"URL": url, "TEXT": text, "WIDTH": w, "HEIGHT": h, "similarity": sim}


def test_english_and_chinese_are_kept_with_language():
    out = run_rules([laion(GOOD_EN), laion(GOOD_ZH)])
    assert [r["reason"] for r in out] == [None, None]
    assert [r["lang"] for r in out] == ["en", "zh"]
    assert all(r["lang_score"] >= 0.5 for r in out)
    assert out[0]["caption"] == GOOD_EN and out[0]["caption_raw"] == GOOD_EN


@pytest.mark.parametrize(
    "text,reason",
    [
        ("Ein brauner Hund läuft am Strand entlang und spielt mit dem Ball", "language"),  # German: Latin-1 ok
        ("海辺を走る茶色の犬の写真です", "script"),  # Japanese kana
        ("해변을 달리는 갈색 개 사진입니다", "script"),  # Hangul
        ("Коричневая собака бежит по пляжу", "script"),  # Cyrillic
        ("A happy dog on the beach 😀", "emoji"),
        ("Sunny beach ❤️ with friends", "emoji"),
        ("dog", "text_length"),
        ("猫", "text_length"),
        (" ".join(["word"] * 257), "text_length"),
    ],
)
def test_rejections_have_the_exact_reason(text, reason):
    (row,) = run_rules([laion(text)])
    assert row["reason"] == reason
    assert reason in row["reasons"]


def test_bad_metadata_variants():
    rows = [
        laion(GOOD_EN, url=""),
        laion(GOOD_EN, url="ftp://x.com/a.jpg"),
        laion(GOOD_EN, url=None),
        laion(""),
        laion("   "),
        laion(None),
        laion(GOOD_EN, w=-5),
        laion(GOOD_EN, h=0),
        laion(GOOD_EN, url="file:///etc/passwd"),
    ]
    assert [r["reason"] for r in run_rules(rows)] == ["bad_metadata"] * len(rows)


def test_non_numeric_size_and_invalid_utf8_caption_are_bad_metadata():
    t = [
        {"url": "https://a.com/x.jpg", "caption": GOOD_EN.encode(), "width": "abc", "height": "480"},
        {"url": "https://a.com/y.jpg", "caption": b"\xff\xfe broken bytes here", "width": "640", "height": "480"},
        {"url": "https://a.com/z.jpg", "caption": GOOD_EN.encode(), "width": "640", "height": "480"},
    ]
    layout = layouts_from_config(
        {"mine": {"columns": {"url": "url", "caption": "caption", "width": "width", "height": "height"}}}
    )["mine"]
    table = pa.Table.from_pylist(t)
    out = RULES.apply(
        normalise(table, layout, layout.resolve(table.column_names, "x"), "mine", "f", 0), layout
    ).to_pylist()
    assert [r["reason"] for r in out] == ["bad_metadata", "bad_metadata", None]
    assert out[2]["width"] == 640


def test_sizes_aspect_and_small_only_where_known():
    rows = [
        laion(GOOD_EN, w=1000, h=300),
        laion(GOOD_EN, w=900, h=300),
        laion(GOOD_EN, w=199, h=400),
        laion(GOOD_EN, w=200, h=200),
    ]
    assert [r["reason"] for r in run_rules(rows)] == ["aspect_ratio", None, "image_too_small", None]
    # CC3M publishes no sizes: the size rules are skipped there
    (cc,) = run_rules([{"url": "https://a.com/1.jpg", "caption": GOOD_EN}], source="cc3m")
    assert cc["reason"] is None and cc["width"] is None


def test_clip_score_per_source_threshold():
    out = run_rules([laion(GOOD_EN, sim=0.279), laion(GOOD_EN, sim=0.28), laion(GOOD_EN, sim=None)])
    assert [r["reason"] for r in out] == ["clip_score", None, None]
    dc = {
        "uid": "abc",
        "url": "https://a.com/1.jpg",
        "text": GOOD_EN,
        "original_width": 500,
        "original_height": 400,
        "clip_b32_similarity_score": 0.26,
    }
    (row,) = run_rules([dc], source="datacomp")
    assert row["reason"] is None and row["uid"] == "datacomp:abc"  # 0.26 passes DataComp's 0.25


def test_special_tags_only_for_configured_sources_and_before_html_cleaning():
    cap = "<PERSON> walking the dog along the beach at sunset"
    (cc,) = run_rules([{"url": "https://a.com/1.jpg", "caption": cap}], source="cc3m")
    assert cc["reason"] == "special_tags"
    (la,) = run_rules([laion(cap)])
    assert la["reason"] is None and la["caption"] == "walking the dog along the beach at sunset"


def test_cleaning_html_entities_and_irregular_patterns():
    clean = Cleaner.from_config(CFG["filter"]["clean"])
    got = clean(
        pa.array(
            [
                "<p><b>Fish</b> &amp; chips&nbsp;on a plate</p>",
                "It&#39;s a &quot;great&quot; view!!!!  Really???",
                "Sunset over the bay https://example.com/p/1?x=2 contact me@example.com now",
                "IMG_1234.JPG beach with DSC00012.jpg friends",
                "  lots   of\twhitespace\n here  ",
                "Wait... what....",
                None,
            ]
        )
    ).to_pylist()
    assert got == [
        "Fish & chips on a plate",
        'It\'s a "great" view! Really?',
        "Sunset over the bay contact now",
        "beach with friends",
        "lots of whitespace here",
        "Wait. what.",
        None,
    ]


def test_reasons_lists_every_failed_rule_in_order():
    (row,) = run_rules([laion("Привет 😀", w=100, h=1000, sim=0.1)])
    assert row["reason"] == "aspect_ratio"
    assert row["reasons"] == ["aspect_ratio", "image_too_small", "clip_score", "emoji", "script", "text_length"]


def test_thresholds_are_overridable_and_none_switches_a_check_off():
    cfg = dict(CFG["filter"], max_aspect_ratio=None, min_units=1)
    rules = PairRules.from_config(cfg)
    out = run_rules([laion("dogs", w=5000, h=300)], rules=rules)
    assert out[0]["reason"] != "aspect_ratio" and "text_length" not in out[0]["reasons"]


def test_nothing_crashes_on_hostile_caption_content():
    nasty = [
        "\x00\x01\x02 null bytes in caption text",
        "\ud7ff" * 3,
        "<" * 500,
        "&#99999999;" * 3,
        "a" * 100_000,
        "&#x1F600; entity emoji here ok",
        "\u202e right to left override text",
    ]
    out = run_rules([laion(t) for t in nasty])
    assert len(out) == len(nasty)
    assert out[5]["reason"] == "emoji"  # the entity unescapes to an emoji


def test_url_normalisation_fast_path_agrees_with_the_full_one():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from qwenvl_data import dedup

    part = st.text(alphabet="aAbB.-_:/?#%@ 09~", max_size=12)
    fixed = [
        "https://x.com/1.jpg",
        "HTTPS://X.COM:443/1.jpg#top",
        "https://x.com",
        "http://a.b.:80/p?q=1#f",
        "  https://x.com/a ",
        "https://x.com:8080/a",
        "https://Ex.com/A",
        "https://user@x.com/p",
        None,
    ]

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.builds(lambda s, h, r: f"{s}://{h}{r}", st.sampled_from(["http", "https", "HTTP"]), part, part),
            max_size=20,
        )
    )
    def check(urls):
        arr = pa.array(fixed + urls, pa.string())
        assert dedup.normalise_url(arr).to_pylist() == dedup._normalise_all(arr).to_pylist()

    check()


def test_unit_count_by_length_agrees_with_the_unit_pattern():
    import pyarrow.compute as pc
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from qwenvl_data.text.script import UNIT, count_units

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.text(alphabet="ab 1.·一只狗漢𠝹", max_size=15), max_size=20))
    def check(texts):
        clean = [" ".join(t.split()) for t in texts]  # cleaned captions: single spaces, trimmed
        arr = pa.array(clean, pa.string())
        assert count_units(arr).to_pylist() == pc.fill_null(pc.count_substring_regex(arr, UNIT), 0).to_pylist()

    check()
