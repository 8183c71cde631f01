"""Exact strings of every Qwen-VL format (DESIGN.md, the paper's Box B.1), stage 1/2 segments, ChatML."""

from qwenvl_data import formats
from qwenvl_data.boxes import format_box


def joined(segments):
    return "".join(s["text"] for s in segments)


def loss_text(segments):
    return "".join(s["text"] for s in segments if s["loss"])


def test_box_b1_prompts():
    assert (
        formats.image_tag("cc3m/01581435.jpg") + formats.caption_prompt("en")
        == "<img>cc3m/01581435.jpg</img>Generate the caption in English:"
    )
    assert formats.caption_prompt("zh") == "Generate the caption in Chinese:"
    assert (
        formats.image_tag("VG_100K_2/1.jpg")
        + formats.vqa_prompt("Does the bandage have a different color than the wrist band?")
        == "<img>VG_100K_2/1.jpg</img> Does the bandage have a different color than the wrist band? Answer:"
    )
    assert formats.GROUNDING_PROMPT == "Generate the caption in English with grounding:"
    assert formats.ref_grounding_prompt("the ear on a giraffe") == "<ref>the ear on a giraffe</ref>"
    assert formats.boxes_text([(176, 106, 232, 160)]) == "<box>(176,106),(232,160)</box>"
    assert formats.region_caption_prompt((360, 542, 476, 705)) == "<ref>This</ref><box>(360,542),(476,705)</box> is"
    assert formats.OCR_PROMPT == "OCR with grounding:"


def test_stage12_segments_split_prompt_and_target():
    segs = formats.train_segments(
        "caption", formats.caption_prompt("en"), "the beautiful flowers for design.", ["img0.jpg"]
    )
    assert segs == [
        {"text": "<img>img0.jpg</img>Generate the caption in English:", "loss": False},
        {"text": " the beautiful flowers for design.", "loss": True},
    ]
    segs = formats.train_segments(
        "ref_grounding", "<ref>the ear on a giraffe</ref>", "<box>(176,106),(232,160)</box>", ["img0.jpg"]
    )
    assert joined(segs) == "<img>img0.jpg</img><ref>the ear on a giraffe</ref><box>(176,106),(232,160)</box>"
    assert loss_text(segs) == "<box>(176,106),(232,160)</box>"
    segs = formats.train_segments(
        "ocr", formats.OCR_PROMPT, "<ref>It is managed</ref><quad>(1,2),(3,4),(5,6),(7,8)</quad>", ["img0.jpg"]
    )
    assert segs[1] == {"text": "<ref>It is managed</ref><quad>(1,2),(3,4),(5,6),(7,8)</quad>", "loss": True}
    assert formats.train_segments("text", "", "plain words", []) == [{"text": "plain words", "loss": True}]


def test_chatml_exact_text_and_both_masks():
    turns = [
        ("user", formats.picture_prefix(["img0.jpg", "img1.jpg"]) + "Compare them."),
        ("assistant", "Same."),
        ("user", "Sure?"),
        ("assistant", "Yes."),
    ]
    text = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nPicture 1: <img>img0.jpg</img>\nPicture 2: <img>img1.jpg</img>\n"
        "Compare them.<|im_end|>\n"
        "<|im_start|>assistant\nSame.<|im_end|>\n<|im_start|>user\nSure?<|im_end|>\n"
        "<|im_start|>assistant\nYes.<|im_end|>\n"
    )
    segs = formats.chat_segments(turns)  # official: <|im_start|>, <|im_end|>\n of every turn + the answers
    assert joined(segs) == text
    assert segs[:8] == [
        {"text": "<|im_start|>", "loss": True},
        {"text": "system\n", "loss": False},
        {"text": "You are a helpful assistant.", "loss": False},
        {"text": "<|im_end|>\n", "loss": True},
        {"text": "<|im_start|>", "loss": True},
        {"text": "user\n", "loss": False},
        {"text": "Picture 1: <img>img0.jpg</img>\nPicture 2: <img>img1.jpg</img>\nCompare them.", "loss": False},
        {"text": "<|im_end|>\n", "loss": True},
    ]
    assert segs[8:11] == [
        {"text": "<|im_start|>", "loss": True},
        {"text": "assistant\n", "loss": False},
        {"text": "Same.<|im_end|>\n", "loss": True},
    ]
    assert (
        loss_text(segs)
        == "<|im_start|><|im_end|>\n" * 2
        + "<|im_start|>Same.<|im_end|>\n"
        + "<|im_start|><|im_end|>\n<|im_start|>Yes.<|im_end|>\n"
    )
    old = formats.chat_segments(turns, mask="answers")  # the answers-only mask of earlier shards
    assert joined(old) == text
    assert [s["text"] for s in old if s["loss"]] == ["Same.<|im_end|>", "Yes.<|im_end|>"]
    assert old[4:7] == [
        {"text": "<|im_start|>assistant\n", "loss": False},
        {"text": "Same.<|im_end|>", "loss": True},
        {"text": "\n", "loss": False},
    ]
    assert formats.chat_turns(text) == (formats.DEFAULT_SYSTEM, turns)


