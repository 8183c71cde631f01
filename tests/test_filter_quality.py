"""The caption rules on each failure class seen on real web alt text (issue 9), with exact outcomes:
cleaning that keeps text, the script rule for Chinese as written, the EN+ZH language decision, the
placeholder_text junk rule, and the labelled evaluation set scored by `make eval-filter`."""

import copy

import pyarrow as pa
import pytest

from qwenvl_data.errors import UsageError
from qwenvl_data.pipelines import eval_filter
from qwenvl_data.pipelines.filter import load_config
from qwenvl_data.rules import PairRules
from qwenvl_data.sources import layouts_from_config, normalise
from qwenvl_data.text import langid
from qwenvl_data.text.script import count_units

CFG = load_config(None)
RULES = PairRules.from_config(CFG["filter"])
LAYOUT = layouts_from_config(CFG["sources"])["laion"]


def judge(texts, rules=RULES):
    t = pa.table(
        {
            "URL": [f"https://img.example.com/{i}.jpg" for i in range(len(texts))],
            "TEXT": texts,
            "WIDTH": [640] * len(texts),
            "HEIGHT": [480] * len(texts),
            "similarity": [0.35] * len(texts),
        }
    )
    cols = LAYOUT.resolve(t.column_names, "inline")
    return rules.apply(normalise(t, LAYOUT, cols, "laion", "inline", 0), LAYOUT).to_pylist()


@pytest.mark.parametrize(
    "raw,clean",
    [
        ("详情请访问www.example.com了解更多", "详情请访问 了解更多"),  # URL glued to Chinese
        ("官网http://www.example.cn/p/123欢迎选购", "官网 欢迎选购"),
        ("&lt;p&gt;A cozy cabin in the woods&lt;/p&gt;", "A cozy cabin in the woods"),  # escaped tags go as tags
        ("Mac &amp;amp; cheese with breadcrumbs", "Mac & cheese with breadcrumbs"),  # double-escaped
        ("&amp;lt;b&amp;gt;Bold&amp;lt;/b&amp;gt; title here", "Bold title here"),
        ("微信图片_20191223152426.jpg 家里的小猫", "家里的小猫"),  # CJK file-name stem
        ("屏幕截图2023.png 山顶的日出", "山顶的日出"),
        ("A\u2009dog\u2009on\u2009the beach", "A dog on the beach"),  # Unicode spaces
        ("Mountain\u00a0lake\u202fat\u205fdawn\u3000today", "Mountain lake at dawn today"),
        ("Children\x92s books on a shelf", "Children\u2019s books on a shelf"),  # C1 control repaired
        ("caf\u00c3\u00a9 with outdoor seating", "caf\u00e9 with outdoor seating"),  # mojibake repaired
        ("Sunflower\u200b field\u200d at noon", "Sunflower field at noon"),  # invisible characters
        ("Tab\x00null\x07bell text", "Tab null bell text"),
        ("Best!!!!! coffee shop", "Best! coffee shop"),
        ("联系邮箱service@example.com获取报价", "联系邮箱 获取报价"),
    ],
)
def test_cleaning_keeps_the_text(raw, clean):
    (row,) = judge([raw])
    assert row["caption"] == clean


def test_unicode_spaces_count_as_word_breaks():
    (row,) = judge(["A\u2009dog\u2009on\u2009the beach"])
    assert count_units(pa.array([row["caption"]])).to_pylist() == [5]


@pytest.mark.parametrize(
    "text",
    [
        "今日气温25℃，晴转多云",
        "①选择颜色 ②选择尺码 ③加入购物车",
        "第Ⅱ卷 第三章 开始",
        "■ 产品特点 ■ 防水防尘",
        "北京──上海 高铁线路图",
        "约翰・史密斯的演讲现场",
        "Běijīng 北京 城市地图",
        "面积120㎡ 三室两厅",
        "★★★ 五星好评 ★★★",
        "ㄅㄆㄇㄈ 注音符號 學習",
        "维生素Ｃ 咀嚼片 营养",
        "价格：￥199元 包邮",
        "Nike™ Air Force Sneakers White",
        "Oven preheated to 180°C for 25 minutes",
        "Chapter Ⅱ: the return of the king",
    ],
)
def test_script_rule_allows_chinese_and_english_as_written(text):
    (row,) = judge([text])
    assert "script" not in row["reasons"] and "emoji" not in row["reasons"]
    assert row["reason"] is None, row


