"""LAION-like pair metadata with the noise real crawls have, for the demo and the benchmark.

Seeded and reproducible. Mix (approximate): English 55%, Chinese 18%, other languages 10% (German,
French, Spanish, Japanese, Korean, Russian), plus HTML and entities, URLs and e-mails in captions, emoji,
too-short and long SEO captions, extreme sizes, low CLIP scores, bad metadata and duplicate URLs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

EN_SUBJ = [
    "a brown dog",
    "two children",
    "an old red car",
    "a bowl of ramen",
    "the city skyline",
    "a wooden chair",
    "a young woman",
    "a mountain lake",
    "fresh strawberries",
    "a vintage camera",
    "a black cat",
    "a sailing boat",
    "a bride and groom",
    "modern kitchen interior",
    "a cup of coffee",
    "autumn leaves",
    "a golden retriever",
]
EN_VERB = ["sitting on", "running across", "next to", "in front of", "under", "on top of", "near", "inside"]
EN_OBJ = [
    "the beach at sunset",
    "a green meadow",
    "a busy street",
    "the kitchen table",
    "a snowy forest",
    "a white background",
    "the old bridge",
    "a wooden fence",
    "the river bank",
    "a market stall",
]
EN_TAIL = ["", "", " in high resolution", " stock photo", ", watercolor painting", " with soft light", " for sale"]
ZH = [
    "一只小狗在海滩上奔跑",
    "城市夜景灯火通明",
    "新鲜的草莓放在木桌上",
    "穿着红色裙子的女孩在公园里散步",
    "秋天的枫叶铺满了小路",
    "一碗热腾腾的牛肉面",
    "雪山下的湖泊非常美丽",
    "现代风格的客厅装修效果图",
    "一辆红色的老式汽车停在路边",
    "两个孩子在草地上玩耍",
    "传统的中国建筑和红色灯笼",
    "桌子上有一杯咖啡和一本书",
]
ZH_TAIL = ["", "", "，高清图片", "，摄影作品", "。", "，免费下载"]
OTHER = [
    "Ein brauner Hund läuft am Strand entlang",
    "Une tasse de café sur une table en bois",
    "Un perro marrón corriendo por la playa",
    "海辺を走る茶色の犬の写真です",
    "해변을 달리는 갈색 개 사진",
    "Коричневая собака бежит по пляжу",
    "Eine alte rote Straßenbahn fährt durch die Stadt",
    "La tour Eiffel illuminée pendant la nuit",
    "東京の夜景とネオンサイン",
]
EMOJI = [" 😀", " ❤️", " 🔥🔥", " 🇨🇳", " ✨"]
SEO = " buy cheap best price free shipping sale discount online store"


def generate(n: int, seed: int = 0, dup_rate: float = 0.05) -> pa.Table:
    """A LAION-layout table (URL, TEXT, WIDTH, HEIGHT, similarity) of n noisy rows."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(12, size=n, p=[0.44, 0.16, 0.10, 0.04, 0.04, 0.03, 0.03, 0.03, 0.02, 0.04, 0.04, 0.03])
    a, b, c, d = (rng.integers(0, 10_000, size=n) for _ in range(4))
    captions = []
    for i in range(n):
        k = kind[i]
        en = (
            f"{EN_SUBJ[a[i] % len(EN_SUBJ)].capitalize()} {EN_VERB[b[i] % len(EN_VERB)]} "
            f"{EN_OBJ[c[i] % len(EN_OBJ)]}{EN_TAIL[d[i] % len(EN_TAIL)]}"
        )
        if k == 0:
            cap = en
        elif k == 1:
            cap = ZH[a[i] % len(ZH)] + ZH_TAIL[b[i] % len(ZH_TAIL)]
        elif k == 2:
            cap = OTHER[a[i] % len(OTHER)]
        elif k == 3:
            cap = f"<p><b>{en}</b> &amp; more&nbsp;photos</p>"
        elif k == 4:
            cap = f"{en} see https://shop.example.com/item/{a[i]} or mail info@example.com IMG_{b[i]:04d}.JPG"
        elif k == 5:
            cap = en + EMOJI[a[i] % len(EMOJI)]
        elif k == 6:
            cap = ["nice", "photo 1", "", "   ", "IMG_2231.jpg"][a[i] % 5]
        elif k == 7:
            cap = en + (SEO * (5 + a[i] % 40))
        elif k == 8:
            cap = en + "!!!!!" + " Wow....."
        else:
            cap = en if b[i] % 3 else ZH[a[i] % len(ZH)]
        captions.append(cap)
    width = rng.integers(150, 2000, size=n).astype(np.float64)
    height = (width * rng.uniform(0.5, 1.6, size=n)).round()
    wide = kind == 9
    width[wide] = height[wide] * rng.uniform(3.2, 8.0, size=int(wide.sum()))
    small = kind == 10
    width[small] = rng.integers(16, 190, size=int(small.sum()))
    sim = rng.normal(0.32, 0.04, size=n)
    sim[kind == 11] = rng.uniform(0.05, 0.2, size=int((kind == 11).sum()))
    ids = np.arange(n)
    dup = rng.random(n) < dup_rate
    ids[dup] = rng.integers(0, n, size=int(dup.sum()))
    hosts = np.array(["img.example.com", "cdn.example.org", "photos.example.net", "static.example.cn"])
    urls = [f"https://{hosts[j % 4]}/images/{j:09d}.jpg" for j in ids]
    badmeta = rng.random(n) < 0.01
    for i in np.flatnonzero(badmeta).tolist():
        urls[i] = ["", "ftp://example.com/x.jpg", "not a url", "data:image/png;base64,AAAA"][i % 4]
    return pa.table(
        {"URL": urls, "TEXT": captions, "WIDTH": width.round(), "HEIGHT": height.round(), "similarity": sim}
    )
