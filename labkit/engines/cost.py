"""Price a session's prompts on a hosted API, with and without prompt caching.

Multipliers and minimums come from data/prompt_caching_apis.json, a dated snapshot: check the
vendor's live pricing page before quoting a figure.
"""

from __future__ import annotations

from collections.abc import Sequence

from labkit.engines.hosted_api import AnthropicAPI
from labkit.engines.registry import request_fields, simulate
from labkit.engines.replies import api_view

__all__ = ["api_session_cost", "input_cost_usd"]


def input_cost_usd(
    input_tokens: int,
    cache_write_tokens: int,
    cache_read_tokens: int,
    *,
    base_input_usd_per_mtok: float,
    write_multiplier: float = 1.25,
    read_multiplier: float = 0.1,
) -> float:
    """Return the input price of a request: writes and reads weighted by their multipliers."""
    weighted = (
        input_tokens + write_multiplier * cache_write_tokens + read_multiplier * cache_read_tokens
    )
    return weighted * base_input_usd_per_mtok / 1e6


def api_session_cost(
    rendered: Sequence,
    *,
    base_input_usd_per_mtok: float,
    caching: bool = True,
    **api_options,
) -> dict:
    """Return the input tokens by kind and the USD of a session on the Anthropic-style cache model.

    The model sees every token it is given: a session rendered with the attribution line is the
    gateway case (a proxy that caches the line as text), not Anthropic's own API, which handles
    the line apart from the prompt.

    With `caching=False` no request carries `cache_control`: every token is plain input.
    Multipliers and the minimum cacheable length come from data/prompt_caching_apis.json unless
    given in `api_options` (see `AnthropicAPI`).
    """
    api = AnthropicAPI(**api_options)
    requests = []
    for request in rendered:  # in the API's prefix order: tools -> system -> messages
        tokens, breakpoints, t_s = request_fields(api_view(request))
        breakpoints = breakpoints if caching else []
        requests.append({"tokens": tokens, "breakpoints": breakpoints, "t_s": t_s})
    totals = {"input_tokens": 0, "cache_write_tokens": 0, "cache_read_tokens": 0}
    for result in simulate(api, requests):
        totals["input_tokens"] += result.detail["input_tokens"]
        totals["cache_write_tokens"] += result.detail["cache_creation_input_tokens"]
        totals["cache_read_tokens"] += result.detail["cache_read_input_tokens"]
    totals["cost_usd"] = input_cost_usd(
        **totals,
        base_input_usd_per_mtok=base_input_usd_per_mtok,
        write_multiplier=api.write_multiplier,
        read_multiplier=api.read_multiplier,
    )
    return totals