def test_chat_turns_refuses_text_that_is_not_chatml():
    import pytest

    for bad in (
        "<|im_start|>user\nhi<|im_end|>",
        "hi<|im_start|>user\nhi<|im_end|>\n",
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>system\nx<|im_end|>\n",
    ):
        with pytest.raises(ValueError):
            formats.chat_turns(bad)
    with pytest.raises(ValueError):
        formats.chat_segments([("user", "hi")], mask="everything")


def test_rename_images_in_order():
    text, paths = formats.rename_images(
        "Picture 1: <img>a/x.jpg</img>\nPicture 2: <img>b.png</img>\nhi", ["img0.jpg", "img1.png"]
    )
    assert paths == ["a/x.jpg", "b.png"]
    assert text == "Picture 1: <img>img0.jpg</img>\nPicture 2: <img>img1.png</img>\nhi"


def test_task_to_chat_per_task_and_language():
    box = format_box((1, 2, 3, 4))
    rg = {"task": "ref_grounding", "prompt": "<ref>击掌</ref>", "target": box, "lang": "en"}
    assert formats.task_to_chat(rg, "zh") == ("框出图中击掌的位置", "<ref>击掌</ref>" + box)
    assert formats.task_to_chat(rg, "en")[0] == "Give the bounding box of 击掌 in the image."
    gc = {"task": "grounded_caption", "prompt": f"<ref>This</ref>{box} is", "target": "a cup", "lang": "en"}
    assert formats.task_to_chat(gc, "en") == (f"Describe the region {box} of the image.", "a cup")
    vqa = {"task": "vqa", "prompt": " What is it? Answer:", "target": "a cup", "lang": "en"}
    assert formats.task_to_chat(vqa, "zh") == ("What is it?", "a cup")
    assert formats.pick_lang("uid-1", 0.0) == "en" and formats.pick_lang("uid-1", 1.0) == "zh"
    share = sum(formats.pick_lang(f"u{i}", 0.5) == "zh" for i in range(2000)) / 2000
    assert 0.45 < share < 0.55


def test_ocr_grounding_caption_to_chat():
    ocr = {
        "task": "ocr",
        "prompt": formats.OCR_PROMPT,
        "target": "<ref>Hi</ref><quad>(1,2),(3,4),(5,6),(7,8)</quad>",
        "lang": "en",
    }
    assert formats.task_to_chat(ocr, "zh") == ("识别图中所有文字，并给出每行文字的位置。", ocr["target"])
    assert formats.task_to_chat(ocr, "en")[0] == "Read all the text in the image and give the position of each line."
    cap = {"task": "caption", "prompt": formats.caption_prompt("zh"), "target": "一只猫", "lang": "zh"}
    assert formats.task_to_chat(cap, "en") == ("用中文描述这张图片。", "一只猫")
    g = {
        "task": "grounding",
        "prompt": formats.GROUNDING_PROMPT,
        "target": "a <ref>cat</ref><box>(1,2),(3,4)</box>",
        "lang": "en",
    }
    assert formats.task_to_chat(g, "en") == (
        "Describe the image in English and ground the objects you mention.",
        g["target"],
    )
