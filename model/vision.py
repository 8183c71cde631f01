"""The visual encoder: an open_clip VisionTransformer (OpenCLIP ViT-bigG-14 in the paper).

- Built with open_clip's own builder from a `VisionConfig` at a stage's resolution; its class token,
  pooling and projection are unused: the adapter reads the patch tokens after `ln_post`.
- Changing resolution (224 -> 448 between stages 1 and 2) resizes the learned position embedding
  bicubically with open_clip's `resize_pos_embed`, the same code open_clip uses for its checkpoints.
- Weights come from a local open_clip checkpoint only; nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from open_clip.model import _build_vision_tower, resize_pos_embed
from torch import nn

from qwenvl_data.errors import UsageError

from .config import VisionConfig


def build_vision_tower(cfg: VisionConfig, image_size: int) -> nn.Module:
    if image_size % cfg.patch_size:
        raise UsageError(f"image size {image_size} is not a multiple of the patch size {cfg.patch_size}")
    vision_cfg = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("pretrained", "pos_init")}
    vision_cfg.update(image_size=image_size, output_tokens=True, pool_type="tok")
    tower = _build_vision_tower(embed_dim=cfg.width, vision_cfg=vision_cfg)
    tower.proj = None  # CLIP's contrastive projection: unused here, so neither trained nor saved
    if cfg.pos_init == "sincos":
        init_sincos_positions(tower)
    elif cfg.pos_init != "random":
        raise UsageError(f"vision pos_init must be 'random' or 'sincos', got {cfg.pos_init!r}")
    if cfg.pretrained:
        load_open_clip_visual(tower, cfg.pretrained)
    return tower


@torch.no_grad()
def init_sincos_positions(tower: nn.Module):
    """Patch rows of the learned position embedding start as MAE's 2D sin-cos code (still trained); the
    class token's row keeps its random start. open_clip's default start is noise of std width**-0.5,
    which a model trained from scratch on few samples never turns into a usable sense of place."""
    from .adapter import sincos_2d

    pe = tower.positional_embedding
    grid = int(math.isqrt(pe.shape[0] - 1))
    pe[1:] = torch.from_numpy(sincos_2d(pe.shape[1], grid)).to(pe.dtype)


def patch_tokens(tower: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) normalised images -> (N, grid*grid, width) patch tokens after ln_post."""
    x = tower._embeds(images)
    x = tower.transformer(x)
    return tower.ln_post(x[:, 1:])


def resize_for(state_dict: dict, model: nn.Module) -> dict:
    """Bicubically resize `visual.positional_embedding` in a full-model state dict to `model.visual`'s grid."""
    resize_pos_embed(state_dict, model, interpolation="bicubic", antialias=True)
    return state_dict


def load_open_clip_visual(tower: nn.Module, path: str):
    """Load the `visual.*` weights of a local open_clip checkpoint (full CLIP or visual-only)."""
    import open_clip

    try:
        sd = open_clip.load_state_dict(path)
    except (OSError, RuntimeError) as e:
        raise UsageError(f"cannot read vision checkpoint {path}: {e}") from None
    if not any(k.startswith("visual.") for k in sd):
        sd = {f"visual.{k}": v for k, v in sd.items()}

    class _Holder(nn.Module):  # resize_pos_embed expects `model.visual`
        def __init__(self):
            super().__init__()
            self.visual = tower

    resize_pos_embed(sd, _Holder(), interpolation="bicubic")
    visual = {k[len("visual.") :]: v for k, v in sd.items() if k.startswith("visual.")}
    missing, _ = tower.load_state_dict(visual, strict=False)
    needed = [k for k in missing if not k.startswith(("proj", "attn_pool"))]
    if needed:
        raise UsageError(f"vision checkpoint {path} lacks {len(needed)} weights, e.g. {needed[0]}")
