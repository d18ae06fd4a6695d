"""A prefix cache over real KV caches: reuse the longest stored prefix, compute only the rest."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from labkit.cache import copy_cache, extend, prefill
from labkit.cache_info import (
    as_token_ids,
    cache_bytes,
    check_cache_holds,
    check_prefix,
    check_same_model,
    common_prefix_len,
)


@dataclass
class PrefixCacheResult:
    """How one request was served: its logits, its own cache, and the tokens reused and computed."""

    logits: (
        torch.Tensor
    )  # (1, 1, vocab_size), or (1, tokens_computed, vocab_size) with last_only=False
    cache: Any  # this request's own cache, holding all its tokens; safe to extend
    token_ids: torch.Tensor  # (seq_len,) the tokens the cache was computed from
    tokens_reused: int
    tokens_computed: int

    @property
    def seq_len(self) -> int:
        """Return the request's length in tokens."""
        return self.tokens_reused + self.tokens_computed


@dataclass
class _Entry:
    token_ids: torch.Tensor  # (seq_len,) on the CPU
    cache: Any
    num_bytes: int


class PrefixCache:
    """Store request caches; serve each request from the longest stored prefix of its tokens.

    Each entry keeps its own copy of the exact token ids its cache was computed from (compared
    token by token with what the cache records, when labkit made it), so a cache is only ever
    reused for the positions whose tokens match; a cache computed by another model is refused.
    Memory stays under capacity_tokens and/or capacity_bytes by evicting the least recently used
    entries. An entry whose tokens are a
    prefix of a newer one is dropped: the newer entry serves every request the older one could.
    """

    def __init__(
        self, model, capacity_tokens: int | None = None, capacity_bytes: int | None = None
    ):
        self.model = model
        self.capacity_tokens = capacity_tokens
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[int, _Entry] = OrderedDict()  # least recently used first
        self._next_key = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def stored_tokens(self) -> int:
        """Return the token positions held by all entries."""
        return sum(len(entry.token_ids) for entry in self._entries.values())

    @property
    def stored_bytes(self) -> int:
        """Return the bytes held by all entries' key and value tensors."""
        return sum(entry.num_bytes for entry in self._entries.values())

    def entries(self) -> list[torch.Tensor]:
        """Return the token ids of each entry, least recently used first."""
        return [entry.token_ids for entry in self._entries.values()]

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()

    def lookup(self, token_ids) -> tuple[int | None, int]:
        """Return (entry key, tokens reusable) for the longest stored prefix of token_ids.

        At most len(token_ids) - 1 tokens are reusable: the last one is always computed, to
        have its logits.
        """
        ids = as_token_ids(token_ids)
        best_key, best_len = None, 0
        for key, entry in self._entries.items():
            same = common_prefix_len(entry.token_ids, ids)
            if same > best_len:
                best_key, best_len = key, same
        return best_key, min(best_len, len(ids) - 1)

    def serve(self, token_ids, *, store: bool = True, last_only: bool = True) -> PrefixCacheResult:
        """Compute a request from the longest stored prefix; store its cache unless store=False."""
        ids = as_token_ids(token_ids)
        if len(ids) == 0:
            raise ValueError("The request has no tokens: pass at least one token id.")
        key, reused = self.lookup(ids)
        if key is None or reused == 0:
            logits, cache = prefill(self.model, ids, last_only=last_only)
            reused = 0
        else:
            entry = self._entries[key]
            self._entries.move_to_end(key)
            check_prefix(entry.token_ids[:reused], ids)  # true by construction; guards changes
            cache = copy_cache(entry.cache, reused)
            logits, cache = extend(self.model, cache, ids[reused:], last_only=last_only)
        if store:
            self.insert(ids, cache)
        return PrefixCacheResult(logits, cache, ids, reused, len(ids) - reused)

    def insert(self, token_ids, cache) -> bool:
        """Store a copy of a cache computed from token_ids; return whether it was kept.

        Raise CacheMismatchError if the cache was computed by another model or (for a cache
        labkit made) from other tokens. The ids and the cache are copied: changing them later
        cannot change what is stored.
        """
        check_same_model(self.model, cache)
        ids = check_cache_holds(cache, token_ids).clone()
        num_bytes = cache_bytes(cache)
        if not self._fits(len(ids), num_bytes, 0, 0):
            return False  # larger than the whole capacity
        for key, entry in list(self._entries.items()):
            same = common_prefix_len(entry.token_ids, ids)
            if same == len(ids):  # already covered by an entry at least as long
                self._entries.move_to_end(key)
                return True
            if same == len(entry.token_ids):  # the new entry covers this one
                del self._entries[key]
        while self._entries and not self._fits(
            len(ids), num_bytes, self.stored_tokens, self.stored_bytes
        ):
            self._entries.popitem(last=False)
            self.evictions += 1
        self._entries[self._next_key] = _Entry(ids, copy_cache(cache), num_bytes)
        self._next_key += 1
        return True

    def _fits(self, num_tokens: int, num_bytes: int, used_tokens: int, used_bytes: int) -> bool:
        tokens_ok = self.capacity_tokens is None or used_tokens + num_tokens <= self.capacity_tokens
        bytes_ok = self.capacity_bytes is None or used_bytes + num_bytes <= self.capacity_bytes
        return tokens_ok and bytes_ok
