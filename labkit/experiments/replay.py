"""Replay a session through the real model with a PrefixCache, time each turn, fit and project.

The simulations in `labkit.engines.session_sim` count tokens; here the model really computes
them, so the count becomes seconds on this hardware, and a fit of seconds against tokens
projects longer contexts than the small model can hold.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from labkit.cache import copy_cache, extend, kv_dims, new_cache
from labkit.prefix_cache import PrefixCache
from labkit.sessions.edits import with_attribution
from labkit.sessions.format import request_shape
from labkit.timing import measure, spread

__all__ = [
    "PrefillFit",
    "ReplayTurn",
    "fit_prefill_time",
    "prefill_flops",
    "project_turn_s",
    "replay_sessions",
    "shorten_session",
]


def _cut(text: str, tokenizer, max_tokens: int) -> str:
    """Return `text` cut to at most `max_tokens` tokens, at a line end when one is near."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ends = [end for _, end in enc["offset_mapping"]]
    if len(ends) <= max_tokens:
        return text
    cut = text[: ends[max_tokens - 1]] if max_tokens > 0 else ""
    line_end = cut.rfind("\n")
    return cut[:line_end] if line_end > len(cut) // 2 else cut


def _cut_values(value, tokenizer, max_tokens: int):
    """Return a tool input with every string in it cut to `max_tokens` tokens."""
    if isinstance(value, str):
        return _cut(value, tokenizer, max_tokens)
    if isinstance(value, dict):
        return {k: _cut_values(v, tokenizer, max_tokens) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut_values(v, tokenizer, max_tokens) for v in value]
    return value


def _cut_content(content, tokenizer, max_tokens: int):
    """Return a message's content (or a tool result's) with each text cut to `max_tokens`."""
    if isinstance(content, str):
        return _cut(content, tokenizer, max_tokens)
    blocks = []
    for block in content or []:
        field = {"text": "text", "thinking": "thinking", "tool_use": "input"}.get(block["type"])
        if field is None:  # a tool_result: its content is text or text blocks
            field, cut = "content", _cut_content(block.get("content", ""), tokenizer, max_tokens)
        else:
            cut = _cut_values(block.get(field, ""), tokenizer, max_tokens)
        blocks.append({**block, field: cut})
    return blocks


def shorten_session(
    requests: list[dict],
    tokenizer,
    *,
    system_tokens: int = 500,
    n_requests: int = 5,
    block_tokens: int = 48,
    keep_tools: bool = False,
) -> list[dict]:
    """Return the first `n_requests` requests of an Anthropic-shape session, made short.

    The system blocks are cut to about `system_tokens` tokens in all (at a line end where one is
    near), the tool definitions dropped unless `keep_tools`, and every message text, tool input
    string and tool result cut to `block_tokens` tokens. A text is cut the same way wherever it
    appears, so a session that grew append-only still does. The attribution line is removed (add
    it back when rendering). Needs a fast tokenizer (one with offsets).
    """
    short = []
    for request in requests[:n_requests]:
        if request_shape(request) != "anthropic":
            raise ValueError("shorten_session reads Anthropic-shape requests (data/sessions/).")
        request = with_attribution(request, False)
        system = request.get("system") or []
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
        budget, kept = system_tokens, []
        for block in blocks:
            text = _cut(block["text"], tokenizer, budget)
            budget -= len(tokenizer(text, add_special_tokens=False)["input_ids"])
            if text:
                kept.append({**block, "text": text})
            if budget <= 0:
                break
        if kept and any("cache_control" in b for b in blocks):
            kept[-1]["cache_control"] = {"type": "ephemeral"}
        request["system"] = kept
        if not keep_tools:
            request.pop("tools", None)
        request["messages"] = [
            {**m, "content": _cut_content(m["content"], tokenizer, block_tokens)}
            for m in request["messages"]
        ]
        short.append(request)
    return short


@dataclass(frozen=True)
class ReplayTurn:
    """One request served by a real PrefixCache: tokens reused and computed, and prefill time."""

    turn: int
    n_tokens: int
    tokens_reused: int
    tokens_computed: int
    prefill_s: float  # median time to compute the tokens not reused
    spread_s: float  # interquartile range (max - min under 4 repeats)
    min_s: float  # the fastest repeat: the one least disturbed by other work on the machine
    device_name: str


KEEP = ("last", "all")