@pytest.mark.parametrize(
    "text",
    [
        "ソファで寝ている猫です",
        "소파에서 자는 고양이",
        "Кошка спит на диване дома",
        "القط نائم على الأريكة",
        "แมวนอนบนโซฟา",
        "ｶﾀｶﾅ half width kana here",
        "㋐ circled katakana letter",
    ],
)
def test_script_rule_still_drops_other_scripts(text):
    (row,) = judge([text])
    assert row["reason"] == "script"


@pytest.mark.parametrize(
    "text,lang",
    [
        ("1998 CARTOON VHS VIDEO TAPE SEALED", "en"),  # ALL CAPS: lower-cased before fastText
        ("VINTAGE LEVIS 501 JEANS SIZE 32", "en"),
        ("Vintage Leather Handbag", "en"),  # short product title, lid.176 below 0.5
        ("Rustic Wooden Dining Table", "en"),
        ("Homemade chocolate chip cookies cooling on a rack", "en"),
        ("A brown dog running across the sandy beach at sunset", "en"),
        ("The Chinese character 福 means good fortune and luck", "en"),  # one ideograph in an English sentence
        ("iPhone 13 Pro Max 手机壳 透明 防摔", "zh"),  # mixed EN/ZH product title
        ("Louis Vuitton 路易威登 女士手提包", "zh"),
        ("台北101大樓夜景", "zh"),  # Traditional, digits inside
        ("穿着红色裙子的女孩在公园里散步", "zh"),
        ("長城", None),  # too short: text_length, by design
    ],
)
def test_language_decision_keeps_english_and_chinese(text, lang):
    (row,) = judge([text])
    if lang is None:
        assert row["reason"] == "text_length"
    else:
        assert (row["reason"], row["lang"]) == (None, lang), row
        assert 0 < row["lang_score"] <= 1


@pytest.mark.parametrize(
    "text",
    [
        "Herren Winterjacke schwarz",
        "Robe de soirée longue",
        "Vestido largo de fiesta",
        "Scarpe donna estive",
        "Ayakkabi erkek spor",
        "Buty sportowe meskie",
        "Fiets langs de gracht in Amsterdam",
        "Das chinesische Schriftzeichen 福 bedeutet Glück",
        "Ο σκύλος τρέχει στην παραλία",
    ],
)
def test_language_decision_drops_other_languages(text):
    (row,) = judge([text])
    assert row["reason"] == "language", row


def test_fasttext_runs_only_where_the_script_and_words_do_not_decide(monkeypatch):
    seen = []
    real = langid.raw_labels

    def counting(lines, *a, **k):
        seen.extend(lines)
        return real(lines, *a, **k)

    monkeypatch.setattr(langid, "raw_labels", counting)
    out = judge(
        [
            "一只小狗在海滩上奔跑",
            "A brown dog running across the beach",
            "Nike 男子运动鞋 新款 透气",
            "Vintage Leather Handbag",
            "Gafas sol polarizadas",
        ]
    )
    assert [r["lang"] for r in out] == ["zh", "en", "zh", "en", "pt"]  # lid.176 on short Spanish: dropped either way
    # pure Han, clear English, mixed and a title of common English words need no model
    assert seen == ["Gafas sol polarizadas\n"]
    assert [r["lang_score"] for r in out[:4]] == [1.0, 1.0, 1.0, 1.0]


def test_han_labels_are_folded_when_the_script_shortcut_is_off():
    cfg = dict(CFG["filter"], language=dict(CFG["filter"]["language"], han_only_is_zh=False))
    out = judge(["一只小狗在海滩上奔跑", "城市夜景灯火通明", "台北101大樓夜景"], PairRules.from_config(cfg))
    assert [(r["reason"], r["lang"]) for r in out] == [(None, "zh")] * 3


@pytest.mark.parametrize(
    "text",
    [
        "Image not found",
        "No image available",
        "Click here to view larger image",
        "Product image 3",
        "点击查看大图",
        "暂无图片",
        "图片加载中...",
        "点击放大",
        "图片来源网络",
        "cheap shoes, buy shoes, best shoes, shoes online, shoes sale, discount shoes",
        "女装,女装批发,女装品牌,女装加盟,女装店,女装网",
        "手机壳 手机壳批发 手机壳定制 手机壳厂家 手机壳图片",
        "wallpaper hd wallpaper 4k wallpaper desktop wallpaper phone wallpaper wallpaper free",
        "nature, landscape, mountains, forest, lake, sky, clouds, travel, outdoor, scenic",
    ],
)
def test_placeholder_and_keyword_junk_has_its_own_reason(text):
    (row,) = judge([text])
    assert row["reason"] == "placeholder_text", row


