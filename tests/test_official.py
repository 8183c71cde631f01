"""Our data held against the official Qwen-VL code (QwenLM/Qwen-VL finetune.py, eval_mm/, and the
Qwen-VL-Chat tokenization_qwen.py), with the expected values written out by hand here.

- Special tokens: one ordered list; on a Qwen-sized base vocabulary the ids are the official ones.
- Stage-3 loss mask: the official `preprocess` mask, position by position; the older answers-only mask.
- Conversation edges: a leading assistant turn dropped, a trailing user turn kept, as `preprocess` does.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qwenvl_data import formats, vocab  # noqa: E402
from qwenvl_data.model import tokenizer as model_tokenizer  # noqa: E402
from qwenvl_data.model.fixtures import SAMPLE_TEXT, train_tokenizer  # noqa: E402
from qwenvl_data.model.tokenizer import IGNORE, TextEncoder, load_tokenizer, official_ids  # noqa: E402
from qwenvl_data.tasks.common import Reject  # noqa: E402
from qwenvl_data.tasks.training import build_stage3, scan_sft  # noqa: E402

L, M = True, False  # a labelled (supervised) position / a masked one
IMAGE = object()  # `<img>` + 256 `<imgpad>` + `</img>` (never labelled)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return TextEncoder(load_tokenizer(train_tokenizer(SAMPLE_TEXT * 20, tmp_path_factory.mktemp("tok"), 400)))


def test_one_list_of_special_tokens_in_the_official_order():
    assert formats.SPECIAL_TOKENS is vocab.SPECIAL_TOKENS and model_tokenizer.SPECIAL_TOKENS is vocab.SPECIAL_TOKENS
    t = vocab.SPECIAL_TOKENS
    assert len(t) == 3 + 205 + 9
    assert t[:4] == ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|extra_0|>") and t[207] == "<|extra_204|>"
    assert t[208:] == ("<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>", "<img>", "</img>", "<imgpad>")


def qwen_sized(tmp_path, added=()):
    """A byte-level BPE padded to Qwen's 151643 base tokens (stands in for a Qwen tokenizer), with
    `added` special tokens after them as a Qwen2 tokenizer.json holds its ChatML tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    base = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    base.update({f"Q{i}": i for i in range(len(base), 151643)})
    bpe = Tokenizer(models.BPE(vocab=base, merges=[]))
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    bpe.add_special_tokens(list(added))
    PreTrainedTokenizerFast(tokenizer_object=bpe).save_pretrained(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("added", [(), ("<|endoftext|>", "<|im_start|>", "<|im_end|>")])
def test_qwen_sized_base_vocabulary_gets_the_official_ids(tmp_path, added):
    tok = load_tokenizer(qwen_sized(tmp_path, added))
    ids = {
        t: tok.convert_tokens_to_ids(t)
        for t in (
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "<|extra_0|>",
            "<|extra_204|>",
            "<ref>",
            "</ref>",
            "<box>",
            "</box>",
            "<quad>",
            "</quad>",
            "<img>",
            "</img>",
            "<imgpad>",
        )
    }
    assert ids == {
        "<|endoftext|>": 151643,
        "<|im_start|>": 151644,
        "<|im_end|>": 151645,
        "<|extra_0|>": 151646,
        "<|extra_204|>": 151850,
        "<ref>": 151851,
        "</ref>": 151852,
        "<box>": 151853,
        "</box>": 151854,
        "<quad>": 151855,
        "</quad>": 151856,
        "<img>": 151857,
        "</img>": 151858,
        "<imgpad>": 151859,
    }
    assert official_ids(tok) and len(tok) == 151860
    assert tok("<img>", add_special_tokens=False)["input_ids"] == [151857]


def test_a_qwen_vocabulary_with_other_tokens_after_im_end_warns(tmp_path):
    with pytest.warns(UserWarning, match="not at their official ids"):
        tok = load_tokenizer(qwen_sized(tmp_path, ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|box_start|>")))
    assert tok.convert_tokens_to_ids("<|extra_0|>") == 151647  # after Qwen2.5's own token at 151646


def test_small_tokenizer_keeps_the_relative_order(encoder):
    ids = [encoder.tok.convert_tokens_to_ids(t) for t in vocab.SPECIAL_TOKENS]
    assert ids == list(range(ids[0], ids[0] + 217)) and ids[0] == 400  # appended after the 400 BPE tokens
    assert not official_ids(encoder.tok)
    assert (encoder.eot, encoder.im_end, encoder.img, encoder.img_end, encoder.pad_img) == (400, 402, 614, 615, 616)


def expected(encoder, pieces):
    """(ids, labels) of hand-written (piece, labelled) pairs, each piece tokenized on its own as
    `preprocess` does (role, "\\n", content, <|im_end|>, "\\n")."""
    ids, labels = [], []
    for piece, lab in pieces:
        if piece is IMAGE:
            chunk = [encoder.img] + [encoder.pad_img] * 256 + [encoder.img_end]
        else:
            chunk = encoder.tok(piece, add_special_tokens=False)["input_ids"]
        ids += chunk
        labels += chunk if lab else [IGNORE] * len(chunk)
    return ids, labels


TURNS = [
    ("user", "Picture 1: <img>img0.jpg</img>\nWhat is it?"),
    ("assistant", "A cat."),
    ("user", "Where is it?"),
    ("assistant", "<ref>the cat</ref><box>(1,2),(3,4)</box>"),
]


def test_stage3_official_mask_position_by_position(encoder):
    hand = [
        ("<|im_start|>", L),
        ("system", M),
        ("\n", M),
        ("You are a helpful assistant.", M),
        ("<|im_end|>", L),
        ("\n", L),
        ("<|im_start|>", L),
        ("user", M),
        ("\n", M),
        ("Picture 1: ", M),
        (IMAGE, M),
        ("\nWhat is it?", M),
        ("<|im_end|>", L),
        ("\n", L),
        ("<|im_start|>", L),
        ("assistant", M),
        ("\n", M),
        ("A cat.", L),
        ("<|im_end|>", L),
        ("\n", L),
        ("<|im_start|>", L),
        ("user", M),
        ("\n", M),
        ("Where is it?", M),
        ("<|im_end|>", L),
        ("\n", L),
        ("<|im_start|>", L),
        ("assistant", M),
        ("\n", M),
        ("<ref>the cat</ref><box>(1,2),(3,4)</box>", L),
        ("<|im_end|>", L),
        ("\n", L),
    ]
    want_ids, want_labels = expected(encoder, hand)
    ids, labels, refs = encoder.encode(formats.chat_segments(TURNS), append_eot=False)
    assert refs == ["img0.jpg"]
    assert ids.tolist() == want_ids
    for pos, (got, want) in enumerate(zip(labels.tolist(), want_labels)):
        assert got == want, f"position {pos}: label {got}, expected {want}"
    # the opening of the system turn, literally: <|im_start|> labelled, "system\n" + content masked
    n_sys = len(encoder.tok("system\nYou are a helpful assistant.", add_special_tokens=False)["input_ids"])
    assert labels[0] == 401 and (labels[1 : 1 + n_sys] == IGNORE).all() and labels[1 + n_sys] == 402


def test_official_mask_labels_7_more_tokens_for_one_exchange_and_5_per_further(encoder):
    """Counted after the one-position shift of next-token prediction (position 0 never is a target)."""

    def targets(turns, mask):
        _, labels, _ = encoder.encode(formats.chat_segments(turns, mask=mask), append_eot=False)
        return int((labels[1:] != IGNORE).sum())

    one, two = TURNS[:2], TURNS
    assert targets(one, "official") - targets(one, "answers") == 7
    assert targets(two, "official") - targets(two, "answers") == 7 + 5
    answers = formats.chat_segments(one, mask="answers")
    assert [s for s in answers if s["loss"]] == [{"text": "A cat.<|im_end|>", "loss": True}]


def _jpg(path):
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)


def test_conversation_edges_as_preprocess(tmp_path, encoder):
    _jpg(tmp_path / "a.jpg")
    _jpg(tmp_path / "b.jpg")
    data = [
        {
            "id": "leading",
            "conversations": [  # preprocess drops the first turn when it is not the user's
                {"from": "assistant", "value": "Picture 1: <img>b.jpg</img>\nHello!"},
                {"from": "user", "value": "Picture 1: <img>a.jpg</img>\nWhat?"},
                {"from": "assistant", "value": "A red square."},
            ],
        },
        {
            "id": "trailing",
            "conversations": [  # ... and keeps a conversation that ends with the user
                {"from": "user", "value": "Hi"},
                {"from": "assistant", "value": "Hello."},
                {"from": "user", "value": "Bye"},
            ],
        },
        {
            "id": "two-leading",
            "conversations": [  # only the first turn goes, as source[1:] does
                {"from": "assistant", "value": "One."},
                {"from": "assistant", "value": "Two."},
                {"from": "user", "value": "Three?"},
                {"from": "assistant", "value": "Four."},
            ],
        },
        {"id": "answerless", "conversations": [{"from": "assistant", "value": "Only me."}]},
        {"id": "question", "conversations": [{"from": "user", "value": "Anyone?"}]},
    ]
    (tmp_path / "sft.json").write_text(json.dumps(data))
    items = list(scan_sft(tmp_path / "sft.json"))
    assert [(i.uid, i.reason) for i in items if isinstance(i, Reject)] == [
        ("sft:answerless", "no_assistant_turn"),
        ("sft:question", "no_assistant_turn"),
    ]
    built = {r.uid: build_stage3(r, {}, formats.DEFAULT_SYSTEM, 0.0) for r in items if not isinstance(r, Reject)}
    leading, members = built["sft:leading"]
    assert leading["images"] == ["img0.jpg"] and list(members) == ["img0.jpg"]
    assert members["img0.jpg"] == (tmp_path / "a.jpg").read_bytes()
    assert formats.chat_turns("".join(s["text"] for s in leading["segments"])) == (
        formats.DEFAULT_SYSTEM,
        [("user", "Picture 1: <img>img0.jpg</img>\nWhat?"), ("assistant", "A red square.")],
    )
    two_leading, _ = built["sft:two-leading"]
    assert formats.chat_turns("".join(s["text"] for s in two_leading["segments"]))[1] == [
        ("assistant", "Two."),
        ("user", "Three?"),
        ("assistant", "Four."),
    ]
    trailing, _ = built["sft:trailing"]
    assert trailing["segments"][-4:] == [
        {"text": "<|im_start|>", "loss": True},
        {"text": "user\n", "loss": False},
        {"text": "Bye", "loss": False},
        {"text": "<|im_end|>\n", "loss": True},
    ]
    ids, labels, _ = encoder.encode(trailing["segments"], append_eot=False)
    assert labels[-1] == ids[-1] and np.asarray(labels[-2]) == encoder.im_end  # "<|im_end|>" "\n" labelled


def test_chat_reads_the_boxes_the_official_parser_reads():
    from qwenvl_data.model.chat import pixel_boxes

    # spaces after commas and a coordinate of 1000 (-> the image's edge)
    assert pixel_boxes("<ref> a circle</ref><box>(100, 200),(500,1000)</box>", 200, 100) == [
        {"ref": "a circle", "box": [20.0, 20.0, 100.0, 100.0]}
    ]
    # the official grounding prompt ends in <box>: the answer continues it, the prompt's ref names it
    assert pixel_boxes("(100,200),(500,600)</box>", 200, 100, "<ref>the circle</ref><box>") == [
        {"ref": "the circle", "box": [20.0, 20.0, 100.0, 60.0]}
    ]
    assert pixel_boxes("(100,200),(500,600)</box>", 200, 100) == []  # without the open box: no box


def test_schemas_name_only_tokens_of_the_one_list():
    """The tags the schemas' patterns and descriptions write are tokens of vocab.SPECIAL_TOKENS."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "schemas"
    for name in ("ocr", "task", "train"):
        text = (root / f"{name}.schema.json").read_text()
        tags = set(re.findall(r"</?(?:ref|box|quad|img|imgpad)>|<\|[a-z_0-9]+\|>", text))
        assert tags and tags <= set(vocab.SPECIAL_TOKENS), (name, tags)
