"""What every engine model shares: the result of serving one prompt, and the engine protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from labkit.tokens import Tokens, as_tokens, common_prefix_len, token_bytes

__all__ = [
    "Engine",
    "LocalEngine",
    "ServeResult",
    "Tokens",
    "as_tokens",
    "common_prefix_len",
    "kept_output",
    "token_bytes",
]


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
    """What every engine model offers.

    `serve` serves one prompt and, after it, keeps in its cache what the engine would keep of
    the `generated` tokens (the reply, through its end-of-turn token; see
    `labkit.engines.replies`).
    """

    name: str  # the key: `make_engine(name)`, `--engine name`
    label: str  # what a learner reads: "llama.cpp server", "vLLM", ...

    def serve(
        self,
        tokens: Sequence[int],
        *,
        breakpoints: Sequence[int] | None = None,
        t_s: float | None = None,
        generated: Sequence[int] = (),
    ) -> ServeResult: ...

    def reset(self) -> None: ...


def kept_output(generated: Sequence[int]) -> Tokens:
    """Return what an engine keeps of the tokens it generated: all but the last sampled one.

    The last sampled token is never fed back through the model, so no engine holds its K/V
    (see `labkit.engines.replies` for each engine's source).
    """
    return as_tokens(generated)[:-1] if len(generated) > 1 else ()


class LocalEngine:
    """The entry point the local servers' models share (llama.cpp, vLLM, SGLang).

    `serve` takes the `Engine` protocol's arguments, reduces `generated` to what a local engine
    keeps of its output (`kept_output`) and hands the prompt and that to the engine's own
    `_serve(tokens, kept)`. `breakpoints` and `t_s` are the hosted API's and mean nothing here.
    """

    def serve(
        self,
        tokens: Sequence[int],
        *,
        breakpoints: Sequence[int] | None = None,
        t_s: float | None = None,
        generated: Sequence[int] = (),
    ) -> ServeResult:
        """Serve one prompt, then keep it and what the engine keeps of `generated`."""
        return self._serve(as_tokens(tokens), kept_output(generated))

    def _serve(self, tokens: Tokens, kept: Tokens) -> ServeResult:
        raise NotImplementedError
