"""What every engine model shares: the result of serving one prompt, and token-id helpers."""

from __future__ import annotations

import operator
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Tokens = tuple[int, ...]


@dataclass(frozen=True)
class ServeResult:
    """How one engine served one prompt: tokens from cache and tokens computed."""

    n_tokens: int  # prompt length
    cached: int  # tokens served from cache
    computed: int  # tokens prefilled; n_tokens == cached + computed
    detail: dict = field(default_factory=dict)  # engine extras, in the engine's own names

    def __post_init__(self) -> None:
        if self.cached < 0 or self.computed < 0 or self.cached + self.computed != self.n_tokens:
            raise ValueError(
                f"Inconsistent counts: {self.cached} + {self.computed} "
                f"!= {self.n_tokens}; this is a bug in the engine model."
            )

    @property
    def cached_fraction(self) -> float:
        """Return the share of the prompt served from cache."""
        return self.cached / self.n_tokens


class Engine(Protocol):
    """What every engine model offers."""

    name: str

    def serve(
        self,
        tokens: Sequence[int],
        *,
        breakpoints: Sequence[int] | None = None,
        t_s: float | None = None,
    ) -> ServeResult: ...

    def reset(self) -> None: ...


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
    """Return the length of the longest common prefix of two token sequences."""
    a, b = tuple(a), tuple(b)
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
