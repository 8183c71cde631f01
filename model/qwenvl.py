"""The bundled Qwen-VL model: ViT -> adapter (256 queries) -> causal LM.

- The LLM is a `transformers` Qwen2ForCausalLM built from `LLMConfig` or loaded from a local directory
  of real weights (`llm.pretrained`); its input embeddings at `<imgpad>` positions are replaced, in
  order, by the adapter's 256 embeddings of each image of the batch.
- Stage freezing lives here (`set_stage`) so the trainer, tests and benches share one policy:
  stage 1 LLM frozen; stage 2 all trained; stage 3 ViT frozen.
"""

from __future__ import annotations

import torch
from torch import nn

from qwenvl_data.errors import BadInput, UsageError

from .adapter import Resampler
from .config import ModelConfig
from .vision import build_vision_tower, patch_tokens, resize_for

TRAINED = {1: ("visual", "adapter"), 2: ("visual", "adapter", "llm"), 3: ("adapter", "llm")}


def build_llm(cfg: ModelConfig, vocab_size: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    c = cfg.llm
    if c.pretrained:
        try:
            llm = Qwen2ForCausalLM.from_pretrained(c.pretrained, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot load the LLM from {c.pretrained}: {e}") from None
        if llm.get_input_embeddings().num_embeddings < vocab_size:
            llm.resize_token_embeddings(vocab_size, pad_to_multiple_of=64)
        return llm
    vocab = c.vocab_size or -(-vocab_size // 64) * 64
    if vocab < vocab_size:
        raise UsageError(f"config {cfg.name}: vocab_size {vocab} < tokenizer size {vocab_size}")
    return Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=vocab,
            hidden_size=c.hidden_size,
            intermediate_size=c.intermediate_size,
            num_hidden_layers=c.num_hidden_layers,
            num_attention_heads=c.num_attention_heads,
            num_key_value_heads=c.num_key_value_heads,
            max_position_embeddings=c.max_position_embeddings,
            rope_theta=c.rope_theta,
            rms_norm_eps=c.rms_norm_eps,
            tie_word_embeddings=c.tie_word_embeddings,
            initializer_range=c.initializer_range,
            use_cache=False,
        )
    )


class QwenVL(nn.Module):
    def __init__(self, cfg: ModelConfig, image_size: int, vocab_size: int, image_pad_id: int):
        super().__init__()
        self.cfg, self.image_size, self.image_pad_id = cfg, image_size, image_pad_id
        self.visual = build_vision_tower(cfg.vision, image_size)
        self.llm = build_llm(cfg, vocab_size)
        self.adapter = Resampler(cfg.adapter, cfg.vision.width, self.llm.config.hidden_size)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.adapter(patch_tokens(self.visual, images))

    def embed(self, input_ids: torch.Tensor, images: torch.Tensor | None) -> torch.Tensor:
        embeds = self.llm.get_input_embeddings()(input_ids)
        slots = input_ids == self.image_pad_id
        n_slots = int(slots.sum())
        n_images = 0 if images is None else images.shape[0]
        if n_slots != n_images * self.cfg.adapter.num_queries:
            raise BadInput(
                f"batch has {n_slots} image positions for {n_images} images x {self.cfg.adapter.num_queries} queries"
            )
        if n_images:
            feats = self.encode_images(images).to(embeds.dtype)
            embeds = embeds.masked_scatter(slots.unsqueeze(-1), feats.reshape(-1, feats.shape[-1]))
        return embeds

    def forward(self, input_ids, images=None, labels=None, **kw):
        """Mean next-token loss over labelled positions (labels aligned with input_ids, -100 = none)."""
        embeds = self.embed(input_ids, images)
        if labels is None:
            return self.llm(inputs_embeds=embeds, use_cache=False, **kw).logits
        hidden = self.llm.model(inputs_embeds=embeds, use_cache=False, **kw).last_hidden_state
        return next_token_loss(hidden, labels, self.llm.get_output_embeddings())

    def set_stage(self, stage: int):
        """Freeze what the stage freezes; returns the names of the trained parameters."""
        if stage not in TRAINED:
            raise UsageError(f"stage must be 1, 2 or 3, got {stage}")
        trained = []
        for name, p in self.named_parameters():
            p.requires_grad_(name.split(".", 1)[0] in TRAINED[stage])
            if p.requires_grad:
                trained.append(name)
        return trained

    def load_checkpoint_state(self, state: dict):
        """Load a state dict saved at another resolution (stage 1 at 224 -> stage 2 at 448)."""
        state = resize_for(dict(state), self)
        own = self.state_dict()
        emb_key = "llm.model.embed_tokens.weight"
        if emb_key in state and state[emb_key].shape != own[emb_key].shape:
            raise UsageError(
                f"checkpoint vocabulary {tuple(state[emb_key].shape)} differs from the model's "
                f"{tuple(own[emb_key].shape)}: use the checkpoint's tokenizer"
            )
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if k != "llm.lm_head.weight" or not self.llm.config.tie_word_embeddings]
        if missing or unexpected:
            raise UsageError(
                f"checkpoint does not match config {self.cfg.name}: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def next_token_loss(hidden: torch.Tensor, labels: torch.Tensor, lm_head: nn.Module) -> torch.Tensor:
    """The causal LM loss (what transformers computes: fp32 cross-entropy, mean over labelled tokens),
    with the vocabulary projection run only on positions that carry a label. Image pads and prompts
    are often half of a packed row, and the [tokens x 152k] fp32 logits are the largest tensor of a step."""
    targets = labels[:, 1:].reshape(-1)
    keep = targets != -100
    h = hidden[:, :-1].reshape(-1, hidden.shape[-1])[keep]
    logits = lm_head(h).float()
    return nn.functional.cross_entropy(logits, targets[keep], reduction="sum") / keep.sum().clamp(min=1)