@pytest.mark.parametrize(
    "text",
    [
        "Apples, bananas and oranges on a wooden table",
        "Red, white and blue flags over the town hall",
        "A black cat, a white dog and a brown rabbit sitting together in the garden",
        "2021新款女装 韩版 宽松 显瘦 百搭 连衣裙 夏季",
        "The image of a lighthouse at night",
        # words of the placeholder classes (layer names, templates, ad slots, picture states) used for something
        "Layer cake with strawberries and cream",
        "Group of friends at the beach",
        "Copy of the Declaration of Independence",
        "Add a photo of your dog to the contest",
        "Advertisement for Coca-Cola in a 1950s magazine",
        "已更新的校园图片展",
    ],
)
def test_real_captions_with_lists_are_not_junk(text):
    (row,) = judge([text])
    assert row["reason"] is None, row


def test_eval_set_scores_meet_the_targets(capsys):
    assert eval_filter.main([]) == 0
    rows = eval_filter.read_set(eval_filter.DEFAULT_SET)
    assert len(rows) >= 300 and {r["label"] for r in rows} == {"en", "zh", "other", "junk"}
    s = eval_filter.score(eval_filter.run_rules(rows, CFG))
    for lang in ("en", "zh"):
        assert s["languages"][lang]["precision"] >= 0.98 and s["languages"][lang]["recall"] >= 0.95, s
    assert s["other_kept"]["kept"] <= 0.01 * s["other_kept"]["of"]
    assert s["junk_kept"]["kept"] <= 0.10 * s["junk_kept"]["of"]
    assert "precision" in capsys.readouterr().out


def test_eval_reads_a_tsv_folder_and_rejects_bad_lines(tmp_path):
    (tmp_path / "mine.tsv").write_text(
        "en\tA red bicycle leaning against a brick wall\nzh\t一只猫躺在沙发上睡觉\n"
        "other\tEin Hund läuft am Strand entlang\n",
        encoding="utf-8",
    )
    assert eval_filter.main(["--dir", str(tmp_path)]) == 0
    (tmp_path / "bad.tsv").write_text("english\tnot a known label\n", encoding="utf-8")
    assert eval_filter.main(["--dir", str(tmp_path)]) == 1


@pytest.mark.parametrize(
    "text",
    [
        "Memory Foam Pillow Standard Size White",  # common English words, no function word: no fastText
        "Wool Blend Winter Scarf Grey",
        "Heavy Duty Storage Shelf 5 Tier Black",
        "GARDEN TOOL SET STAINLESS STEEL",
    ],
)
def test_titles_of_common_english_words_are_english(text):
    (row,) = judge([text])
    assert (row["reason"], row["lang"], row["lang_score"]) == (None, "en", 1.0), row


@pytest.mark.parametrize(
    "text",
    [
        "Zapatillas running mujer",  # one English word of three: a short title needs half
        "Borsa tracolla donna",
        "Celana jeans wanita murah",
    ],
)
def test_short_foreign_titles_with_one_english_word_are_dropped(text):
    (row,) = judge([text])
    assert row["reason"] == "language", row


@pytest.mark.parametrize("text", ["大阪城公園桜満開", "北海道産生乳使用", "上野公園 桜吹雪 夜景"])
def test_japanese_without_kana_is_not_chinese(text):
    (row,) = judge([text])
    assert (row["reason"], row["lang"]) == ("language", "ja"), row


@pytest.mark.parametrize("text", ["名古屋駅前広場", "新作販売開始"])
def test_japanese_with_kanji_that_chinese_writes_only_in_hong_kong_is_japanese_where_lid176_is_sure(text):
    """駅 広 売: in Hong Kong's supplement to Big5, so not sure kanji; lid.176 says ja at >= 0.9."""
    (row,) = judge([text])
    assert (row["reason"], row["lang"]) == ("language", "ja"), row
    (before,) = judge([text], _rules_without(japanese_kanji_likely=None))
    assert (before["reason"], before["lang"]) == (None, "zh"), before