def replay_sessions(
    model, sessions: dict[str, list], *, repeats: int = 3, keep: str = "last"
) -> dict[str, list]:
    """Serve each session's requests in order, each through its own PrefixCache; time each turn.

    A request is token ids or an object with `.tokens`. What the store keeps between turns says
    which engine the replay is: `keep="last"` keeps only the previous request's cache, like
    llama-server with one slot and no RAM prompt cache (compare with
    `simulate_session(..., "llamacpp", cache_ram=False)`); `keep="all"`
    keeps every earlier request, like SGLang's radix tree with page size 1 and no eviction. Turn
    k of every session is served once (storing its cache for turn k+1), then the forward pass
    over its computed tokens, after a fresh copy of the reused prefix, is timed `repeats` times
    with `labkit.measure` (the copy is not counted), the sessions taking turns so that other load
    on the machine hits them alike. Returns {label: [ReplayTurn, ...]}.
    """
    if keep not in KEEP:
        raise ValueError(
            f"keep={keep!r} is not a replay store: use 'last' (one llama.cpp slot) or 'all'."
        )
    caches = {label: PrefixCache(model) for label in sessions}
    out: dict[str, list] = {label: [] for label in sessions}
    for turn in range(max(len(requests) for requests in sessions.values())):
        runs = {}
        for label, requests in sessions.items():
            if turn < len(requests):
                ids = getattr(requests[turn], "tokens", requests[turn])
                result = caches[label].serve(ids, store=keep == "all")
                if keep == "last":  # the slot now holds this request only
                    caches[label].clear()
                    caches[label].insert(result.token_ids, result.cache)
                runs[label] = (result, [])
        for _ in range(repeats):
            for result, timings in runs.values():
                timings.append(_time_prefill(model, result))
        for label, (result, timings) in runs.items():
            times_s = [timing.median_s for timing in timings]  # one run each
            out[label].append(
                ReplayTurn(
                    turn=turn,
                    n_tokens=result.seq_len,
                    tokens_reused=result.tokens_reused,
                    tokens_computed=result.tokens_computed,
                    prefill_s=statistics.median(times_s),
                    spread_s=spread(times_s),
                    min_s=min(times_s),
                    device_name=timings[0].device_name,
                )
            )
    return out


def _time_prefill(model, result):
    """Return one Timing of computing the result's new tokens after its reused prefix."""
    reused = result.tokens_reused
    new_ids = result.token_ids[reused:]

    def fresh_prefix():
        return copy_cache(result.cache, reused) if reused else new_cache(model)

    return measure(
        lambda cache: extend(model, cache, new_ids, last_only=True),
        setup=fresh_prefix,
        warmup=0,
        repeats=1,
        device=model.device,
    )


@dataclass(frozen=True)
class PrefillFit:
    """Prefill seconds = intercept_s + s_per_token * tokens computed, fitted on this hardware."""

    intercept_s: float
    s_per_token: float
    r2: float
    n_points: int
    device_name: str

    def predict_s(self, tokens_computed: float) -> float:
        """Return the predicted prefill seconds for computing `tokens_computed` tokens."""
        return self.intercept_s + self.s_per_token * tokens_computed


def fit_prefill_time(tokens_computed, times_s, *, device_name: str = "") -> PrefillFit:
    """Return the least-squares line of prefill seconds against tokens computed.

    A line leaves out attention, whose cost per token grows with the context: at long contexts
    it is a lower bound (see `prefill_flops`).
    """
    x, y = np.asarray(tokens_computed, float), np.asarray(times_s, float)
    if len(x) < 3 or np.ptp(x) == 0:
        raise ValueError("Need at least 3 timed turns with different token counts to fit a line.")
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    r2 = 1.0 - float(residual @ residual) / float(((y - y.mean()) ** 2).sum())
    return PrefillFit(float(intercept), float(slope), r2, len(x), device_name)


def prefill_flops(config, num_weights: int, tokens_computed: int, tokens_reused: int = 0):
    """Return (weights, attention) FLOPs of computing tokens after `tokens_reused` cached ones.

    Weights: 2 per weight per token (a multiply and an add). Attention: for each (query, key)
    pair, 2 * head_dim for the score and 2 * head_dim for the weighted value, in every query
    head of every layer; a token at position p attends to p + 1 keys.
    """
    dims = kv_dims(config)
    pairs = tokens_computed * tokens_reused + tokens_computed * (tokens_computed + 1) // 2
    attention = 4 * dims.head_dim * dims.num_attention_heads * dims.num_layers * pairs
    return 2 * num_weights * tokens_computed, attention


def project_turn_s(fit: PrefillFit, context_tokens: int, new_tokens: int) -> dict[str, float]:
    """Return one turn's prefill seconds at `context_tokens`: recompute all, or the new ones."""
    return {
        "header on": fit.predict_s(context_tokens),
        "header off": fit.predict_s(new_tokens),
    }
