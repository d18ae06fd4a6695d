"""Prefill, extend, copy, crop, measure and check transformers' own KV cache (`past_key_values`).

Every function works on the cache objects transformers creates (`DynamicCache`): one layer per
model layer, each holding `keys` and `values` of shape (batch, num_kv_heads, seq_len, head_dim).

A cache made or grown by labkit (`prefill`, `extend`, `copy_cache`, `crop_cache`) also knows
what it was computed from: the token ids of its positions (`cache_token_ids`) and the model that
computed them (`model_identity`: the class, name and a sample of the embedding weights). So
`extend_checked` and `labkit.prefix_cache.PrefixCache` compare the tokens themselves, not a
length, and refuse a cache made by another model even when its shapes fit; transformers checks
neither. A cache built by plain transformers carries no tokens: only its length can be checked.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import time
import weakref
from dataclasses import dataclass

import torch

from labkit.tokens import common_prefix_len as _common_prefix_len


class CacheMismatchError(ValueError):
    """A cache was about to be reused for tokens it was not computed from."""


@functools.cache
def _forward_names(model_cls: type) -> tuple[str, bool, bool]:
    """Return the cache keyword (`cache` or `past_key_values`) and which extras forward takes."""
    params = inspect.signature(model_cls.forward).parameters
    cache_kw = "cache" if "cache" in params else "past_key_values"
    return cache_kw, "logits_to_keep" in params, "cache_position" in params


def as_token_ids(token_ids) -> torch.Tensor:
    """Return token ids (a list, a 1-D tensor or a (1, seq_len) tensor) as a 1-D CPU tensor."""
    if isinstance(token_ids, str):
        raise TypeError("Pass token ids, not text: tokenize the prompt first.")
    ids = torch.as_tensor(token_ids, dtype=torch.long).cpu()
    if ids.dim() == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.dim() != 1:
        raise ValueError(
            f"Expected one sequence of token ids, got shape {tuple(ids.shape)}: "
            "pass a list of ints or a tensor of shape (1, seq_len)."
        )
    return ids


_IDENTITIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_IDS_ATTR, _MODEL_ATTR = "labkit_token_ids", "labkit_model_identity"


def model_identity(model) -> str:
    """Return a short fingerprint of a model: its class, name, dtype and embedding weights.

    Two models with the same weights share it; a model whose weights differ gets another. It is
    computed once per model object (a model changed in place afterwards keeps its fingerprint).
    """
    if model in _IDENTITIES:
        return _IDENTITIES[model]
    digest = hashlib.sha256(type(model).__name__.encode())
    config = getattr(model, "config", None)
    digest.update(str(getattr(config, "_name_or_path", "")).encode())
    embeddings = getattr(model, "get_input_embeddings", lambda: None)()
    weight = embeddings.weight if embeddings is not None else next(model.parameters())
    weight = weight.detach().reshape(-1)
    # Integer arithmetic: a float32 linspace rounds the last index of a large tensor past its end.
    index = torch.arange(256, device=weight.device, dtype=torch.int64) * (weight.numel() - 1) // 255
    sample = weight[index]
    digest.update(str(sample.dtype).encode() + sample.float().cpu().numpy().tobytes())
    _IDENTITIES[model] = digest.hexdigest()[:16]
    return _IDENTITIES[model]


def cache_token_ids(cache) -> torch.Tensor | None:
    """Return the token ids a labkit-made cache was computed from (1-D), None if unknown."""
    return getattr(cache, _IDS_ATTR, None)


def _tag(cache, model, ids: torch.Tensor | None) -> None:
    """Record on the cache the token ids its positions hold and the model that computed them."""
    setattr(cache, _IDS_ATTR, None if ids is None else ids.detach().cpu().clone())
    setattr(cache, _MODEL_ATTR, model_identity(model))


def check_same_model(model, cache) -> None:
    """Raise CacheMismatchError if the cache was computed by a model other than `model`."""
    made_by = getattr(cache, _MODEL_ATTR, None)
    if made_by is not None and made_by != model_identity(model):
        raise CacheMismatchError(
            "This cache was computed by another model (its weights differ from this model's), "
            "even if its shapes fit: reusing it would silently give wrong logits. Compute the "
            "prompt with this model (prefill) instead."
        )


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


def cache_len(cache) -> int:
    """Return the number of token positions the cache holds (0 for None)."""
    return 0 if cache is None else int(cache.get_seq_length())


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
    _tag(cache, model, _one_sequence(input_ids))
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
    _tag(cache, model, None if known is None or new is None else torch.cat([known, new]))
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
    for keys, values in _layer_tensors(cache):  # (batch, num_kv_heads, seq_len, head_dim)
        for tensor in (keys, values):
            if isinstance(tensor, torch.Tensor):
                memo[id(tensor)] = tensor[..., :seq_len, :].clone()
    copied = copy.deepcopy(cache, memo)
    _crop_tag(copied, seq_len)
    return copied


def _crop_tag(cache, seq_len: int) -> None:
    ids = cache_token_ids(cache)
    if ids is not None:
        setattr(cache, _IDS_ATTR, ids[:seq_len].clone())


def _layer_tensors(cache) -> list[tuple]:
    """Return (keys, values) per layer, from transformers 5 `layers` or 4 `key_cache`."""
    if hasattr(cache, "layers"):
        return [(getattr(la, "keys", None), getattr(la, "values", None)) for la in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


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
        _crop_tag(cache, seq_len)
    return cache


@dataclass(frozen=True)
class KVDims:
    """The numbers that size a KV cache."""

    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int


def kv_dims(config) -> KVDims:
    """Return a model's KVDims from a transformers config or a dict (HF or labkit key names)."""
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()

    def get(*names):
        for name in names:
            value = config.get(name) if isinstance(config, dict) else getattr(config, name, None)
            if value is not None:
                return int(value)
        return None

    num_layers = get("num_layers", "num_hidden_layers", "n_layer")
    num_heads = get("num_attention_heads", "n_head")
    num_kv_heads = get("num_kv_heads", "num_key_value_heads") or num_heads
    hidden_size = get("hidden_size", "n_embd")
    head_dim = get("head_dim") or (hidden_size // num_heads if hidden_size and num_heads else None)
    if None in (num_layers, num_kv_heads, head_dim):
        raise ValueError(
            "The config lacks num_layers/num_hidden_layers, num_kv_heads/"
            "num_key_value_heads (or num_attention_heads) or head_dim (or "
            "hidden_size): give those numbers to size the cache."
        )
    return KVDims(num_layers, num_heads or num_kv_heads, num_kv_heads, head_dim)


def dtype_bytes(dtype) -> int:
    """Return the bytes one element of dtype (a torch.dtype or a name like "bfloat16") takes."""
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    return torch.empty((), dtype=dtype).element_size()


def kv_cache_bytes(config, seq_len: int, dtype=torch.float32, batch_size: int = 1) -> int:
    """Return the bytes a full-attention KV cache of seq_len tokens occupies.

    2 (keys and values) x num_layers x num_kv_heads x head_dim x seq_len x batch x bytes each.
    """
    dims = kv_dims(config)
    per_token = 2 * dims.num_layers * dims.num_kv_heads * dims.head_dim * dtype_bytes(dtype)
    return per_token * seq_len * batch_size


def cache_bytes(cache) -> int:
    """Return the bytes the cache's key and value tensors hold."""
    return sum(
        tensor.numel() * tensor.element_size()
        for layer in _layer_tensors(cache)
        for tensor in layer
        if isinstance(tensor, torch.Tensor)
    )


def common_prefix_len(a, b) -> int:
    """Return how many leading token ids two sequences (lists or tensors) share."""
    return _common_prefix_len(as_token_ids(a).tolist(), as_token_ids(b).tolist())


def check_prefix(cached_ids, input_ids) -> int:
    """Return len(cached_ids), or raise CacheMismatchError if input_ids does not start with it."""
    cached_ids, input_ids = as_token_ids(cached_ids), as_token_ids(input_ids)
    same = common_prefix_len(cached_ids, input_ids)
    if same < len(cached_ids):
        found = (
            f"token {int(input_ids[same])}" if same < len(input_ids) else "the end of the request"
        )
        raise CacheMismatchError(
            f"The cache was computed from {len(cached_ids)} tokens, but the request differs from "
            f"them at position {same} (cached token {int(cached_ids[same])}, request has {found}). "
            "Reusing it would silently give wrong logits: transformers does not check. Reuse only "
            f"the first {same} positions (crop_cache(cache, {same})) and compute the rest, or "
            "let labkit.prefix_cache.PrefixCache pick the reusable prefix for you."
        )
    return len(cached_ids)


def check_cache_holds(cache, token_ids) -> torch.Tensor:
    """Return token_ids as a 1-D tensor; raise CacheMismatchError unless the cache holds them.

    For a cache labkit made, the token ids it was computed from are compared one by one; for a
    cache made elsewhere (no token ids recorded), only its length can be compared.
    """
    ids = as_token_ids(token_ids)
    if cache_len(cache) != len(ids):
        raise CacheMismatchError(
            f"The cache holds {cache_len(cache)} positions but {len(ids)} token ids were given: "
            "pass the exact token ids the cache was computed from."
        )
    held = cache_token_ids(cache)
    if held is not None and len(held) == len(ids):
        same = common_prefix_len(held, ids)
        if same < len(ids):
            raise CacheMismatchError(
                f"The cache was computed from other tokens than the {len(ids)} given: they differ "
                f"at position {same} (the cache holds token {int(held[same])}, the ids given "
                f"have {int(ids[same])}), for example after a crop and a new extend. Pass "
                "cache_token_ids(cache), the ids it really holds, or compute the prompt again."
            )
    return ids


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
