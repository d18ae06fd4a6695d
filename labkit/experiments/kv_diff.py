"""Compare the keys and values two prompts leave in every layer, position by position.

A prompt's KV cache is a function of its tokens *and of every token before them*: change one
token at position p and every later position's keys and values change from layer 1 on (layer 0
sees only its own token and position). These helpers put numbers on that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from labkit.cache import as_token_ids, common_prefix_len, prefill

PARTS = ("keys", "values", "max")
ALIGNS = ("position", "end")


@dataclass(frozen=True)
class LayerKV:
    """The keys and values of every layer for one prompt, stacked, on the CPU in float32."""

    keys: torch.Tensor  # (num_layers, num_kv_heads, seq_len, head_dim)
    values: torch.Tensor  # (num_layers, num_kv_heads, seq_len, head_dim)

    @property
    def num_layers(self) -> int:
        """Return the number of layers."""
        return self.keys.shape[0]

    @property
    def seq_len(self) -> int:
        """Return the number of token positions."""
        return self.keys.shape[2]

    def positions(self, start: int, stop: int) -> LayerKV:
        """Return the keys and values of positions start..stop-1 only."""
        return LayerKV(self.keys[:, :, start:stop], self.values[:, :, start:stop])


def stack_cache(cache) -> LayerKV:
    """Return the keys and values a (batch 1) transformers cache holds, stacked over layers."""
    keys = [layer.keys[0] for layer in cache.layers]  # each (num_kv_heads, seq_len, head_dim)
    values = [layer.values[0] for layer in cache.layers]
    return LayerKV(torch.stack(keys).float().cpu(), torch.stack(values).float().cpu())


def kv_per_layer(model, input_ids) -> LayerKV:
    """Prefill the prompt from nothing and return the K and V of every layer."""
    _, cache = prefill(model, as_token_ids(input_ids), last_only=True)
    return stack_cache(cache)


def first_changed_position(a, b) -> int:
    """Return the first position where two token sequences differ (= their common prefix length)."""
    return common_prefix_len(a, b)


def _relative(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    # a, b: (num_layers, num_kv_heads, seq_len, head_dim) -> (num_layers, seq_len)
    a64, b64 = a.double(), b.double()
    diff = torch.linalg.vector_norm(a64 - b64, dim=(1, 3))
    ref = torch.linalg.vector_norm(a64, dim=(1, 3)).clamp_min(1e-30)
    return (diff / ref).numpy()


def kv_relative_difference(kv_a: LayerKV, kv_b: LayerKV, *, part: str = "max") -> np.ndarray:
    """Return ‖A−B‖/‖A‖ per (layer, position) for two prompts of the same length.

    The norms run over heads and head_dim. part="keys" or "values" compares one of them;
    part="max" (the default) takes the larger of the two. Returns (num_layers, seq_len), float64;
    exactly 0.0 where the tensors are bitwise equal.
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}.")
    if kv_a.keys.shape != kv_b.keys.shape:
        raise ValueError(
            f"The prompts have different shapes {tuple(kv_a.keys.shape)} and "
            f"{tuple(kv_b.keys.shape)}: use kv_relative_difference_aligned() to compare prompts "
            "of different lengths."
        )
    if part == "keys":
        return _relative(kv_a.keys, kv_b.keys)
    if part == "values":
        return _relative(kv_a.values, kv_b.values)
    return np.maximum(_relative(kv_a.keys, kv_b.keys), _relative(kv_a.values, kv_b.values))


def kv_relative_difference_aligned(
    kv_a: LayerKV, kv_b: LayerKV, *, align: str = "position", part: str = "max"
) -> np.ndarray:
    """Return the relative difference of two prompts of different lengths, aligned two ways.

    align="position" compares position i of A with position i of B over the common length
    min(len A, len B): what a prefix cache does, which only ever reuses position i for position i.
    After an edit that changes the token count, position i of B holds a different token than
    position i of A from the edit on, so everything there differs.
    align="end" compares the last min(len A, len B) positions: the same tokens after the edit,
    now sitting at shifted positions (what llama.cpp's `--cache-reuse` KV shifting tries to reuse).
    Returns (num_layers, common_len); column j is position j of A (align="position") or
    position len(A) - common_len + j of A (align="end").
    """
    if align not in ALIGNS:
        raise ValueError(f"align must be one of {ALIGNS}, got {align!r}.")
    common_len = min(kv_a.seq_len, kv_b.seq_len)
    if align == "position":
        a, b = kv_a.positions(0, common_len), kv_b.positions(0, common_len)
    else:
        a = kv_a.positions(kv_a.seq_len - common_len, kv_a.seq_len)
        b = kv_b.positions(kv_b.seq_len - common_len, kv_b.seq_len)
    return kv_relative_difference(a, b, part=part)


def changed_fraction(rel_diff: np.ndarray, *, threshold: float = 1e-3) -> np.ndarray:
    """Return, per layer, the fraction of positions whose relative difference exceeds threshold."""
    return (np.asarray(rel_diff) > threshold).mean(axis=1)
