"""Model configs: one dataclass per tower, named configs as JSON in model/configs/ (a small registry).

- `vision` is an open_clip CLIPVisionCfg-shaped dict (width, layers, head_width, mlp_ratio, patch_size);
  the image size is not part of it: each stage sets its resolution (224 in stage 1, 448 after).
- `llm` holds the transformers Qwen2Config fields, or `pretrained`: a local directory of real weights.
- `vocab_size` null means "from the tokenizer", rounded up to a multiple of 64 (tensor-core friendly).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from qwenvl_data.errors import UsageError


@dataclass
class VisionConfig:
    width: int = 1664  # ViT-bigG-14 residual width
    layers: int = 48  # transformer blocks
    head_width: int = 104  # width per head (1664 / 104 = 16 heads)
    mlp_ratio: float = 4.9231  # ViT-bigG's MLP width 8192 / 1664
    patch_size: int = 14  # 224 px -> 16x16 grid, 448 px -> 32x32
    pretrained: str | None = None  # local open_clip checkpoint (.pt / .safetensors), never downloaded
    # "random": open_clip's initialisation. "sincos": patch position embeddings start as a 2D sin-cos
    # code (MAE's), so every patch token carries where it is; a small model trained from scratch needs it.
    pos_init: str = "random"


@dataclass
class AdapterConfig:
    num_queries: int = 256  # visual tokens per image handed to the LLM
    heads: int = 32  # cross-attention heads (paper: 32)
    query_grid: int = 16  # queries' 2D sin-cos grid: 16x16 = 256
    # "random": Qwen-VL's initialisation. "local": each query starts as an average pool over its own
    # grid cell (see model/adapter.py); a small model trained from scratch needs it to see where things are.
    init: str = "random"
    local_scale: float = 5.0  # "local" only: sharpness of the starting pool (5 ~ a 3x3 neighbourhood)
    # Subtract each image's mean visual token (over its queries) from all of them. Off: Qwen-VL's adapter. A
    # model trained from scratch otherwise learns, within its first ~100 steps, to make every visual token one
    # large constant vector (an attention sink; model/adapter.py) and may never start to use the image.
    center: bool = False


@dataclass
class LLMConfig:
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 32  # = heads: Qwen-7B has no GQA
    max_position_embeddings: int = 8192
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    initializer_range: float = 0.02  # init std; a tiny frozen LLM needs more (logits scale with it)
    vocab_size: int | None = None  # None: len(tokenizer) rounded up to 64
    pretrained: str | None = None  # local HF directory with real weights; overrides the sizes above


@dataclass
class ModelConfig:
    name: str = "custom"
    vision: VisionConfig = field(default_factory=VisionConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        try:
            return cls(
                name=d.get("name", "custom"),
                vision=VisionConfig(**d.get("vision", {})),
                adapter=AdapterConfig(**d.get("adapter", {})),
                llm=LLMConfig(**d.get("llm", {})),
            )
        except TypeError as e:  # an unknown key in a config file
            raise UsageError(f"model config {d.get('name', '?')}: {e}") from None

    def __post_init__(self):
        """The choices a config file makes that the towers would otherwise reject with a traceback."""
        a, v = self.adapter, self.vision
        problems = []
        if v.pos_init not in ("random", "sincos"):
            problems.append(f"vision.pos_init must be 'random' or 'sincos', got {v.pos_init!r}")
        if a.init not in ("random", "local"):
            problems.append(f"adapter.init must be 'random' or 'local', got {a.init!r}")
        if not isinstance(a.center, bool):
            problems.append(f"adapter.center must be true or false, got {a.center!r}")
        if a.query_grid**2 != a.num_queries:
            problems.append(f"adapter.num_queries {a.num_queries} must be query_grid**2 ({a.query_grid}**2)")
        width = self.llm.hidden_size if not self.llm.pretrained else None  # a pretrained LLM sets its own
        if width and a.heads and width % a.heads:
            problems.append(f"adapter.heads {a.heads} must divide the LLM width {width}")
        if width and a.init == "local" and a.heads and width % (4 * a.heads):
            problems.append(f"adapter.init local needs the LLM width {width} divisible by 4 x adapter.heads {a.heads}")
        if problems:
            raise UsageError(f"model config {self.name}: " + "; ".join(problems))


def config_names() -> list[str]:
    files = resources.files("qwenvl_data.model.configs")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".json"))


def load_config(name_or_path: str) -> ModelConfig:
    """A named config (`tiny`, `1b`, `qwenvl-7b`) or a path to a JSON file of the same shape."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        text = path.read_text()
    else:
        res = resources.files("qwenvl_data.model.configs").joinpath(f"{name_or_path}.json")
        if not res.is_file():
            raise UsageError(f"unknown model config {name_or_path!r}: use one of {config_names()} or a .json path")
        text = res.read_text()
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"model config {name_or_path}: not valid JSON ({e})") from None
    return ModelConfig.from_dict(d)
