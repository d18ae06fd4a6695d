"""What a session's requests would reuse and cost on a hosted API (Anthropic, OpenAI).

A hosted API caches a prefix in its own order, **tools → system → messages** (Anthropic's
prompt-caching docs: "Cache prefixes are created in the following order: tools, system, then
messages"), not in a local chat template's order (system text first, tools after it): a tool
list that changes loses the system prompt too. The rules, from the dated snapshot in
`data/prompt_caching_apis.json` (check the live pages before quoting a figure):

- minimum cacheable length per model (below it nothing is cached and nothing is billed as a
  write); Anthropic caches at `cache_control` breakpoints (a top-level `cache_control` is
  automatic caching at the end; no mark at all caches nothing), OpenAI caches automatically;
- a lifetime: Anthropic 5 min, refreshed by each hit (1 h with `"ttl": "1h"`); OpenAI 5–10 min
  of inactivity (5 min taken here; `prompt_cache_retention: "24h"` keeps it a day). When the
  requests carry times (`t_s` seconds, or an ISO `captured_at` / `timestamp`, as `labkit proxy`
  writes), a pause longer than that is a "ttl-expired" cause;
- cost: Anthropic writes at 1.25× (5 min) or 2× (1 h) the base input price, reads at 0.1×
  (`labkit.engines.hosted_api.AnthropicAPI` models the breakpoints, entries and prices);
  OpenAI has no price list in the data file, so only tokens are reported.

Token counts use the lint's tokenizer, not the vendor's: read them as proportions. The request
in the API's order (segments, breakpoints, capture times) is `labkit.lint.hosted_segments`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labkit.engines.hosted_api import AnthropicAPI, load_prompt_caching_apis
from labkit.lint.hosted_segments import hosted_segments, hosted_tokens, request_time_s
from labkit.sessions.edits import with_attribution
from labkit.sessions.format import request_shape
from labkit.tokens import common_prefix_len

__all__ = [
    "HOSTED_APIS",
    "HostedReport",
    "HostedRequest",
    "api_for_model",
    "hosted_segments",
    "lint_hosted",
    "request_time_s",
]

HOSTED_APIS = ("anthropic", "openai")
OPENAI_TTL_S = 300.0  # "in-memory caches are cleared after 5-10 minutes of inactivity"


@dataclass
class HostedRequest:
    """One request on a hosted API: tokens read from cache, written, uncached, and its cost."""

    index: int
    n_tokens: int  # prompt tokens, counted in the API's order with the lint's tokenizer
    cached_tokens: int  # read from the cache
    written_tokens: int  # written to the cache (Anthropic; 0 on OpenAI)
    uncached_tokens: int  # neither
    cause: str = ""  # "", "ttl-expired" or "below-minimum" (keys of labkit.lint.causes.CAUSES)
    detail: str = ""
    gap_s: float | None = None  # time since the previous request, when the requests carry times
    cost_usd: float | None = None  # input cost, None without a price for the model
    lost_tokens: int = 0  # tokens the previous request left in the cache that were not read


@dataclass
class HostedReport:
    """A session on a hosted API: per request, totals, and the figures used (with their date)."""

    api: str
    model: str
    as_of: str
    source: str
    min_cacheable_tokens: int
    ttl_s: float
    requests: list[HostedRequest]
    price_usd_per_mtok: float | None = None  # base input price, when the data file has one
    cost_usd: float | None = None
    cost_without_cache_usd: float | None = None
    notes: list[str] = field(default_factory=list)


def api_for_model(model: str | None) -> str | None:
    """Return the hosted API a model name belongs to ("anthropic", "openai"), else None."""
    name = (model or "").lower()
    if name.startswith("claude") or "anthropic" in name:
        return "anthropic"
    if name.startswith(("gpt-", "chatgpt", "o1", "o3", "o4")):
        return "openai"
    return None


def _lookup(by_model: dict, model: str):
    """Return the entry whose key is the longest prefix of `model` (dates and suffixes ignored)."""
    keys = [k for k in by_model if model.startswith(k)]
    return by_model[max(keys, key=len)] if keys else None


def _anthropic_figures(figures: dict, model: str) -> tuple[int, float | None, list[str]]:
    notes, minimum = [], None
    for snapshot in reversed(figures["min_cacheable_tokens_snapshots"]):  # the latest first
        minimum = _lookup(snapshot["by_model"], model)
        if minimum is not None:
            notes.append(f"minimum {minimum:,} tokens for {model} (snapshot {snapshot['as_of']})")
            break
    if minimum is None:
        minimum = figures["default_min_cacheable_tokens"]
        notes.append(f"no minimum for {model!r} in the data file: {minimum:,} assumed")
    prices = figures["example_prices_usd_per_mtok"]
    price = _lookup({k: v for k, v in prices.items() if isinstance(v, dict)}, model)
    if price is None:
        notes.append(f"no price for {model!r} in the data file: cost not computed")
    return minimum, (price or {}).get("base_input"), notes


def lint_hosted(
    requests: list[dict], tokenizer, *, api: str, model: str | None = None
) -> HostedReport:
    """Return what a session's requests reuse and cost on a hosted API, in its prefix order."""
    if api not in HOSTED_APIS:
        raise ValueError(f"Unknown hosted API {api!r}: use one of {', '.join(HOSTED_APIS)}.")
    if any(request_shape(r) == "prompt" for r in requests):
        raise ValueError(
            "A rendered prompt has no tools/system/messages order: lint it without --api."
        )
    figures = load_prompt_caching_apis()
    model = model or next((r["model"] for r in requests if r.get("model")), "") or "unknown"
    if api == "anthropic":  # the vendor's API reads the attribution line apart from the prompt
        requests = [with_attribution(r, False) for r in requests]
    rendered = [hosted_tokens(r, tokenizer) for r in requests]
    times = [request_time_s(r) for r in requests]
    if api == "anthropic":
        facts = figures["anthropic"]
        minimum, price, notes = _anthropic_figures(facts, model)
        notes.append("the attribution line is read apart from the prompt by this API: left out")
        one_hour = any("1h" in ttls for _, _, ttls in rendered)
        ttl_s = float(facts["ttl_s"]["1h" if one_hour else "5m"])
        automatic = [isinstance(r.get("cache_control"), dict) for r in requests]
        if not any(b for _, b, _ in rendered) and not any(automatic):
            notes.append("no cache_control in any request: the Anthropic API caches nothing")
    else:
        facts = figures["openai"]
        minimum, price = int(facts["min_cacheable_tokens"]), None
        notes = [f"minimum {minimum:,} tokens ({facts['as_of']}); no prices in the data file"]
        notes.append("an attribution line is prompt text here: it breaks the prefix like any edit")
        retention = {r.get("prompt_cache_retention") for r in requests}
        ttl_s = 86400.0 if "24h" in retention else OPENAI_TTL_S
    report = HostedReport(api, model, facts["as_of"], facts["source"], minimum, ttl_s, [], price)
    report.notes = notes
    engines: dict[str, AnthropicAPI] = {}  # caches are per model
    lives: dict[str, list[tuple[list[int], float]]] = {}  # OpenAI: prompts, and when they expire
    clock = 0.0
    for k, (tokens, breakpoints, _) in enumerate(rendered):
        gap = times[k] - times[k - 1] if k and None not in (times[k], times[k - 1]) else None
        clock = clock + (gap if gap is not None else 1.0)
        name = str(requests[k].get("model"))
        if api == "anthropic":
            if name not in engines:
                engines[name] = AnthropicAPI(ttl_s=ttl_s, min_cacheable_tokens=minimum)
            engine = engines[name]
            points = None if automatic[k] else breakpoints[-engine.max_breakpoints :]
            if len(breakpoints) > engine.max_breakpoints and not automatic[k]:
                note = f"over {engine.max_breakpoints} cache_control marks (the API rejects it)"
                notes += [] if note in notes else [note]
            result = engine.serve(tokens, breakpoints=points, t_s=clock)
            read = result.detail["cache_read_input_tokens"]
            written = result.detail["cache_creation_input_tokens"]
            cacheable = max(points or [len(tokens)]) if points != [] else 0
            cost = engine.cost_usd(result, price) if price is not None else None
        else:
            live = [(t, expiry) for t, expiry in lives.get(name, []) if expiry > clock]
            read = max((common_prefix_len(t, tokens) for t, _ in live), default=0)
            read = read if read >= minimum else 0
            written, cacheable, cost = 0, len(tokens), None
            lives[name] = live + [(tokens, clock + ttl_s)]
        row = HostedRequest(k, len(tokens), read, written, len(tokens) - read - written, gap_s=gap)
        row.cost_usd = cost
        shared = common_prefix_len(rendered[k - 1][0], tokens) if k else 0
        same_model = k and requests[k - 1].get("model") == requests[k].get("model")
        if same_model and gap is not None and gap > ttl_s and shared >= minimum and read < shared:
            row.cause, row.lost_tokens = "ttl-expired", shared - read
            row.detail = f"{gap:,.0f} s since the previous request > TTL {ttl_s:,.0f} s"
        elif 0 < cacheable < minimum:
            row.cause = "below-minimum"
            row.detail = f"cacheable prefix {cacheable:,} < minimum {minimum:,} tokens"
        report.requests.append(row)
    if price is not None:
        report.cost_usd = sum(r.cost_usd for r in report.requests)
        report.cost_without_cache_usd = sum(r.n_tokens for r in report.requests) * price / 1e6
    return report
