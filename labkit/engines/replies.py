"""What an engine generated after each request, read from the next request; the API's prefix order.

Real engines keep the KV of the tokens they generate, so when the next request carries the
assistant's reply exactly as the model produced it, that part is reused too. We do not run a
model here, so we take, as what the engine generated after request k, the assistant message
that request k+1 carries right after request k's messages, through its end-of-turn token
(`<|im_end|>` for ChatML). That is the best case: it assumes the model's output re-tokenizes to
the same ids. The end-of-turn token is the last sampled token, which stopped generation and was
never fed back, so no engine holds its KV:

- llama.cpp (`tools/server/server-context.cpp`, `update_slots`): a generating slot appends
  `slot.sampled` to `slot.prompt.tokens` only when it feeds it back for the next step; when
  `process_token` returns false (end of generation) the slot is released first. The slot keeps
  prompt + generated tokens but the last, and the next prompt is compared with all of it.
- vLLM (`vllm/v1/core/kv_cache_manager.py`, `allocate_slots`): every step caches the full
  blocks of `min(total_computed_tokens + num_new_tokens, request.num_tokens)` tokens, and
  `request.num_tokens` includes the output; so the full blocks filled while decoding are cached.
- SGLang (`python/sglang/srt/mem_cache/radix_cache.py`, `cache_finished_req`): inserts
  `(req.origin_input_ids + req.output_ids)[:-1]`, cut to whole pages.
- The hosted API caches prefixes at `cache_control` breakpoints of a request; a reply becomes
  cacheable only when a later request carries it, so replies change nothing there.

The hosted API also orders its cache prefix tools -> system -> messages (Anthropic's prompt
caching docs), while a local chat template renders the system prompt first and the tools after
it; `api_view` gives the engine model the request in the API's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labkit.engines.base import Tokens, as_tokens

__all__ = ["REPLIES", "api_view", "generated_after"]

REPLIES = ("cached", "ignored")


def generated_after(rendered: Sequence[Any]) -> list[Tokens]:
    """Return, for each request, the tokens the engine generated after it (empty if unknown).

    Request k's reply is request k+1's message number len(request k's messages), when request
    k+1 carries request k's roles first and that message is the assistant's: its content's tokens
    and the end-of-turn token after them. Requests without `roles` and `message_spans` (plain
    token lists, rendered `{"prompt": ...}` lines) and the last request have no known reply.
    """
    out: list[Tokens] = []
    for k, request in enumerate(rendered):
        nxt = rendered[k + 1] if k + 1 < len(rendered) else None
        roles = getattr(request, "roles", None) or []
        next_roles = getattr(nxt, "roles", None) or []
        n = len(roles)
        if not n or len(next_roles) <= n or next_roles[:n] != roles or next_roles[n] != "assistant":
            out.append(())
            continue
        span = nxt.message_spans[n]
        if span is None or span[1] >= len(nxt.tokens):
            out.append(())
            continue
        out.append(as_tokens(nxt.tokens[span[0] : span[1] + 1]))  # content + end-of-turn token
    return out


def api_view(request: Any) -> Any:
    """Return a rendered request as the hosted API orders its prefix: tools -> system -> messages.

    A request without `api_tokens` (no tools, a plain token list, a mapping) is returned as is.
    """
    api_tokens = getattr(request, "api_tokens", None)
    if api_tokens is None:
        return request
    return {
        "tokens": api_tokens,
        "breakpoints": request.api_breakpoints,
        "t_s": getattr(request, "t_s", None),
    }
