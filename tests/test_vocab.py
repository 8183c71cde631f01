"""The shared vocabulary (qwenvl_data/vocab.py) is the one source of truth: the schemas, the formats
and the code that judges image members agree with it, and no module keeps its own copy."""

import json
import re
from pathlib import Path

import pytest

from qwenvl_data import vocab

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "schemas"


def _schema(name):
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def test_task_enums_in_schemas_are_the_vocabulary():
    assert tuple(_schema("task")["properties"]["task"]["enum"]) == vocab.TASKS
    assert tuple(_schema("train")["properties"]["task"]["enum"]) == vocab.TRAIN_TASKS


def test_pair_schema_columns_are_the_vocabulary():
    pair = _schema("pair")
    assert tuple(pair["properties"]) == vocab.PAIR_COLUMNS
    assert set(pair["required"]) <= set(vocab.PAIR_COLUMNS)


def test_language_enums_are_the_vocabulary():
    for name in ("pair", "sample", "task"):
        lang = _schema(name)["properties"]["lang"]
        if "enum" in lang:
            assert set(lang["enum"]) == set(vocab.LANGUAGES), name


def test_special_tokens_official_order():
    toks = vocab.SPECIAL_TOKENS
    assert toks[:3] == ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    assert toks[3] == "<|extra_0|>" and toks[207] == "<|extra_204|>"
    assert toks[208:] == ("<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>", "<img>", "</img>", "<imgpad>")
    assert len(set(toks)) == len(toks) == 3 + 205 + 9
    # official ids: <ref> is 151851 and <imgpad> 151859 in the Qwen-VL vocabulary
    assert vocab.QWEN_SPECIAL_START + toks.index("<ref>") == 151851
    assert vocab.QWEN_SPECIAL_START + toks.index("<imgpad>") == 151859


@pytest.mark.parametrize(
    "name,expected",
    [
        ("KEY.jpg", True),
        ("KEY.JPG", True),
        ("a.b.webp", True),
        ("img0.PNG", True),
        ("jpeg", True),
        ("KEY.json", False),
        ("KEY.txt", False),
        ("KEY.jpg.json", False),
    ],
)
def test_image_extensions_case_insensitive(name, expected):
    assert vocab.is_image_ext(name) is expected


def test_no_module_keeps_a_copy_of_the_shared_lists():
    """A literal task tuple, special-token list or image-extension tuple outside vocab.py is a copy
    that can drift; the code imports vocab instead."""
    copies = []
    patterns = [
        re.compile(r'\(\s*"caption",\s*"vqa",\s*"grounding"'),
        re.compile(r'\[\s*"<img>",\s*"</img>",\s*"<imgpad>"'),
        re.compile(r"IMAGE_EXTS\s*=\s*[\(\[]"),
    ]
    for folder in ("qwenvl_data", "pipelines", "model"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "vocab.py":
                continue
            text = path.read_text(encoding="utf-8")
            copies += [f"{path.relative_to(ROOT)}: {p.pattern}" for p in patterns if p.search(text)]
    assert not copies, copies


def test_stage_settings_checked_against_the_model_config():
    """The one definition of sequence length / image size feeds the trainer, which checks it against
    the model's max_position_embeddings and patch size before building anything."""
    from qwenvl_data.errors import UsageError
    from qwenvl_data.model.config import load_config
    from qwenvl_data.model.train import STAGES, check_settings

    cfg = load_config("tiny")
    for stage, settings in vocab.STAGE_SETTINGS.items():
        assert {k: STAGES[stage][k] for k in settings} == settings
        check_settings(cfg, STAGES[stage], stage)  # the defaults agree with the shipped configs
    too_long = {**STAGES[2], "seq_len": cfg.llm.max_position_embeddings + 1}
    with pytest.raises(UsageError, match="exceeds the model's max_position_embeddings"):
        check_settings(cfg, too_long, 2)
    with pytest.raises(UsageError, match="cannot hold one image"):
        check_settings(cfg, {**STAGES[1], "seq_len": cfg.adapter.num_queries}, 1)
    with pytest.raises(UsageError, match="multiple of the patch size"):
        check_settings(cfg, {**STAGES[1], "image_size": 225}, 1)
