"""Token-id sequences: normalise them, compare their prefixes, hash them."""

from __future__ import annotations

import operator
from array import array
from collections.abc import Sequence
from typing import Any

__all__ = ["Tokens", "as_tokens", "common_prefix_len", "token_bytes"]

Tokens = tuple[int, ...]


def as_tokens(tokens: Any) -> Tokens:
    """Return the prompt as a tuple of int token ids, or raise saying what to pass."""
    if isinstance(tokens, (str, bytes)):
        raise TypeError("Pass token ids (a list of ints), not text: tokenize the prompt first.")
    if hasattr(tokens, "tolist"):  # a NumPy array or a torch tensor
        tokens = tokens.tolist()
    try:  # operator.index accepts Python, NumPy and torch integers, and rejects the rest
        tokens = tuple(map(operator.index, tokens))
    except TypeError:
        raise TypeError("Token ids must be ints: pass tokenizer(...).input_ids.") from None
    if not tokens:
        raise ValueError("The prompt has no tokens: pass at least one token id.")
    return tokens


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Return the length of the longest common prefix of two token sequences (or two strings)."""
    a, b = (x if isinstance(x, (str, bytes, tuple)) else tuple(x) for x in (a, b))
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while hi - lo > 1:  # a[:lo] == b[:lo] and a[:hi] != b[:hi]: bisect with C-speed compares
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def token_bytes(tokens: Sequence[int]) -> bytes:
    """Return token ids as bytes (int64 each), for hashing."""
    return array("q", tokens).tobytes()
