"""Approximate reuse after an edit: shift a cache past a deletion, and normalise the request.

Shift. After a deletion, the tokens that follow it are the same tokens one or more positions
earlier. llama.cpp's `--cache-reuse N` reuses such chunks by *KV shifting* (ggml-org/llama.cpp
PR #9866: `llama_kv_cache_seq_add` moves the cells, and the K-shift graph re-applies RoPE to
their keys by the position delta). Rotary angles add, so rotating a key by the delta moves it
from its old position to its new one: layer 0 comes out right (its keys and values depend only
on the token and its position), but from layer 1 on every reused key and value still remembers
the deleted tokens it attended to. `shift_experiment` measures that, layer by layer, against a
full recompute, with transformers' own rotary functions for the model.

Normalise. The servers fixed the attribution line without any approximation: llama.cpp rewrites
the `cch=` value to a constant before matching the cache (ggml-org/llama.cpp PR #21793) and vLLM
leaves the block out of the prompt (vllm-project/vllm PR #36829). `normalise_cch` and
`strip_attribution` do the same to request text.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass

import numpy as np
import torch

from labkit.cache import as_token_ids, common_prefix_len, extend, new_cache, prefill
from labkit.experiments.kv_diff import LayerKV, kv_per_layer, kv_relative_difference, stack_cache
from labkit.experiments.stale_cache import Divergence, next_token_divergence
from labkit.resources import data_path
from labkit.sessions.edits import HEADER_LINE
from labkit.sessions.header import HEADER_NAME

NORMALISED_CCH = "fffff"  # the constant llama.cpp PR #21793 writes in place of the cch value
_CCH = re.compile(rf"^({re.escape(HEADER_NAME)}:[^\n<]*?\bcch=)([0-9a-fA-F]+)(;)", re.MULTILINE)


def lesson_conversation(name: str = "fix_parser") -> dict:
    """Return a bundled conversation (lessons 3 and 7): history, new_turn and date_question."""
    return json.loads(data_path("conversations", f"{name}.json").read_text(encoding="utf-8"))


def decoder_parts(model):
    """Return (decoder layers, rotary embedding, apply_rotary_pos_emb) of a Llama-style model."""
    decoder = getattr(model, "model", None)
    layers = getattr(decoder, "layers", None)
    rotary = getattr(decoder, "rotary_emb", None)
    apply = None
    if layers is not None and len(layers):
        apply = sys.modules[type(layers[0].self_attn).__module__].apply_rotary_pos_emb
    if layers is None or rotary is None or apply is None:
        raise TypeError(
            f"{type(model).__name__} is not a Llama-style decoder (model.model.layers, "
            "model.model.rotary_emb and its module's apply_rotary_pos_emb): lesson 7 needs one, "
            "such as the default SmolLM2 model, Qwen2.5 or tiny-random."
        )
    if getattr(rotary, "rope_type", "default") in ("dynamic", "longrope"):
        raise ValueError(
            f"{rotary.rope_type!r} RoPE changes its frequencies with the sequence length, so a "
            "key cannot be moved by rotating it: use a model with plain rotary positions."
        )
    return layers, rotary, apply


def rerotate_keys(model, keys: torch.Tensor, delta: int) -> torch.Tensor:
    """Return the keys rotated by `delta` positions (negative: earlier), as a RoPE K-shift does.

    keys: (batch, num_kv_heads, seq_len, head_dim), already rotated for their old positions.
    Uses the model's own rotary embedding at position `delta` and its `apply_rotary_pos_emb`.
    """
    _, rotary, apply = decoder_parts(model)
    if delta == 0:
        return keys.clone()
    positions = torch.full((1, keys.shape[2]), int(delta), device=keys.device)
    cos, sin = rotary(keys, positions)  # (1, seq_len, head_dim), times attention_scaling
    scale = float(getattr(rotary, "attention_scaling", 1.0) or 1.0)
    _, shifted = apply(keys, keys, cos / scale, sin / scale)  # a pure rotation
    return shifted


def find_deletion(original_ids, edited_ids) -> tuple[int, int] | None:
    """Return (position, deleted_len) if edited = original with tokens deleted at position.

    edited may go on past the end of original (request k+1 appends a turn). Return None when no
    deletion explains the edit (a same-length change, an insertion, or a replacement).
    """
    original, edited = as_token_ids(original_ids).tolist(), as_token_ids(edited_ids).tolist()
    position = common_prefix_len(original, edited)
    for deleted_len in range(1, len(original) - position):  # keep at least one token
        tail = original[position + deleted_len :]
        if edited[position : position + len(tail)] == tail:
            return position, deleted_len
    return None


def _no_deletion_message(position: int) -> str:
    return (
        f"No deletion explains the edit at token {position}, so there is nothing to shift. After "
        "a same-length change every later token already sits at its own position: what is wrong "
        "in the reused keys and values is what they attended to, and only recomputing fixes "
        "that (labkit.experiments.blend). Shifting handles a deleted span (e.g. a shorter cch= "
        "value)."
    )


def shifted_cache(model, original_cache, original_ids, edited_ids, *, rerotate: bool = True):
    """Return (cache, reused_len): the original's cache shifted past a deletion, for edited.

    Positions before the deletion are copied; the positions after it move `deleted_len` earlier,
    their keys re-rotated (rerotate=False keeps the old rotation: the naive, wrong shift). The
    cache covers edited[:reused_len]; the rest of edited must be computed on top of it.
    """
    original, edited = as_token_ids(original_ids), as_token_ids(edited_ids)
    found = find_deletion(original, edited)
    if found is None:
        raise ValueError(_no_deletion_message(common_prefix_len(original, edited)))
    position, deleted_len = found
    cache = new_cache(model)
    for layer_idx, layer in enumerate(original_cache.layers):
        keys, values = layer.keys, layer.values  # (batch, num_kv_heads, seq_len, head_dim)
        moved = keys[:, :, position + deleted_len :]
        if rerotate:
            moved = rerotate_keys(model, moved, -deleted_len)
        new_keys = torch.cat([keys[:, :, :position], moved], dim=2)
        new_values = torch.cat([values[:, :, :position], values[:, :, position + deleted_len :]], 2)
        cache.update(new_keys.clone(), new_values.clone(), layer_idx)
    return cache, len(original) - deleted_len


@dataclass(frozen=True)
class ShiftResult:
    """Reuse after a deletion by KV shifting, compared with a full recompute of the edit."""

    position: int  # where the deletion starts
    deleted_len: int  # tokens deleted
    reused_len: int  # positions of the edited request served from the shifted cache
    computed_len: int  # positions computed on top (the new turn)
    keys_rel: np.ndarray  # (num_layers, num_moved) relative key error of the moved positions
    values_rel: np.ndarray  # (num_layers, num_moved) relative value error
    keys_rel_unrotated: np.ndarray  # (num_layers, num_moved) the same without re-rotation
    shifted: Divergence  # next-token predictions of the computed positions, vs full recompute
    unrotated: Divergence  # the same from the shift without re-rotation

    def per_layer(self, part: str = "keys", *, rotated: bool = True) -> np.ndarray:
        """Return the median relative error over the moved positions, per layer."""
        if part == "values":
            return np.median(self.values_rel, axis=1)
        return np.median(self.keys_rel if rotated else self.keys_rel_unrotated, axis=1)


def shift_experiment(model, original_ids, edited_ids) -> ShiftResult:
    """Shift the original's cache past the deletion, compute the rest, compare with truth.

    The reference is a full prefill of edited. Both shifts (with and without re-rotation) are
    compared position by position in every layer, and by the next-token predictions of the
    positions computed on top (at least the last token, recomputed if the deletion is all).
    """
    original, edited = as_token_ids(original_ids), as_token_ids(edited_ids)
    found = find_deletion(original, edited)
    if found is None:  # before any computation
        raise ValueError(_no_deletion_message(common_prefix_len(original, edited)))
    _, original_cache = prefill(model, original, last_only=True)
    ref_logits, ref_cache = prefill(model, edited)  # (1, seq_len, vocab_size)
    reference = stack_cache(ref_cache)
    results = {}
    for rerotate in (True, False):
        cache, reused_len = shifted_cache(
            model, original_cache, original, edited, rerotate=rerotate
        )
        if reused_len >= len(edited):  # nothing left to compute: recompute the last token
            cache.crop(len(edited) - 1 - reused_len)
            reused_len = len(edited) - 1
        kv = stack_cache(cache)
        logits, _ = extend(model, cache, edited[reused_len:])
        results[rerotate] = (kv, reused_len, logits)
    kv, reused_len, logits = results[True]
    position, deleted_len = found
    moved = slice(position, reused_len)

    def rel(test: LayerKV, part: str) -> np.ndarray:
        ref = LayerKV(reference.keys[:, :, moved], reference.values[:, :, moved])
        return kv_relative_difference(
            ref, LayerKV(test.keys[:, :, moved], test.values[:, :, moved]), part=part
        )

    ref = ref_logits[:, reused_len:]
    return ShiftResult(
        position=position,
        deleted_len=deleted_len,
        reused_len=reused_len,
        computed_len=len(edited) - reused_len,
        keys_rel=rel(kv, "keys"),
        values_rel=rel(kv, "values"),
        keys_rel_unrotated=rel(results[False][0], "keys"),
        shifted=next_token_divergence(ref, logits),
        unrotated=next_token_divergence(ref, results[False][2]),
    )


def same_length_reuse_error(model, original_ids, edited_ids) -> np.ndarray:
    """Return the K/V error (num_layers, seq_len) of reusing a cache for a same-length edit.

    No shift can help: the positions are already right. Column j is position j.
    """
    original, edited = as_token_ids(original_ids), as_token_ids(edited_ids)
    if len(original) != len(edited):
        raise ValueError(
            f"The requests have {len(original)} and {len(edited)} tokens: pass a same-length "
            "edit (for a deletion, use shift_experiment)."
        )
    return kv_relative_difference(kv_per_layer(model, original), kv_per_layer(model, edited))


def normalise_cch(text: str, constant: str = NORMALISED_CCH) -> str:
    """Return text with the attribution line's `cch=` value replaced by a constant (llama.cpp)."""
    return _CCH.sub(lambda m: f"{m.group(1)}{constant}{m.group(3)}", text)


def strip_attribution(text: str) -> str:
    """Return text without the attribution line (vLLM leaves the block out)."""
    return HEADER_LINE.sub("", text)


def normalise_messages(messages: list[dict], rule=normalise_cch) -> list[dict]:
    """Return chat messages with `rule` (a text -> text function) applied to the system prompt."""
    return [
        {**m, "content": rule(m["content"])}
        if m.get("role") == "system" and isinstance(m.get("content"), str)
        else m
        for m in messages
    ]
