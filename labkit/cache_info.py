"""Inspect a KV cache without running the model: its tokens, its model, its size; check reuse.

A cache made or grown by labkit (`labkit.cache`: `prefill`, `extend`, `copy_cache`,
`crop_cache`) carries the token ids of its positions (`cache_token_ids`) and a fingerprint of
the model that computed them (`model_identity`: the class, name and a sample of the embedding
weights). The checks here compare the tokens themselves, not a length, and refuse a cache made
by another model even when its shapes fit; transformers checks neither. A cache built by plain
transformers carries no tokens: only its length can be checked.

Sizes: `kv_cache_bytes` from a model's config (what a cache of seq_len tokens will take),
`cache_bytes` from a cache (what its tensors hold).
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass

import torch

from labkit.tokens import common_prefix_len as _common_prefix_len

__all__ = [
    "CacheMismatchError",
    "KVDims",
    "as_token_ids",
    "cache_bytes",
    "cache_len",
    "cache_token_ids",
    "check_cache_holds",
    "check_prefix",
    "check_same_model",
    "common_prefix_len",
    "crop_token_ids",
    "dtype_bytes",
    "kv_cache_bytes",
    "kv_dims",
    "layer_tensors",
    "model_identity",
    "tag_cache",
]


class CacheMismatchError(ValueError):
    """A cache was about to be reused for tokens it was not computed from."""


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


def cache_len(cache) -> int:
    """Return the number of token positions the cache holds (0 for None)."""
    return 0 if cache is None else int(cache.get_seq_length())


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


def tag_cache(cache, model, ids: torch.Tensor | None) -> None:
    """Record on the cache the token ids its positions hold and the model that computed them."""
    setattr(cache, _IDS_ATTR, None if ids is None else ids.detach().cpu().clone())
    setattr(cache, _MODEL_ATTR, model_identity(model))


def crop_token_ids(cache, seq_len: int) -> None:
    """Keep the recorded token ids of the first seq_len positions (after the cache was cut)."""
    ids = cache_token_ids(cache)
    if ids is not None:
        setattr(cache, _IDS_ATTR, ids[:seq_len].clone())


def check_same_model(model, cache) -> None:
    """Raise CacheMismatchError if the cache was computed by a model other than `model`."""
    made_by = getattr(cache, _MODEL_ATTR, None)
    if made_by is not None and made_by != model_identity(model):
        raise CacheMismatchError(
            "This cache was computed by another model (its weights differ from this model's), "
            "even if its shapes fit: reusing it would silently give wrong logits. Compute the "
            "prompt with this model (prefill) instead."
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


def layer_tensors(cache) -> list[tuple]:
    """Return (keys, values) per layer, from transformers 5 `layers` or 4 `key_cache`."""
    if hasattr(cache, "layers"):
        return [(getattr(la, "keys", None), getattr(la, "values", None)) for la in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


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
        for layer in layer_tensors(cache)
        for tensor in layer
        if isinstance(tensor, torch.Tensor)
    )
