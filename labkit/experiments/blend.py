"""Selective recompute: reuse a mismatched cache and recompute only a fraction f of positions.

CacheBlend (Yao et al., EuroSys 2025, arXiv 2405.16444) reuses caches computed for another
context and restores their cross-attention by recomputing a small share of the tokens: those
whose keys and values deviate most from a full recompute ("high KV deviation" tokens), found by
recomputing the first layers in full and then carrying only the chosen tokens through the rest.
EPIC (Hu et al., ICML 2025, arXiv 2410.15332) recomputes a few tokens at each chunk's start.

`blend_cache` follows CacheBlend's rule on one reused cache: layers 0..check_layer are computed
for every position; at check_layer the positions whose fresh K/V deviate most from the reused
ones are chosen (layer 0 cannot tell: an unchanged token's layer-0 K/V never change, lesson 3);
from there on only the chosen positions are computed, attending to the reused K/V elsewhere.
`selection="random"` chooses as many positions at random: the control. The layers are
transformers' own decoder layers, run on the chosen positions only; a small stand-in for the
cache writes their fresh K/V into the reused tensors and hands the whole layer to attention.
How good a blend is, against a full recompute, is measured in `labkit.experiments.blend_quality`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from labkit.cache import as_token_ids, new_cache
from labkit.experiments.approx import decoder_parts

SELECTIONS = ("deviation", "random")


class _LayerWriter:
    """Stands in for the cache inside one decoder layer: fresh K/V at `positions`, reused elsewhere.

    With `choose` set (the check layer), it first picks the positions from the fresh K/V of all
    positions and keeps them in `chosen`.
    """

    def __init__(self, keys, values, positions, choose=None):
        self.keys, self.values = keys, values  # (1, num_kv_heads, seq_len, head_dim), written
        self.positions, self.choose, self.chosen = positions, choose, None

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        # key_states: (1, num_kv_heads, len(self.positions), head_dim)
        positions = self.positions
        if self.choose is not None:
            self.chosen = self.choose(key_states, value_states)
            key_states = key_states[:, :, self.chosen]
            value_states = value_states[:, :, self.chosen]
            positions = positions[self.chosen]
        self.keys[:, :, positions] = key_states.to(self.keys.dtype)
        self.values[:, :, positions] = value_states.to(self.values.dtype)
        return self.keys, self.values


def kv_deviation(keys, values, fresh_keys, fresh_values) -> torch.Tensor:
    """Return ‖ΔK‖² + ‖ΔV‖² per position, over heads and head_dim: (seq_len,), float64."""
    dk = (fresh_keys.double() - keys.double()).pow(2).sum(dim=(0, 1, 3))
    dv = (fresh_values.double() - values.double()).pow(2).sum(dim=(0, 1, 3))
    return dk + dv


def _chooser(count: int, selection: str, keys, values, seed: int):
    def choose(fresh_keys, fresh_values) -> torch.Tensor:
        seq_len = fresh_keys.shape[2]
        if selection == "random":
            generator = torch.Generator().manual_seed(seed)
            picked = torch.randperm(seq_len, generator=generator)[:count]
        else:
            deviation = kv_deviation(keys, values, fresh_keys, fresh_values)
            picked = torch.topk(deviation, count).indices
        return picked.sort().values.to(fresh_keys.device)

    return choose


@dataclass(frozen=True)
class BlendCost:
    """What a selective recompute computes, in token-layers (one token through one layer)."""

    seq_len: int  # positions reused from the cache
    num_layers: int
    recomputed: int  # positions carried through every layer after the check layer
    token_layers: int  # token-layers computed

    @property
    def compute_fraction(self) -> float:
        """Return the share of a full recompute's token-layers that was computed."""
        return self.token_layers / (self.seq_len * self.num_layers)

    @property
    def compute_saved(self) -> float:
        """Return the share of a full recompute's token-layers that was saved."""
        return 1.0 - self.compute_fraction


def blend_cost(seq_len: int, num_layers: int, fraction: float, check_layer: int = 1) -> BlendCost:
    """Return the token-layers `blend_cache` computes (fraction 0: none, the cache as it is)."""
    recomputed = int(round(fraction * seq_len))
    if recomputed == 0:
        return BlendCost(seq_len, num_layers, 0, 0)
    full = check_layer + 1
    return BlendCost(
        seq_len, num_layers, recomputed, seq_len * full + recomputed * (num_layers - full)
    )


def blend_cache(
    model,
    cache,
    token_ids,
    fraction: float,
    *,
    selection: str = "deviation",
    check_layer: int = 1,
    seed: int = 0,
):
    """Return (cache, chosen positions): the reused cache with a fraction of positions recomputed.

    cache: the reused cache (left unchanged), holding len(token_ids) positions computed from
    other tokens; token_ids: what those positions hold now. fraction 0 returns a copy as it is.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}.")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}.")
    layers, rotary, _ = decoder_parts(model)
    ids = as_token_ids(token_ids)
    seq_len = len(ids)
    if cache.get_seq_length() != seq_len:
        raise ValueError(
            f"The reused cache holds {cache.get_seq_length()} positions but {seq_len} token ids "
            "were given: pass the ids of exactly the positions it covers."
        )
    if not 0 <= check_layer < len(layers):
        raise ValueError(f"check_layer must be in 0..{len(layers) - 1}, got {check_layer}.")
    keys = [layer.keys.clone() for layer in cache.layers]  # each (1, kv_heads, seq_len, head_dim)
    values = [layer.values.clone() for layer in cache.layers]
    count = int(round(fraction * seq_len))
    chosen = torch.arange(0)
    if count:
        choose = (count, selection, check_layer, seed)
        chosen = _recompute(model, layers, rotary, ids, keys, values, *choose)
    blended = new_cache(model)
    for layer_idx, (k, v) in enumerate(zip(keys, values, strict=True)):
        blended.update(k, v, layer_idx)
    return blended, chosen.cpu().numpy()


def _causal_mask(positions, seq_len: int, dtype) -> torch.Tensor:
    """Return an additive mask (1, 1, len(positions), seq_len): 0 up to each position, else -inf."""
    allowed = positions[:, None] >= torch.arange(seq_len, device=positions.device)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=positions.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[None, None]


def _recompute(model, layers, rotary, ids, keys, values, count, selection, check_layer, seed):
    device = keys[0].device
    positions = torch.arange(len(ids), device=device)  # the positions computed in this layer
    with torch.no_grad():
        hidden = model.get_input_embeddings()(ids[None].to(device))  # (1, seq_len, hidden)
        cos, sin = rotary(hidden, positions[None])  # (1, seq_len, head_dim)
        for layer_idx, layer in enumerate(layers):
            choose = None
            if layer_idx == check_layer:
                choose = _chooser(count, selection, keys[layer_idx], values[layer_idx], seed)
            writer = _LayerWriter(keys[layer_idx], values[layer_idx], positions, choose)
            hidden = layer(
                hidden,
                attention_mask=_causal_mask(positions, len(ids), hidden.dtype),
                position_ids=positions[None],
                position_embeddings=(cos[:, positions], sin[:, positions]),
                cache=writer,
                use_cache=True,
            )
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden  # transformers 4 layers
            if writer.chosen is not None:  # from here on, only the chosen positions
                hidden, positions = hidden[:, writer.chosen], positions[writer.chosen]
    return positions
