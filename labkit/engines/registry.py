"""Model, request by request, how serving engines split a prompt into cached and computed tokens.

Each engine works on token ids and returns a `ServeResult`; this module names them and runs them.
The rules follow the engines' source, cited in each engine's module:

- llama.cpp `llama-server` (ggml-org/llama.cpp): `tools/server/server-context.cpp`
  (`get_available_slot`; the `[TAG_PROMPT_LOGITS]` step of `update_slots`) and
  `tools/server/server-task.cpp` (`server_prompt_cache::alloc`, `load`, `update`).
- vLLM (vllm-project/vllm): `vllm/v1/core/kv_cache_manager.py` (`get_computed_blocks`),
  `kv_cache_utils.py` (`hash_block_tokens`), `single_type_kv_cache_manager.py` (`free`),
  `block_pool.py`, and `docs/design/prefix_caching.md`.
- SGLang (sgl-project/sglang): `python/sglang/srt/mem_cache/radix_cache.py` (`match_prefix`,
  `_split_node`, `_insert_helper`, `evict`) and `managers/schedule_batch.py`
  (`Req.adjust_max_prefix_ids`).
- An Anthropic-style prompt cache that sees the attribution line as text (a gateway or proxy;
  Anthropic's own API handles the line apart): see `labkit/engines/hosted_api.py`.
- What each engine keeps of the tokens it generated: see `labkit/engines/replies.py`.

Left out: batching, chunked prefill, sliding-window checkpoints and llama.cpp's `--cache-reuse`
KV shifting (which re-uses chunks shifted by a deletion, not the tokens after a same-length
changed token).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from labkit.engines.base import Engine, ServeResult
from labkit.engines.hosted_api import AnthropicAPI
from labkit.engines.llamacpp import LlamaCppServer
from labkit.engines.paged import SGLangRadixCache, VllmPrefixCache

_BY_NAME = {e.name: e for e in (LlamaCppServer, VllmPrefixCache, SGLangRadixCache, AnthropicAPI)}
ENGINE_NAMES = tuple(_BY_NAME)  # llamacpp, vllm, sglang, anthropic
# What a learner reads for each engine model (widgets, figure titles); the names stay the keys.
ENGINE_LABELS = {name: engine.label for name, engine in _BY_NAME.items()}
__all__ = ["ENGINE_LABELS", "ENGINE_NAMES", "make_engine", "request_fields", "simulate"]


def make_engine(name: str, **options: Any) -> Engine:
    """Return a fresh engine model by name: one of ENGINE_NAMES."""
    if name not in _BY_NAME:
        raise ValueError(f"Unknown engine {name!r}: choose one of {', '.join(ENGINE_NAMES)}.")
    return _BY_NAME[name](**options)


def request_fields(request: Any) -> tuple[Any, Any, Any]:
    """Return (tokens, breakpoints, t_s) of a token sequence, a mapping or a request object."""
    if isinstance(request, Mapping):
        return request["tokens"], request.get("breakpoints"), request.get("t_s")
    if hasattr(request, "tokens"):
        return request.tokens, getattr(request, "breakpoints", None), getattr(request, "t_s", None)
    return request, None, None


def simulate(
    engine: Engine,
    requests: Iterable[Any],
    *,
    generated: Sequence[Sequence[int]] | None = None,
) -> list[ServeResult]:
    """Serve the requests in order, from the engine's current state; return one result each.

    A request is a token sequence, a mapping with "tokens" (and optional "breakpoints", "t_s"),
    or an object with those attributes. `generated[k]`, if given, is what the engine generated
    after request k (`labkit.engines.replies.generated_after`); the engine keeps it as the real
    engine does. Call `engine.reset()` first for a cold start.
    """
    results = []
    for k, request in enumerate(requests):
        tokens, breakpoints, t_s = request_fields(request)
        reply = generated[k] if generated is not None else ()
        extra = {"generated": reply} if len(reply) else {}  # engines without it keep working
        results.append(engine.serve(tokens, breakpoints=breakpoints, t_s=t_s, **extra))
    return results
