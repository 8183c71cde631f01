"""clip-score end to end on a local Ray with a tiny random open_clip model saved as a checkpoint and
loaded through the same path real weights take; thresholds are chosen so each rule is observable."""

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from qwenvl_data import clip
from qwenvl_data.images import decode_rgb
from qwenvl_data.pipelines import cli
from qwenvl_data.pipelines.clip_thresholds import apply_thresholds
from qwenvl_data.schema import first_error
from qwenvl_data.shards import ShardWriter, iter_tar_samples


def jpeg(seed, w=96, h=80):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


# (source, lang) per sample; sample 5 has a corrupt image.
LAYOUT = [("laion", "en")] * 6 + [("laion", "zh")] * 3 + [("coco", "en")] * 3
CAPTIONS = [
    "a red car",
    "two dogs",
    "a bowl of soup",
    "mountains at dusk",
    "a city street",
    "an old map",
    "一只猫",
    "红色的花",
    "城市夜景",
    "a man riding a horse",
    "a plate of food",
    "a train station",
]


@pytest.fixture(scope="module")
def ray_session():
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, object_store_memory=200 * 1024 * 1024, include_dashboard=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def download_dir(tmp_path_factory):
    """A download-shaped directory: 000000.tar + sidecar parquet with status, two shards."""
    root = tmp_path_factory.mktemp("clipin")
    images = {}
    for shard, idx in ((0, range(0, 7)), (1, range(7, 12))):
        with ShardWriter(root / "dl", shard, prefix="") as w:
            for i in idx:
                key = f"{shard:06d}{i:04d}"
                source, lang = LAYOUT[i]
                data = jpeg(i)[:300] if i == 5 else jpeg(i)
                images[f"u{i}"] = data
                meta = {
                    "schema": "sample",
                    "uid": f"u{i}",
                    "source": source,
                    "lang": lang,
                    "caption": CAPTIONS[i],
                    "width": 96,
                    "height": 80,
                    "original_width": 96,
                    "original_height": 80,
                    "sha256": "0" * 64,
                    "status": "success",
                    "key": key,
                }
                w.add(key, {"jpg": data, "txt": CAPTIONS[i], "json": meta}, {"key": key, "status": "success"})
            w.close()
    ckpt = clip.save_random_checkpoint(clip.TINY, root / "tiny.pt", seed=0)
    clip.save_random_checkpoint(clip.TINY, root / "tiny_zh.pt", seed=1)  # the "Chinese" model
    return root / "dl", ckpt, images


def run_clip(tmp, download_dir, thresholds: str):
    dl, ckpt, _ = download_dir
    cfg = tmp / "clip.yaml"
    cfg.write_text(
        f"clip_score:\n  batch_size: 4\n  read_batch: 3\n  thresholds: {thresholds}\n"
        f"  zh_model: {clip.TINY}\n  zh_checkpoint: {ckpt.parent / 'tiny_zh.pt'}\n"
    )
    code = cli.main(
        [
            "clip-score",
            "--input",
            str(dl),
            "--output",
            str(tmp / "clip"),
            "--model",
            clip.TINY,
            "--checkpoint",
            str(ckpt),
            "--config",
            str(cfg),
        ]
    )
    assert code == 0
    scores = pq.read_table(tmp / "clip" / "scores.parquet")
    samples = {
        json.loads(f["json"])["uid"]: json.loads(f["json"])
        for t in sorted((tmp / "clip").glob("*.tar"))
        for _, f in iter_tar_samples(t)
    }
    return scores, samples


THRESHOLDS = '{default: "q0.5", by_lang: {}, by_source: {laion: {zh: 2.0}, coco: null}}'


