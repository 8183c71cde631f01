"""The bundled model's parts on tiny sizes: tokens and loss masks at exact positions, the packed
stage-2 rows, the adapter and the 224 -> 448 position-embedding resize, bad samples, chat boxes."""

import json
import os
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qwenvl_data.model.adapter import Resampler, sincos_2d  # noqa: E402
from qwenvl_data.model.chat import pixel_boxes  # noqa: E402
from qwenvl_data.model.config import AdapterConfig, ModelConfig, load_config  # noqa: E402
from qwenvl_data.model.data import StageLoader  # noqa: E402
from qwenvl_data.model.fixtures import SAMPLE_TEXT, SYSTEM, train_tokenizer, write_stage_shards  # noqa: E402
from qwenvl_data.model.qwenvl import QwenVL  # noqa: E402
from qwenvl_data.model.tokenizer import IGNORE, SPECIAL_TOKENS, TextEncoder, load_tokenizer  # noqa: E402
from qwenvl_data.shards import ShardWriter, iter_tar_samples  # noqa: E402


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    d = train_tokenizer(SAMPLE_TEXT * 20, tmp_path_factory.mktemp("tok"), 400)
    return TextEncoder(load_tokenizer(d))


def labelled_spans(ids, labels):
    """Contiguous runs of labelled positions -> [(start, ids)]."""
    spans, start = [], None
    for i, lab in enumerate(list(labels) + [IGNORE]):
        if lab != IGNORE and start is None:
            start = i
        elif lab == IGNORE and start is not None:
            spans.append((start, list(ids[start:i])))
            start = None
    return spans


def test_special_tokens_added_whole(encoder):
    vocab = encoder.tok.get_vocab()
    for t in SPECIAL_TOKENS:
        assert t in vocab
        assert encoder.tok(t, add_special_tokens=False)["input_ids"] == [vocab[t]]


def test_caption_loss_mask_exact_positions(encoder):
    prompt, target = "Generate the caption in English:", " a red circle on a blue background"
    ids, labels, refs = encoder.encode(
        [{"text": f"<img>img0.jpg</img>{prompt}", "loss": False}, {"text": target, "loss": True}], append_eot=True
    )
    assert refs == ["img0.jpg"]
    n_prompt = len(encoder.tok(prompt, add_special_tokens=False)["input_ids"])
    first = 1 + 256 + 1 + n_prompt
    assert ids[0] == encoder.img and ids[257] == encoder.img_end
    assert (ids[1:257] == encoder.pad_img).all()
    assert (labels[:first] == IGNORE).all()
    assert (labels[first:] == ids[first:]).all()
    assert ids[-1] == encoder.eot and labels[-1] == encoder.eot
    assert encoder.decode(ids[first:]) == target + "<|endoftext|>"


def test_chat_loss_mask_multi_turn(encoder):
    segs = [
        {"text": SYSTEM, "loss": False},
        {
            "text": "<|im_start|>user\nPicture 1: <img>img0.jpg</img>\nPicture 2: <img>img1.jpg</img>\n"
            "What is shown?<|im_end|>\n",
            "loss": False,
        },
        {"text": "<|im_start|>assistant\n", "loss": False},
        {"text": "a red circle<|im_end|>", "loss": True},
        {"text": "\n", "loss": False},
        {"text": "<|im_start|>user\nAnd the next picture?<|im_end|>\n", "loss": False},
        {"text": "<|im_start|>assistant\n", "loss": False},
        {"text": "a blue square<|im_end|>", "loss": True},
        {"text": "\n", "loss": False},
    ]
    ids, labels, refs = encoder.encode(segs, append_eot=False)
    assert refs == ["img0.jpg", "img1.jpg"]
    assert (ids == encoder.pad_img).sum() == 512
    spans = labelled_spans(ids, labels)
    assert [encoder.decode(s) for _, s in spans] == ["a red circle<|im_end|>", "a blue square<|im_end|>"]
    for start, _ in spans:  # each answer starts right after "<|im_start|>assistant\n"
        assert encoder.decode(ids[:start]).endswith("<|im_start|>assistant\n")
    assert ids[-1] != encoder.eot and labels[-1] == IGNORE  # the trailing newline carries no loss