@pytest.mark.parametrize("value", [["shift_jis"], "shift_jis", [1, 2]])
def test_likely_kanji_setting_needs_two_character_sets(value):
    with pytest.raises(UsageError, match="japanese_kanji_likely"):
        _rules_without(japanese_kanji_likely=value)


@pytest.mark.parametrize("text", ["今日円安进一步加剧", "九龍塘又一村", "眞係好正"])
def test_likely_kanji_in_chinese_text_stay_chinese(text):
    """円 beside simplified characters Japanese does not write (进 剧); Hong Kong text lid.176 is not sure of."""
    (row,) = judge([text])
    assert (row["reason"], row["lang"]) == (None, "zh"), row


@pytest.mark.parametrize("text", ["港鐵東鐵綫沙田站", "啓德郵輪碼頭的日落", "衞生署大樓外觀", "台北市的捷運站"])
def test_hong_kong_and_taiwan_variants_stay_chinese(text):
    (row,) = judge([text])
    assert (row["reason"], row["lang"]) == (None, "zh"), row


@pytest.mark.parametrize(
    "text",
    [
        "Image 3 of 12",
        "Screenshot 2024-01-02 at 09.15.00",
        "photo-placeholder-small",
        "noimage.png",
        "产品主图",
        "此图片来自网络",
        "图片正在上传中",
        "暂无商品图片",
    ],
)
def test_captions_only_about_the_picture_are_placeholders(text):
    (row,) = judge([text])
    assert row["reason"] in ("placeholder_text", "text_length"), row
    assert row["reason"] == "placeholder_text" or len(text.split()) < 3


@pytest.mark.parametrize(
    "text",
    [
        "Insert your image here",  # a template asking for a picture
        "Drop your logo here",
        "Artboard 2 copy 4",  # a design tool's default layer / file names
        "Mask Group 7",
        "图层 3 拷贝",
        "product-shot copy 2",
        "主图待更新",  # the picture's state on the site
        "该图片已过期",
        "本广告位招商",  # an empty ad slot
        "Ad space available",
    ],
)
def test_template_requests_default_layer_names_and_picture_states_are_placeholders(text):
    """(and an empty ad slot: see the parametrised list)"""
    (row,) = judge([text])
    assert row["reason"] == "placeholder_text", row


def test_keyword_stuffing_counts_a_word_over_its_forms():
    """11 words, carpet 3 times and carpets once (under 0.35 of them as words; 4 as a stem): stuffing."""
    (row,) = judge(["carpet cleaning carpet cleaners carpets cleaned near me cheap carpet"])
    assert row["reason"] == "placeholder_text", row
    (row,) = judge(["Roofer on the roof of a roofing company building downtown"])  # a sentence
    assert row["reason"] is None, row


@pytest.mark.parametrize(
    "text",
    [
        "Screenshot of a spreadsheet with monthly sales",
        "Main street of the old town at night",
        "图片中的小猫在沙发上睡觉",
    ],
)
def test_captions_about_something_else_are_not_placeholders(text):
    (row,) = judge([text])
    assert row["reason"] is None, row


# The targets: EN/ZH recall >= 0.95 and precision >= 0.98, other languages kept <= 1%, junk kept <= 10%.
# The holdout set's English recall is 56/58 (0.966: a brand-name title and one with a French article).
@pytest.mark.parametrize(
    "folder,en_recall", [("filter_eval", 0.95), ("filter_eval_holdout", 0.95), ("filter_eval_fresh", 0.95)]
)
def test_eval_sets_the_rules_were_tuned_on_stay_at_target(folder, en_recall):
    rows = eval_filter.read_set(eval_filter.DEFAULT_SET.parent / folder)
    s = eval_filter.score(eval_filter.run_rules(rows, CFG))
    for lang, recall in (("en", en_recall), ("zh", 0.95)):
        assert s["languages"][lang]["precision"] >= 0.98 and s["languages"][lang]["recall"] >= recall, s
    assert s["other_kept"]["kept"] <= 0.01 * s["other_kept"]["of"], s["leaks"]
    assert s["junk_kept"]["kept"] <= 0.10 * s["junk_kept"]["of"], s["leaks"]


