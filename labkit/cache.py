"""Prefill, extend, copy and crop transformers' own KV cache (`past_key_values`); generate with it.

Every function works on the cache objects transformers creates (`DynamicCache`): one layer per
model layer, each holding `keys` and `values` of shape (batch, num_kv_heads, seq_len, head_dim).

A cache made or grown here also records what it was computed from (its token ids and model), so
`extend` refuses another model's cache and `extend_checked` (and `labkit.prefix_cache.PrefixCache`)
compare the tokens themselves, not a length. What inspects a cache without running the model
(token ids, model identity, the checks, sizes in bytes) lives in `labkit.cache_info`; its names
are importable from here too.
"""

from __future__ import annotations

import copy
import functools
import inspect
import time

import torch

# Re-exported, as lessons and tests import them from here: labkit.cache_info's public names.
from labkit.cache_info import (  # noqa: F401
    CacheMismatchError,
    KVDims,
    as_token_ids,
    cache_bytes,
    cache_len,
    cache_token_ids,
    check_cache_holds,
    check_prefix,
    check_same_model,
    common_prefix_len,
    crop_token_ids,
    dtype_bytes,
    kv_cache_bytes,
    kv_dims,
    layer_tensors,
    model_identity,
    tag_cache,
)


@functools.cache
def _forward_names(model_cls: type) -> tuple[str, bool, bool]:
    """Return the cache keyword (`cache` or `past_key_values`) and which extras forward takes."""
    params = inspect.signature(model_cls.forward).parameters
    cache_kw = "cache" if "cache" in params else "past_key_values"
    return cache_kw, "logits_to_keep" in params, "cache_position" in params


def _batched(model, input_ids) -> torch.Tensor:
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    ids = ids.unsqueeze(0) if ids.dim() == 1 else ids  # (batch, seq_len)
    if ids.shape[-1] == 0:
        raise ValueError("No tokens to compute: pass at least one token id.")
    return ids.to(model.device)


def new_cache(model):
    """Return an empty `DynamicCache` for the model."""
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)
    except TypeError:  # transformers before 4.56 takes no config
        return DynamicCache()


def _forward(model, input_ids, cache, last_only: bool):
    """Run the model on input_ids after the cache's positions; return (logits, cache).

    With cache=None the model runs without any cache (use_cache=False) and returns None.
    """
    cache_kw, has_logits_to_keep, has_cache_position = _forward_names(type(model))
    ids = _batched(model, input_ids)  # (batch, num_new)
    past_len = cache_len(cache)
    max_len = getattr(model.config, "max_position_embeddings", None)
    if max_len and past_len + ids.shape[1] > max_len:
        raise ValueError(
            f"{past_len} cached + {ids.shape[1]} new tokens exceed the model's context of "
            f"{max_len} positions: use a shorter prompt (or crop the cache)."
        )
    positions = torch.arange(past_len, past_len + ids.shape[1], device=ids.device)
    kwargs = {
        cache_kw: cache,
        "use_cache": cache is not None,
        "position_ids": positions.unsqueeze(0).expand(ids.shape[0], -1),
    }
    if has_cache_position:
        kwargs["cache_position"] = positions
    if last_only and has_logits_to_keep:
        kwargs["logits_to_keep"] = 1
    with torch.no_grad():
        out = model(input_ids=ids, **kwargs)
    logits = out.logits[:, -1:, :] if last_only else out.logits  # (batch, num_new or 1, vocab)
    if cache is None:
        return logits, None
    returned = out.get("cache")
    return logits, returned if returned is not None else out.get("past_key_values", cache)


def prefill(model, input_ids, *, last_only: bool = False):
    """Compute input_ids from nothing; return (logits, cache).

    logits: (batch, seq_len, vocab_size), or (batch, 1, vocab_size) with last_only.
    """
    logits, cache = _forward(model, input_ids, new_cache(model), last_only)
    tag_cache(cache, model, _one_sequence(input_ids))
    return logits, cache


