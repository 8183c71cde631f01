"""open_clip models from a name and a local checkpoint file; nothing is ever downloaded.

- `load_clip(name, checkpoint)` builds the architecture from open_clip's config registry and loads
  the weights from a file on disk, the same path for real weights (e.g. a ViT-B-32 LAION checkpoint
  copied to the cluster) and for the tiny random checkpoints the tests and the demo make.
- `TINY` ("qwenvl-tiny-clip") is a width-64, 2-layer CLIP (3.4M parameters, mostly the token
  embedding), registered with `open_clip.add_model_config` so it loads like any named model.
- `image_preprocess(name)` is the model's eval transform built from its config alone, so CPU workers
  preprocess images without loading the model.
- `ClipScorer.scores(pixels, captions)` is the cosine similarity of image and caption embeddings.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import UsageError

TINY = "qwenvl-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@functools.cache
def register_tiny() -> None:
    """Make `qwenvl-tiny-clip` a known open_clip model name in this process."""
    import open_clip

    folder = Path(tempfile.mkdtemp(prefix="qwenvl-clip-config-"))
    (folder / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder)


def model_config(name: str) -> dict:
    import open_clip

    register_tiny()
    if name.startswith(("hf-hub:", "local-dir:")) or ":" in name:
        raise UsageError(
            f"--model {name}: give an open_clip architecture name and a local --checkpoint "
            f"(hub names would download at run time)"
        )
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise UsageError(f"--model {name}: unknown open_clip model (e.g. ViT-B-32, ViT-L-14, {TINY})")
    return cfg


def image_preprocess(name: str):
    """The model's evaluation transform (PIL image -> normalised tensor), from its config only."""
    import open_clip

    cfg = model_config(name)
    pp = cfg.get("preprocess_cfg", {})
    return open_clip.image_transform(
        cfg["vision_cfg"]["image_size"],
        is_train=False,
        mean=pp.get("mean"),
        std=pp.get("std"),
        resize_mode=pp.get("resize_mode"),
        interpolation=pp.get("interpolation"),
    )


def image_size(name: str) -> int:
    size = model_config(name)["vision_cfg"]["image_size"]
    return size[0] if isinstance(size, (list, tuple)) else int(size)


def save_random_checkpoint(name: str, path: str | os.PathLike, seed: int = 0) -> Path:
    """A randomly initialised model of architecture `name`, saved like real open_clip weights."""
    import open_clip
    import torch

    model_config(name)
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "name": name}, path)
    return path


class ClipScorer:
    """One loaded model; `scores` gives cosine similarities of image/caption pairs."""

    def __init__(
        self,
        name: str,
        checkpoint: str | None,
        device: str = "cpu",
        precision: str = "fp32",
        allow_random: bool = False,
    ):
        import open_clip
        import torch

        model_config(name)
        if checkpoint is None and not allow_random:
            raise UsageError(f"--checkpoint is required for model {name} (a local open_clip weights file)")
        if checkpoint is not None and not os.path.isfile(checkpoint):
            raise UsageError(f"--checkpoint {checkpoint}: no such file (weights are never downloaded)")
        try:
            self.model = open_clip.create_model(name, pretrained=checkpoint, precision=precision, device=device)
        except RuntimeError as e:  # wrong architecture for the weights: missing/unexpected keys
            raise UsageError(f"--checkpoint {checkpoint}: does not fit model {name}: {str(e)[:300]}") from None
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(name)
        self.device = torch.device(device)
        # open_clip's bf16/fp16 precision casts only the matmul and conv weights: the pixels must match
        # those (the first parameter may be an fp32 embedding or logit scale).
        self.dtype = min(
            (p.dtype for p in self.model.visual.parameters() if p.is_floating_point()),
            key=lambda d: torch.finfo(d).bits,
        )
        self.label = f"{name}@{Path(checkpoint).name}" if checkpoint else f"{name}@random"

    def scores(self, pixels: np.ndarray, captions: list[str]) -> np.ndarray:
        """pixels: float array (N, 3, H, W) already preprocessed; returns (N,) float32 cosines."""
        import torch

        with torch.inference_mode():
            images = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device, self.dtype)
            tokens = self.tokenizer(captions).to(self.device)
            img = self.model.encode_image(images, normalize=True)
            txt = self.model.encode_text(tokens, normalize=True)
            return (img * txt).sum(-1).float().cpu().numpy()