def test_packed_stage2_rows_exact(encoder, tmp_path):
    write_stage_shards(tmp_path, 2, 16)
    samples = {k: json.loads(f["json"]) for tar in sorted(tmp_path.glob("*.tar")) for k, f in iter_tar_samples(tar)}
    loader = StageLoader(tmp_path, encoder, 2, 56, 700, batch_size=3, shuffle_buffer=16)
    seen, packed_rows = 0, 0
    for batch, _ in loader.batches():
        assert batch["input_ids"].shape[1] == 700
        n_pads = int((batch["input_ids"] == encoder.pad_img).sum())
        assert n_pads == 256 * batch["images"].shape[0]
        for r, keys in enumerate(batch["keys"]):
            metas = [samples[k.rsplit(":", 1)[1]] for k in keys]
            assert len({m["task"] for m in metas}) == 1  # same-task packing
            packed_rows += len(keys) > 1
            pos = 0
            for m in metas:
                ids, labels, _ = encoder.encode(m["segments"], append_eot=True)
                assert (batch["input_ids"][r, pos : pos + len(ids)].numpy() == ids).all()
                assert (batch["labels"][r, pos : pos + len(ids)].numpy() == labels).all()
                span = labelled_spans(ids, labels)
                assert len(span) == 1 and encoder.decode(span[0][1]) == m["segments"][1]["text"] + "<|endoftext|>"
                pos += len(ids)
            assert (batch["labels"][r, pos:] == IGNORE).all() and (batch["input_ids"][r, pos:] == encoder.eot).all()
            seen += len(keys)
        if seen >= 16:
            break
    assert seen == 16 and packed_rows > 0


def _caption_sample():
    """A valid stage-1 caption sample json and its JPEG."""
    import random

    from qwenvl_data.model.fixtures import draw_scene

    good = {
        "schema": "train",
        "stage": 1,
        "task": "caption",
        "segments": [
            {"text": "<img>img0.jpg</img>Generate the caption in English:", "loss": False},
            {"text": " a red circle", "loss": True},
        ],
    }
    return good, draw_scene(random.Random(0))[0]