def extend(model, cache, new_ids, *, last_only: bool = False):
    """Compute new_ids after the cache's positions, growing it in place; return (logits, cache).

    Positions continue from `cache_len(cache)`. A cache computed by another model is refused
    (CacheMismatchError); nothing checks that the cache was computed from the tokens before
    new_ids: use `extend_checked` (or `PrefixCache`) for that.
    """
    check_same_model(model, cache)
    known = cache_token_ids(cache) if cache_len(cache) else torch.empty(0, dtype=torch.long)
    logits, cache = _forward(model, new_ids, cache, last_only)
    new = _one_sequence(new_ids)
    tag_cache(cache, model, None if known is None or new is None else torch.cat([known, new]))
    return logits, cache


def _one_sequence(token_ids) -> torch.Tensor | None:
    """Return token ids as one 1-D sequence, None for a batch of several."""
    ids = torch.as_tensor(token_ids, dtype=torch.long)
    if ids.dim() == 2 and ids.shape[0] != 1:
        return None
    return ids.reshape(-1).cpu()


def copy_cache(cache, seq_len: int | None = None):
    """Return an independent copy of the cache, of its first seq_len positions if given."""
    full_len = cache_len(cache)
    if seq_len is None or seq_len == full_len:
        return copy.deepcopy(cache)  # its token ids and model identity come along
    _check_crop(full_len, seq_len)
    layers = getattr(cache, "layers", None)  # transformers 4 keeps key_cache/value_cache lists
    if layers is None or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
        return crop_cache(copy.deepcopy(cache), seq_len)
    # Copy only the positions kept: deepcopy takes these cropped clones in place of the tensors.
    memo = {}
    for keys, values in layer_tensors(cache):  # (batch, num_kv_heads, seq_len, head_dim)
        for tensor in (keys, values):
            if isinstance(tensor, torch.Tensor):
                memo[id(tensor)] = tensor[..., :seq_len, :].clone()
    copied = copy.deepcopy(cache, memo)
    crop_token_ids(copied, seq_len)
    return copied


def _check_crop(full_len: int, seq_len: int) -> None:
    if not 0 <= seq_len <= full_len:
        raise ValueError(
            f"Cannot crop a cache of {full_len} positions to {seq_len}: a cache can "
            "only be cut back, never grown. Use extend() to add tokens."
        )


def crop_cache(cache, seq_len: int):
    """Cut the cache back to its first seq_len positions, in place; return it."""
    full_len = cache_len(cache)
    _check_crop(full_len, seq_len)
    if seq_len < full_len:
        cache.crop(seq_len - full_len)  # a negative number removes that many tokens
        crop_token_ids(cache, seq_len)
    return cache


def extend_checked(model, cache, cached_ids, input_ids, *, last_only: bool = False):
    """Extend a cache computed from cached_ids with the rest of input_ids (the full prompt).

    Raise CacheMismatchError if the cache was computed by another model, does not hold
    cached_ids (compared token by token for a labkit-made cache) or input_ids does not start
    with cached_ids. Return (logits of the new positions, cache).
    """
    check_same_model(model, cache)
    cached = check_cache_holds(cache, cached_ids)
    input_ids = as_token_ids(input_ids)
    start = check_prefix(cached, input_ids)
    if start == len(input_ids):
        raise ValueError(
            f"The request adds no tokens to the {start} cached ones. To get logits for "
            f"its last token, crop_cache(cache, {start - 1}) and extend it again."
        )
    return extend(model, cache, input_ids[start:], last_only=last_only)


def generate_greedy(
    model, input_ids, max_new_tokens: int, *, use_cache: bool = True, step_s: list | None = None
) -> list[int]:
    """Return max_new_tokens greedily chosen token ids, computed with or without the cache.

    If step_s is a list, append the seconds each new token took (prefill included in the first).
    """
    ids = as_token_ids(input_ids)
    new_ids: list[int] = []
    cache = logits = None
    for _ in range(max_new_tokens):
        start_s = time.perf_counter()
        if not use_cache:  # recompute every position, every step
            all_ids = torch.cat([ids, torch.tensor(new_ids, dtype=torch.long)])
            logits, _ = _forward(model, all_ids, None, last_only=True)
        elif cache is None:
            logits, cache = prefill(model, ids, last_only=True)
        else:
            logits, cache = extend(model, cache, new_ids[-1:], last_only=True)
        new_ids.append(int(logits[0, -1].argmax()))  # .item() waits for the device
        if step_s is not None:
            step_s.append(time.perf_counter() - start_s)
    return new_ids