@pytest.mark.parametrize(
    "text",
    [
        "加载失败",
        "图片加载失败",
        "正在加载，请稍候",
        "暂无数据",
        "网络错误请重试",
        "Failed to load image",
        "Error loading image",
    ],
)
def test_loading_status_alt_text_is_a_placeholder(text):
    (row,) = judge([text])
    assert row["reason"] == "placeholder_text", row


@pytest.mark.parametrize(
    "text,lang",
    [
        ("码头工人正在加载货物", "zh"),  # loading cargo: a sentence with other words
        ("加载货物的卡车停在港口", "zh"),
        ("Trucks loading at the warehouse", "en"),
        ("Error message on a laptop screen", "en"),
    ],
)
def test_sentences_with_a_status_word_are_not_placeholders(text, lang):
    (row,) = judge([text])
    assert (row["reason"], row["lang"]) == (None, lang), row


def _rules_without(**off):
    cfg = copy.deepcopy(CFG["filter"])
    cfg["language"].update(off)
    return PairRules.from_config(cfg)


def assert_english_only_with_setting(text, **off):
    """Kept as English with the shipped settings; dropped by `language` with `off` (the class it guards)."""
    (row,) = judge([text])
    assert (row["reason"], row["lang"]) == (None, "en"), row
    (before,) = judge([text], _rules_without(**off))
    assert before["reason"] == "language", before


def assert_foreign_only_with_setting(text, **off):
    """Dropped by `language` as another language with the shipped settings; kept as English with `off`."""
    (row,) = judge([text])
    assert row["reason"] == "language" and row["lang"] != "en", row
    (before,) = judge([text], _rules_without(**off))
    assert (before["reason"], before["lang"]) == (None, "en"), before


@pytest.mark.parametrize(
    "text",
    [
        "Camisa social masculina slim",  # two Portuguese words, two loanwords/cognates: lid.176 says en at 0.28
        "Blusa social feminina slim",
        "Camisa polo masculina premium",
        "Bolsa tote feminina grande",
    ],
)
def test_foreign_titles_with_english_loanwords_are_not_english(text):
    assert_foreign_only_with_setting(text, foreign_lexicon=None)


@pytest.mark.parametrize(
    "text",
    [
        "Chicken Salsa Verde Recipe",  # English titles holding Spanish words stay English
        "Hola Amigo Funny Shirt",
        "Paella Pan Large",
        "Fresh churros at the street market",
        "Yoga Mat Non Slip",
    ],
)
def test_english_titles_with_a_foreign_word_stay_english(text):
    (row,) = judge([text])
    assert (row["reason"], row["lang"]) == (None, "en"), row


@pytest.mark.parametrize(
    "text",
    [
        "Barbie\u2122 Dreamhouse Playset",
        "Kindle Paperwhite Ereader",
        "Nerf\u2122 Blaster Toyset",
        "Raincoat Toddler Waterproof",
    ],
)
def test_brand_titles_of_compound_english_words_are_english(text):
    # names_neutral off too: with it, an unlisted capitalised compound (Raincoat) is a name, no evidence either way
    assert_english_only_with_setting(text, compound_min_part=None, names_neutral=False)


@pytest.mark.parametrize("text", ["Wandlamp zwart industrieel", "Herren Schuhe Leder", "Giacca uomo invernale"])
def test_compounds_do_not_make_foreign_titles_english(text):
    (row,) = judge([text])
    assert row["reason"] == "language", row


@pytest.mark.parametrize(
    "text",
    [
        "Funda iPhone 14 Pro antigolpe",  # one Spanish word, one word in no list, brand names
        "Custodia Samsung Galaxy antiurto",
    ],
)
def test_foreign_titles_of_brand_names_and_unlisted_words_are_not_english(text):
    assert_foreign_only_with_setting(text, foreign_unknown=None)


@pytest.mark.parametrize(
    "text",
    [
        "Prosecco Rosé Bottle",  # rosé is accented, prosecco in a foreign list below foreign_min_zipf
        "Paella Pan Large",
        "Casa Bonita Restaurant",  # one foreign word, no unlisted one
        "Bella Vita Pizzeria",
        "Cafe Mocha Latte",
        "Taco Bell Chalupa Supreme",  # an unlisted word, no foreign one
        "Quesadilla Maker Nostalgia",
    ],
)
def test_english_titles_with_loanwords_and_unlisted_words_stay_english(text):
    (row,) = judge([text])
    assert (row["reason"], row["lang"]) == (None, "en"), row