@pytest.fixture(scope="module")
def first_run(ray_session, download_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clipout")
    scores, samples = run_clip(tmp, download_dir, THRESHOLDS)
    return tmp, scores, samples


def test_scores_thresholds_and_kept_shards(first_run):
    tmp_path, scores, samples = first_run
    rows = {r["uid"]: r for r in scores.to_pylist()}
    assert len(rows) == 12 and first_error("clip_score", rows["u0"]) is None
    assert rows["u5"]["reason"] == "decode_error" and rows["u5"]["clip_score"] is None
    # laion/en: the lowest half of the five valid scores goes (q0.5 = the median stays)
    en = sorted(rows[f"u{i}"]["clip_score"] for i in (0, 1, 2, 3, 4))
    assert [rows[f"u{i}"]["kept"] for i in (0, 1, 2, 3, 4)] == [rows[f"u{i}"]["clip_score"] >= en[2] for i in range(5)]
    assert sum(rows[f"u{i}"]["reason"] == "clip_score" for i in range(5)) == 2
    assert all(rows[f"u{i}"]["reason"] == "clip_score" for i in (6, 7, 8))  # laion/zh: cut above 1
    assert all(rows[f"u{i}"]["kept"] and rows[f"u{i}"]["threshold"] is None for i in (9, 10, 11))  # coco: no rule
    kept = {u for u, r in rows.items() if r["kept"]}
    assert set(samples) == kept and len(kept) + sum(not r["kept"] for r in rows.values()) == 12
    for uid, meta in samples.items():
        assert first_error("sample", meta) is None
        assert meta["clip_score"] == pytest.approx(rows[uid]["clip_score"], abs=1e-5)
        assert meta["clip_model"] == f"{clip.TINY}@tiny.pt"
    summary = json.loads((tmp_path / "clip" / "clip.json").read_text())
    assert summary["in"] == 12 and summary["kept"] == len(kept)
    assert summary["sources"]["laion"]["dropped"] == {"clip_score": 5, "decode_error": 1}


def test_pipeline_scores_equal_direct_model_scores(first_run, download_dir):
    _, ckpt, images = download_dir
    _, scores, _ = first_run
    pp = clip.image_preprocess(clip.TINY)
    got = dict(zip(scores["uid"].to_pylist(), scores["clip_score"].to_pylist()))
    # English and Chinese captions are scored by their own model (zh_model), each checked directly.
    for weights, idx in (("tiny.pt", [0, 1, 2, 3, 4, 9, 10, 11]), ("tiny_zh.pt", [6, 7, 8])):
        scorer = clip.ClipScorer(clip.TINY, str(ckpt.parent / weights))
        pixels = np.stack([pp(decode_rgb(images[f"u{i}"], None)).numpy() for i in idx])
        direct = scorer.scores(pixels, [CAPTIONS[i] for i in idx])
        np.testing.assert_allclose([got[f"u{i}"] for i in idx], direct, atol=2e-3)  # pixels travel as float16


def test_rethreshold_reuses_scores_and_rewrites_changed_shards(first_run, download_dir):
    tmp_path, first, _ = first_run
    before = (tmp_path / "clip" / "000001.tar").stat().st_mtime_ns
    second, samples = run_clip(tmp_path, download_dir, "{default: -2.0, by_lang: {zh: -2.0}, by_source: {laion: -2.0}}")
    assert first["clip_score"].to_pylist() == second["clip_score"].to_pylist()
    assert set(samples) == {f"u{i}" for i in range(12) if i != 5}
    assert second["kept"].to_pylist().count(True) == 11
    assert samples["u6"]["clip_model"].endswith("@tiny_zh.pt") and samples["u0"]["clip_model"].endswith("@tiny.pt")
    # The same thresholds again: nothing changes, so no shard is rewritten.
    again, _ = run_clip(tmp_path, download_dir, "{default: -2.0, by_lang: {zh: -2.0}, by_source: {laion: -2.0}}")
    assert again["kept"].to_pylist() == second["kept"].to_pylist()
    mtime = (tmp_path / "clip" / "000001.tar").stat().st_mtime_ns
    assert mtime != before
    run_clip(tmp_path, download_dir, "{default: -2.0, by_lang: {zh: -2.0}, by_source: {laion: -2.0}}")
    assert (tmp_path / "clip" / "000001.tar").stat().st_mtime_ns == mtime


def test_apply_thresholds_lookup_order():
    t = pa.table(
        {
            "source": ["a", "a", "b", "b", "c"],
            "lang": ["en", "zh", "en", "zh", "en"],
            "clip_score": pa.array([0.3, 0.3, 0.3, 0.3, None], pa.float32()),
            "error": pa.array([None, None, None, None, "no_caption"], pa.string()),
        }
    )
    cfg = {"default": 0.1, "by_lang": {"zh": 0.5}, "by_source": {"a": {"en": 0.2}, "b": 0.4}}
    out = apply_thresholds(t, cfg)
    assert out["threshold"].to_pylist() == pytest.approx([0.2, 0.5, 0.4, 0.4, 0.1])
    assert out["reason"].to_pylist() == [None, "clip_score", "clip_score", "clip_score", "no_caption"]
    assert out["kept"].to_pylist() == [True, False, False, False, False]


def test_usage_errors_are_one_line(download_dir, tmp_path, capsys):
    dl, ckpt, _ = download_dir
    assert cli.main(["clip-score", "--input", str(dl), "--output", str(tmp_path), "--model", clip.TINY]) == 2
    assert (
        cli.main(
            [
                "clip-score",
                "--input",
                str(dl),
                "--output",
                str(tmp_path),
                "--model",
                "hf-hub:x/y",
                "--checkpoint",
                str(ckpt),
            ]
        )
        == 2
    )
    assert (
        cli.main(
            ["clip-score", "--input", str(tmp_path / "none"), "--output", str(tmp_path), "--checkpoint", str(ckpt)]
        )
        == 2
    )
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "000000.tar").write_bytes(b"not a tar at all" * 100)
    assert (
        cli.main(
            [
                "clip-score",
                "--input",
                str(bad),
                "--output",
                str(tmp_path / "o"),
                "--model",
                clip.TINY,
                "--checkpoint",
                str(ckpt),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and "--checkpoint" in err[0] and "would download" in err[1] and "not a directory" in err[2]
    assert "000000.tar: not a readable tar shard" in err[3]
