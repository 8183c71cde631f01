"""The vision-language adapter ("Resampler" in Qwen-VL): one cross-attention layer.

- 256 learnable queries attend to the ViT's patch tokens and come out at the LLM's width, so every
  image costs the LLM a fixed 256 positions whatever the resolution.
- Fixed 2D sin-cos position embeddings are added to the queries (16x16 grid) and, bicubically
  interpolated to the patch grid (16x16 at 224, 32x32 at 448), to the keys: the queries keep the
  layout of the image after compression.
- `center` (off in Qwen-VL; on in the prove plans) subtracts each image's mean output token from all of
  them. Trained from scratch, the adapter otherwise turns within ~100 steps into a map of every image to one
  large constant vector (measured on the prove plan: the spread of its outputs across queries and images
  fell from 3% of their norm at the start to 0.2% by step 100; with 64 queries 0.001% by step 1,000 at 4x the norm,
  as the LLM, which cannot use the image yet, makes the visual tokens an attention sink); the model then
  learns from the pixels only if it escapes in time, and sometimes it does not (64 queries, seed 0: the
  image changed no logit by more than 3e-4 after 4,000 steps). Centred, the tokens cannot become one
  constant, and the image moves the logits by 4.7 at step 200 (uncentred: 0.013).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import AdapterConfig


def sincos_2d(dim: int, grid: int) -> np.ndarray:
    """(grid*grid, dim) fixed 2D sin-cos embedding (MAE's formula: half the channels per axis)."""
    if dim % 4:
        raise ValueError(f"sin-cos embedding width must be a multiple of 4, got {dim}")
    coords = np.arange(grid, dtype=np.float64)
    gy, gx = np.meshgrid(coords, coords, indexing="ij")
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4))

    def axis(pos):
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([axis(gy), axis(gx)], axis=1).astype(np.float32)


def resize_grid(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """(g*g, d) -> (grid*grid, d), bicubic; identity when the grids match."""
    src = int(math.isqrt(pos.shape[0]))
    if src == grid:
        return pos
    x = pos.float().reshape(1, src, src, -1).permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(grid, grid), mode="bicubic", align_corners=False)
    return x.permute(0, 2, 3, 1).reshape(grid * grid, -1).to(pos.dtype)


class Resampler(nn.Module):
    def __init__(self, cfg: AdapterConfig, vision_width: int, out_width: int):
        super().__init__()
        if cfg.query_grid**2 != cfg.num_queries:
            raise ValueError(f"num_queries {cfg.num_queries} must be query_grid**2 ({cfg.query_grid}**2)")
        self.num_queries = cfg.num_queries
        self.center = cfg.center
        self.query = nn.Parameter(torch.empty(cfg.num_queries, out_width))
        nn.init.trunc_normal_(self.query, std=0.02)
        # a buffer, not a parameter: fixed, and saved with the checkpoint for inspection
        self.register_buffer("pos_embed", torch.from_numpy(sincos_2d(out_width, cfg.query_grid)))
        self.kv_proj = nn.Linear(vision_width, out_width, bias=False) if vision_width != out_width else nn.Identity()
        self.ln_q = nn.LayerNorm(out_width, eps=1e-6)
        self.ln_kv = nn.LayerNorm(out_width, eps=1e-6)
        self.attn = nn.MultiheadAttention(out_width, cfg.heads, batch_first=True)
        self.ln_post = nn.LayerNorm(out_width, eps=1e-6)
        self.proj = nn.Parameter(out_width**-0.5 * torch.randn(out_width, out_width))
        if cfg.init == "local":
            self.init_local(cfg.heads, cfg.local_scale)
        elif cfg.init != "random":
            raise ValueError(f"adapter init must be 'random' or 'local', got {cfg.init!r}")

    @torch.no_grad()
    def init_local(self, heads: int, scale: float):
        """Start every query as an average pool over its own grid cell.

        With random weights the cross-attention of a model trained from scratch is close to uniform
        (the keys of a plain background are all alike), every query returns the mean of the image, and
        training settles there: the LLM never learns where anything is. Here the query and key
        projections start as a scaled copy of the 2D sin-cos channels, regrouped so that every head
        compares sin and cos of both axes (the kernel of the grid distance), and the query's learned
        part and the keys' content start muted (their LayerNorm gains at 0 and 0.1) so position decides
        the first attention pattern. Everything stays trainable; `scale` sets how sharp the pool is.
        """
        d = self.query.shape[1]
        if d % (4 * heads):
            raise ValueError(f"adapter init 'local' needs a width divisible by 4 x heads, got {d} and {heads}")
        quarter = d // 4  # sincos_2d's layout: [y sin | y cos | x sin | x cos]
        order = [part * quarter + f for h in range(heads) for part in range(4) for f in range(h, quarter, heads)]
        regroup = torch.zeros(d, d)
        regroup[torch.arange(d), torch.tensor(order)] = scale
        self.attn.in_proj_weight[:d] = regroup
        self.attn.in_proj_weight[d : 2 * d] = regroup
        if self.attn.in_proj_bias is not None:
            self.attn.in_proj_bias[: 2 * d] = 0
        self.ln_q.weight.zero_()
        self.ln_kv.weight.fill_(0.1)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, grid*grid, vision_width) -> (N, num_queries, out_width)."""
        n, length, _ = patches.shape
        kv = self.ln_kv(self.kv_proj(patches))
        key_pos = resize_grid(self.pos_embed, int(math.isqrt(length))).to(kv.dtype)
        q = (self.ln_q(self.query) + self.pos_embed.to(kv.dtype)).unsqueeze(0).expand(n, -1, -1)
        out, _ = self.attn(q, kv + key_pos, kv, need_weights=False)
        out = self.ln_post(out) @ self.proj
        return out - out.mean(1, keepdim=True) if self.center else out