def _rules_without_placeholders(marker):
    cfg = copy.deepcopy(CFG["filter"])
    ph = cfg["placeholder_text"]
    ph["placeholders"] = [p for p in ph["placeholders"] if marker not in p]
    return PairRules.from_config(cfg)


@pytest.mark.parametrize(
    "text",
    [
        "WhatsApp Image 2020-03-14 at 8.05.33 AM",
        "Telegram Photo 2022-02-02 10:11:12",
        "微信图片_20191223152426",
        "微信截图 20210618 101500",
    ],
)
def test_device_date_time_names_are_placeholders(text):
    (row,) = judge([text])
    assert row["reason"] == "placeholder_text", row
    (before,) = judge([text], _rules_without_placeholders(r"\d{4}[-_.]?"))
    assert before["reason"] is None, before  # the class this guards against


@pytest.mark.parametrize(
    "text",
    [
        "新华社记者 摄",
        "本报记者 王芳 摄",
        "（新华社发 陈刚 摄）",
        "李华 摄",
        "摄影：周明",
        "图片来源：视觉中国",
        "Photo by Jane Doe on Unsplash",
        "Image courtesy of the artist",
        "(AP Photo/John Doe)",
        "Photo credit: Getty Images",
        "Courtesy of NASA",
        "Photo by Jane Doe via Flickr",
    ],
)
def test_credit_lines_alone_are_placeholders(text):
    (row,) = judge([text])
    assert row["reason"] == "placeholder_text", row
    (before,) = judge([text], PairRules.from_config(_credits_off()))
    assert before["reason"] is None, before  # the class this guards against


def _credits_off():
    cfg = copy.deepcopy(CFG["filter"])
    ph = cfg["placeholder_text"]
    ph["placeholders"] = [p for p in ph["placeholders"] if not any(m in p for m in ("摄", "courtesy", "credit"))]
    return cfg


@pytest.mark.parametrize(
    "text,lang",
    [
        ("Family dinner on 2021-07-09 at 7 pm", "en"),  # a date without a clock time to the second
        ("Apollo 11 launch, July 16, 1969 at 13:32 UTC", "en"),
        ("Beach sunset 2021-07-09", "en"),
        ("2024年3月15日 10:30 北京天安门广场升旗仪式", "zh"),
        ("记者在现场拍摄", "zh"),  # a sentence ending in 拍摄, not a name before 摄
        ("3月15日，市民在公园内赏花。新华社记者 李明 摄", "zh"),  # a caption with its credit
        ("图：北京故宫雪景", "zh"),
        ("婚纱摄影", "zh"),
        ("Photo by the lake", "en"),  # by + lower-case words: not a name
        ("Photo: Eiffel Tower", "en"),
        ("Image by Eiffel Tower at night", "en"),
        ("Photograph by Ansel Adams of Half Dome", "en"),  # a credit and what the picture shows
        ("A photographer takes a picture of a bird", "en"),
    ],
)
def test_captions_with_dates_or_credit_words_are_not_placeholders(text, lang):
    (row,) = judge([text])
    assert (row["reason"], row["lang"]) == (None, lang), row


@pytest.mark.parametrize(
    "text",
    [
        "Hilfiger Denim Jacket Blue",  # a capitalised brand name in no list: no evidence either way
        "Balenciaga Speed Trainer Black",
    ],
)
def test_english_titles_of_brand_names_stay_english(text):
    assert_english_only_with_setting(text, names_neutral=False)


@pytest.mark.parametrize(
    "text",
    [
        "Tiramisu Mascarpone Recipe",  # two names and one English word: lid.176 unsure, the word decides
        "Boho Kimono Jacket",
    ],
)
def test_short_titles_of_names_and_one_english_word_stay_english(text):
    """The short-caption lexicon share is taken of the words that are not names, as the other shares are."""
    assert_english_only_with_setting(text, names_neutral=False)


@pytest.mark.parametrize(
    "text",
    [
        "Vespa Primavera Scooter Helmet",  # vespa, primavera: Italian words English writes too (loans)
        "Pesto Genovese Pasta Recipe",
    ],
)
def test_english_titles_with_loanwords_english_writes_stay_english(text):
    assert_english_only_with_setting(text, loan_margin=None)