def test_bad_samples_counted_good_ones_kept(encoder, tmp_path):
    # a shard from elsewhere (our ShardWriter refuses mixed member sets), written with tarfile
    import io
    import tarfile

    good, jpg = _caption_sample()
    text = json.dumps(good).encode()
    members = [
        ("ok1.img0.jpg", jpg),
        ("ok1.json", text),
        ("noimage.json", text),
        ("badjson.img0.jpg", jpg),
        ("badjson.json", b"{not json"),
        ("badjpeg.img0.jpg", b"\xff\xd8garbage"),
        ("badjpeg.json", text),
        ("notarget.img0.jpg", jpg),
        ("notarget.json", json.dumps({**good, "segments": good["segments"][:1]}).encode()),
        ("ok2.img0.jpg", jpg),
        ("ok2.json", text),
    ]
    with tarfile.open(tmp_path / "stage1-000000.tar", "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    loader = StageLoader(tmp_path, encoder, 1, 56, 512, batch_size=8, shuffle_buffer=1)
    batch, _ = next(loader.batches())
    assert batch["samples"] == 2
    assert batch["rejected"] == {"missing_image": 1, "bad_json": 1, "bad_image": 1, "no_target": 1}


def test_adapter_and_position_resize():
    pos = sincos_2d(64, 16)
    assert pos.shape == (256, 64) and np.allclose(pos[0, :16], 0) and np.allclose(pos[0, 16:32], 1)
    adapter = Resampler(AdapterConfig(num_queries=256, heads=4, query_grid=16), vision_width=32, out_width=64)
    for grid in (16, 32):
        assert adapter(torch.randn(2, grid * grid, 32)).shape == (2, 256, 64)

    cfg = load_config("tiny")
    m224 = QwenVL(cfg, 224, 500, 3)
    m448 = QwenVL(cfg, 448, 500, 3)
    m448.load_checkpoint_state(m224.state_dict())
    old, new = m224.visual.positional_embedding.detach(), m448.visual.positional_embedding.detach()
    assert new.shape == (32 * 32 + 1, 64) and torch.equal(new[0], old[0])
    grid = old[1:].reshape(1, 16, 16, -1).permute(0, 3, 1, 2)
    expect = F.interpolate(grid, size=(32, 32), mode="bicubic", align_corners=False, antialias=True)
    assert torch.allclose(new[1:], expect.permute(0, 2, 3, 1).reshape(1024, -1), atol=1e-6)
    assert torch.equal(m448.llm.model.embed_tokens.weight, m224.llm.model.embed_tokens.weight)


def _attention(adapter: Resampler, patches: torch.Tensor) -> torch.Tensor:
    """(N, heads, queries, keys) cross-attention weights of the adapter on these patch tokens."""
    import math

    from qwenvl_data.model.adapter import resize_grid

    kv = adapter.ln_kv(adapter.kv_proj(patches))
    k = kv + resize_grid(adapter.pos_embed, int(math.isqrt(patches.shape[1])))
    q = (adapter.ln_q(adapter.query) + adapter.pos_embed).unsqueeze(0).expand(len(patches), -1, -1)
    return adapter.attn(q, k, kv, need_weights=True, average_attn_weights=False)[1]


def test_local_adapter_init_pools_each_querys_own_cell():
    torch.manual_seed(0)
    patches = torch.randn(1, 1, 48).expand(2, 64, 48) + 0.3 * torch.randn(2, 64, 48)  # a plain background
    random = Resampler(AdapterConfig(num_queries=36, heads=4, query_grid=6), 48, 128)
    local = Resampler(AdapterConfig(num_queries=36, heads=4, query_grid=6, init="local"), 48, 128)
    with torch.no_grad():
        w_random, w_local = _attention(random, patches), _attention(local, patches)

    def entropy(w):
        return float(-(w * w.clamp_min(1e-12).log()).sum(-1).mean())

    assert entropy(w_random) > 0.95 * np.log(64)  # Qwen-VL's start: close to uniform, every query the same
    assert entropy(w_local) < 0.65 * np.log(64)
    # every query's strongest key lies in its own cell of the 6x6 grid mapped onto the 8x8 patch grid
    best = w_local.mean(1)[0].argmax(-1)
    for qi in range(36):
        qy, qx = divmod(qi, 6)
        ky, kx = divmod(int(best[qi]), 8)
        assert abs((ky + 0.5) * 6 / 8 - (qy + 0.5)) <= 1.0 and abs((kx + 0.5) * 6 / 8 - (qx + 0.5)) <= 1.0, qi
    out = local(patches)
    assert out.shape == (2, 36, 128) and out[0].std(0).mean() > 3 * random(patches)[0].std(0).mean()
    with pytest.raises(ValueError, match="adapter init"):
        Resampler(AdapterConfig(num_queries=36, heads=4, query_grid=6, init="lcoal"), 48, 128)
    with pytest.raises(ValueError, match="divisible by 4 x heads"):
        Resampler(AdapterConfig(num_queries=36, heads=6, query_grid=6, init="local"), 48, 132)


def test_centred_adapter_outputs_cannot_collapse_to_one_token():
    torch.manual_seed(0)
    patches = torch.randn(3, 64, 48)
    plain = Resampler(AdapterConfig(num_queries=36, heads=4, query_grid=6, init="local"), 48, 128)
    centred = Resampler(AdapterConfig(num_queries=36, heads=4, query_grid=6, init="local", center=True), 48, 128)
    centred.load_state_dict(plain.state_dict())
    with torch.no_grad():
        a, b = plain(patches), centred(patches)
        # the same weights: centring takes each image's mean token off its tokens and changes nothing else
        assert torch.allclose(b, a - a.mean(1, keepdim=True), atol=1e-5)
        assert b.mean(1).abs().max() < 1e-5 and a.mean(1).abs().max() > 0.1
        # the collapse a scratch model trains into (every token one large constant vector, made here by
        # a final LayerNorm that ignores its input) reaches the LLM as that constant, and centred as nothing
        bias = torch.randn(128)
        for m in (plain, centred):
            m.ln_post.weight.zero_()
            m.ln_post.bias.copy_(bias)
        collapsed, kept = plain(patches), centred(patches)
    assert collapsed.norm(dim=-1).mean() > 10 and (collapsed - collapsed[:, :1]).norm(dim=-1).max() < 1e-3 * 10
    assert kept.norm(dim=-1).max() < 1e-3
    cfg = load_config("tiny").to_dict()
    cfg["adapter"].update(init="local", center=True)
    model = QwenVL(ModelConfig.from_dict(cfg), 56, 500, 3)
    assert model.adapter.center and ModelConfig.from_dict(model.cfg.to_dict()).adapter.center


def test_sincos_vit_positions():
    from qwenvl_data.errors import UsageError
    from qwenvl_data.model.config import VisionConfig
    from qwenvl_data.model.vision import build_vision_tower

    torch.manual_seed(0)
    cfg = VisionConfig(width=64, layers=1, head_width=16, mlp_ratio=2.0, patch_size=14)
    plain = build_vision_tower(cfg, 112)
    sincos = build_vision_tower(VisionConfig(**{**cfg.__dict__, "pos_init": "sincos"}), 112)
    pe = sincos.positional_embedding.detach()
    assert torch.allclose(pe[1:], torch.from_numpy(sincos_2d(64, 8)))
    assert not torch.allclose(plain.positional_embedding.detach()[1:], pe[1:])
    assert sincos.positional_embedding.requires_grad  # a start, still trained
    with pytest.raises(UsageError, match="pos_init"):
        build_vision_tower(VisionConfig(**{**cfg.__dict__, "pos_init": "learned"}), 112)


def test_fixture_tokenizer_splits_digits(encoder):
    # Qwen's tokenizer splits numbers into single digits; the fixture BPE must too, or a box coordinate
    # becomes 1-3 tokens depending on which digit pairs happened to merge
    pieces = encoder.tok.tokenize("(205,535),(544,875) 1998 2024")
    digits = [p for p in pieces if any(c.isdigit() for c in p)]
    assert digits and all(len(p.strip("Ġ")) == 1 for p in digits), pieces


def test_paper_config_sizes():
    with torch.device("meta"):
        m = QwenVL(load_config("qwenvl-7b"), 448, 151_851, 0)
    vit = sum(p.numel() for p in m.visual.parameters()) / 1e9
    llm = sum(p.numel() for p in m.llm.parameters()) / 1e9
    assert 1.8 < vit < 1.95 and 7.6 < llm < 7.8  # Table 1: ViT-bigG 1.9B, Qwen-7B 7.7B


def test_chat_boxes_back_to_pixels():
    boxes = pixel_boxes("the <ref>circle</ref><box>(100,200),(500,600)</box>", 200, 100)
    assert boxes == [{"ref": "circle", "box": [20.0, 20.0, 100.0, 60.0]}]


def test_rejects_of_an_all_rejected_batch_are_not_lost(encoder, tmp_path):
    good, jpg = _caption_sample()
    with ShardWriter(tmp_path, 0, "stage1") as w:
        w.add("ok1", {"img0.jpg": jpg, "json": good})
        w.add("bad1", {"img0.jpg": jpg, "json": "{not json"})
        w.add("bad2", {"img0.jpg": jpg, "json": "{not json"})
        w.close()
    loader = StageLoader(tmp_path, encoder, 1, 56, 512, batch_size=1, shuffle_buffer=1)
    stream = loader.batches()
    # epoch 1: [ok1] then a batch of only rejects at the end of the stream; its counts must reach the caller
    first, _ = next(stream)
    second, _ = next(stream)
    assert first["samples"] == second["samples"] == 1
    total = {}
    for b in (first, second):
        for k, v in b["rejected"].items():
            total[k] = total.get(k, 0) + v
    assert total == {"bad_json": 2}


@pytest.mark.parametrize("workers", [0, 1])
def test_no_usable_sample_is_one_line_also_from_a_loader_worker(encoder, tmp_path, workers):
    # e.g. `qwenvl-train --data out/ocr` (task shards, not training shards): every sample is rejected; from a
    # DataLoader worker torch re-raises the error with the worker's traceback in its message
    from qwenvl_data.errors import UsageError

    _, jpg = _caption_sample()
    with ShardWriter(tmp_path, 0, "stage1") as w:
        for i in range(3):
            w.add(f"bad{i}", {"img0.jpg": jpg, "json": "{not json"})
        w.close()
    loader = StageLoader(tmp_path, encoder, 1, 56, 512, batch_size=1, workers=workers, shuffle_buffer=1)
    with pytest.raises(UsageError) as e:
        for _ in loader.batches():
            pass
    message = str(e.value)
    assert "\n" not in message and message.startswith("no usable training samples for worker 0 of rank 0")
    assert "{'bad_json': 3}" in message


def test_loss_on_labelled_positions_equals_the_full_causal_lm_loss():
    cfg = load_config("tiny")
    model = QwenVL(cfg, 56, 500, 3)
    q = cfg.adapter.num_queries
    ids = torch.randint(4, 500, (2, q + 40))
    ids[:, :q] = 3
    labels = ids.masked_fill(ids == 3, -100)
    labels[0, q + 5 : q + 15] = -100
    images = torch.rand(2, 3, 56, 56)
    ours = model(ids, images, labels)
    full = model.llm(inputs_embeds=model.embed(ids, images), labels=labels, use_cache=False).loss
    assert torch.allclose(ours, full, atol=1e-5), (ours.item(), full.item())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"adapter": {"init": "lcoal"}}, "adapter.init must be 'random' or 'local', got 'lcoal'"),
        ({"vision": {"pos_init": "learned"}}, "vision.pos_init must be 'random' or 'sincos'"),
        ({"adapter": {"heads": 3}}, "adapter.heads 3 must divide the LLM width 64"),
        ({"adapter": {"num_queries": 60}}, "adapter.num_queries 60 must be query_grid**2"),
        ({"adapter": {"heads": 32, "init": "local"}}, "divisible by 4 x adapter.heads 32"),
        ({"adapter": {"center": "yes"}}, "adapter.center must be true or false, got 'yes'"),
    ],
)
def test_bad_model_config_is_one_usage_error(change, message):
    from qwenvl_data.errors import UsageError
    from qwenvl_data.model.config import ModelConfig

    d = load_config("tiny").to_dict()
    for part, fields in change.items():
        d[part].update(fields)
    with pytest.raises(UsageError, match=re.escape(message)):
        ModelConfig.from_dict(d)
