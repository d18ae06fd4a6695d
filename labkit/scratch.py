"""A from-scratch Llama forward pass with a hand-made KV cache, on a transformers model's weights.

Lesson 1's primer writes this loop by hand; here it is once more for tests and reuse. It follows
transformers' `LlamaAttention.forward` and `apply_rotary_pos_emb` (models/llama/modeling_llama.py):
RMSNorm, Q/K/V projections, rotary position encoding on Q and K, grouped-query attention with a
causal mask, the output projection, the MLP, residuals. It reads the model's own modules for the
norms and the MLP, and computes attention and the cache itself. No rope scaling is handled:
`scratch_forward` refuses a config that asks for it.
"""

from __future__ import annotations

import math

import torch


def rope_theta(config) -> float:
    """Return the base of the rotary angles, wherever this transformers version keeps it."""
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    scaling = params.get("rope_type", params.get("type", "default"))
    if scaling != "default":
        raise ValueError(
            f"rope scaling {scaling!r} is not implemented here; use plain transformers"
        )
    return float(params.get("rope_theta") or config.rope_theta)


def rope(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotate each pair (i, i + head_dim/2) of `x` by position × theta^(-2i/head_dim)."""
    half = x.shape[-1] // 2  # x: (batch, heads, seq_len, head_dim)
    inv_freq = theta ** (-torch.arange(half, dtype=torch.float32, device=x.device) / half)
    angles = positions.float()[:, None] * inv_freq[None, :]  # (seq_len, half)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


@torch.no_grad()
def scratch_forward(model, token_ids, cache: list | None = None):
    """Return (logits, cache) for `token_ids` after the positions already in `cache`.

    `cache` is a list of (keys, values) per layer, each (batch, num_kv_heads, seq_len, head_dim);
    None or [] starts from nothing. logits: (1, len(token_ids), vocab_size).
    """
    cfg, core = model.config, model.model
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    group = cfg.num_attention_heads // cfg.num_key_value_heads
    theta, cache = rope_theta(cfg), list(cache or [])
    past = cache[0][0].shape[2] if cache else 0
    ids = torch.as_tensor(token_ids, device=model.device).reshape(1, -1)  # (batch, seq_len)
    n = ids.shape[1]
    positions = torch.arange(past, past + n, device=model.device)
    mask = torch.ones(n, past + n, dtype=torch.bool, device=model.device).tril(diagonal=past)
    h = core.embed_tokens(ids)  # (batch, seq_len, hidden_size)
    new_cache = []
    for i, layer in enumerate(core.layers):
        attn, x = layer.self_attn, layer.input_layernorm(h)

        q, k, v = (  # each (batch, heads, n, head_dim)
            proj(x).view(1, n, -1, head_dim).transpose(1, 2)
            for proj in (attn.q_proj, attn.k_proj, attn.v_proj)
        )
        q, k = rope(q, positions, theta), rope(k, positions, theta)
        if cache:
            k, v = torch.cat([cache[i][0], k], dim=2), torch.cat([cache[i][1], v], dim=2)
        new_cache.append((k, v))
        scores = q @ k.repeat_interleave(group, 1).transpose(-1, -2) / math.sqrt(head_dim)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        out = (weights @ v.repeat_interleave(group, 1)).transpose(1, 2).reshape(1, n, -1)
        h = h + attn.o_proj(out)
        h = h + layer.mlp(layer.post_attention_layernorm(h))
    return model.lm_head(core.norm(h)), new_cache