@pytest.mark.parametrize(
    "text",
    [
        "Chemise Hilfiger homme manches longues",  # brand names with the product words of another language
        "Maglia Ferragamo uomo cotone",
        "Vestido Zara rojo largo",
        "Kinderwagen Bugaboo zwart tweedehands",
        "Bolsa Prada feminina preta",
        "Kinderfiets 16 inch met zijwieltjes",  # a lower-case unlisted word is no name
        "Tapis salon moderne",  # moderne: English writes it, but far less often than French (no loan)
        "Pull homme col roulé",
    ],
)
def test_foreign_titles_with_brand_names_are_still_dropped(text):
    (row,) = judge([text])
    assert row["reason"] == "language" and row["lang"] != "en", row


@pytest.mark.parametrize("text", ["Zapatos tacón alto negro", "Blusa Farm estampada manga longa"])
def test_foreign_titles_of_rarer_words_english_never_writes_are_dropped(text):
    """tacón, estampada: words below foreign_min_zipf in their lists (es, pt), absent from English's."""
    assert_foreign_only_with_setting(text, foreign_rare_max_en=None)


@pytest.mark.parametrize("text", ["Sac sport Puma homme grand format", "Sac voyage grand format cabine"])
def test_titles_of_cognates_with_one_foreign_word_and_no_english_one_are_foreign_titles(text):
    """sac, sport, grand, format make the English share; homme / voyage is French and no word is more English."""
    assert_foreign_only_with_setting(text, share_needs_english_word=False)


@pytest.mark.parametrize(
    "text",
    [
        "Portrait of Diego Rivera in Coyoacán",  # Coyoacán: a rarer Spanish word, capitalised beside English words
        "Mural of Frida Kahlo in Coyoacán",
    ],
)
def test_capitalised_rarer_foreign_words_in_english_captions_are_names(text):
    (row,) = judge([text])
    assert (row["reason"], row["lang"]) == (None, "en"), row


def test_capitalised_rarer_foreign_words_without_english_words_still_count():
    (row,) = judge(["Zapatos Tacón Alto Negro"])  # title case, no English function word: Tacón is Spanish
    assert row["reason"] == "language" and row["lang"] != "en", row


@pytest.mark.parametrize("text", ["VINTAGE DIE CAST FIRE TRUCK MODEL", "Open till late neon sign"])
def test_foreign_function_words_that_are_english_words_are_no_evidence_alone(text):
    """die, till: foreign_words the lexicon file marks as English too; alone they do not make a caption foreign."""
    (row,) = judge([text])
    assert (row["reason"], row["lang"]) == (None, "en"), row


@pytest.mark.parametrize("text", ["Die Kinder spielen im Garten", "Till sjöss med båten i skärgården"])
def test_those_words_still_count_beside_another_foreign_function_word(text):
    (row,) = judge([text])
    assert row["reason"] == "language" and row["lang"] != "en", row


@pytest.mark.parametrize("text", ["Quinoa Salad Bowl", "Bokeh Portrait Photography", "Pergola Patio Ideas"])
def test_borrowed_words_english_writes_are_not_rare_foreign_words(text):
    (row,) = judge([text])
    assert (row["reason"], row["lang"]) == (None, "en"), row


def test_a_wide_loan_margin_would_keep_a_title_case_foreign_title():
    text = "Sac Femme Cuir Noir"  # sac, femme, noir: French words English writes, far less often than French
    (row,) = judge([text])
    assert row["reason"] == "language" and row["lang"] != "en", row
    (wide,) = judge([text], _rules_without(loan_margin=3.5))  # they would be loans, then names
    assert (wide["reason"], wide["lang"]) == (None, "en"), wide


def test_names_are_judged_the_same_whatever_else_the_batch_holds():
    """A caption's decision must not depend on its batch (the engines batch differently): a caption mixing a
    Han word into Latin words (its Latin part is judged with the Han taken out) sits in the batch with the
    brand title."""
    title = "Hilfiger Denim Jacket Blue"
    (alone,) = judge([title])
    batch = judge(["Bolsa Prada 女 feminina preta", title, "Nike 运动鞋 Air Max 90 男款", "Pull homme col roulé"])
    assert (alone["reason"], alone["lang"]) == (None, "en"), alone
    assert (batch[1]["reason"], batch[1]["lang"]) == (None, "en"), batch[1]
    assert batch[3]["reason"] == "language", batch[3]
