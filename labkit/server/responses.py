"""Read what a server reports about one request: prompt tokens, cached tokens, prompt time.

One parser per documented response shape, each taking the decoded JSON body:

- llama.cpp `/completion` (ggml-org/llama.cpp `tools/server/server-task.cpp`,
  `result_timings::to_json` and the final completion result): `timings.cache_n` (tokens reused
  from the slot), `timings.prompt_n` (tokens prefilled), `timings.prompt_ms`; also
  `tokens_cached`, `tokens_evaluated`. Its OpenAI-compatible endpoints append the same `timings`.
- OpenAI-style `usage` (OpenAI, vLLM, SGLang `/v1/completions` and `/v1/chat/completions`):
  `usage.prompt_tokens` and `usage.prompt_tokens_details.cached_tokens`. vLLM fills the latter
  only with `--enable-prompt-tokens-details`, SGLang only with `--enable-cache-report`; otherwise
  it is absent or null and labkit says the server does not report a cached count.
- SGLang's native `/generate`: `meta_info.prompt_tokens` and `meta_info.cached_tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerReport", "parse_llamacpp", "parse_response", "parse_sglang", "parse_usage"]


@dataclass(frozen=True)
class ServerReport:
    """What the server said about one request; `cached` is None when it does not report it."""

    n_prompt: int  # prompt tokens the server counted
    cached: int | None  # tokens it served from its cache
    prompt_ms: float | None  # prefill time it measured (llama.cpp only)
    source: str  # which fields these came from

    @property
    def computed(self) -> int | None:
        """Return the prompt tokens the server prefilled (None when it reports no cached count)."""
        return None if self.cached is None else self.n_prompt - self.cached


def parse_llamacpp(body: dict) -> ServerReport:
    """Read llama.cpp's `timings` (`cache_n`, `prompt_n`, `prompt_ms`)."""
    timings = body.get("timings")
    if not isinstance(timings, dict) or "prompt_n" not in timings:
        raise ValueError("the response has no llama.cpp `timings` with `prompt_n`")
    prompt_n, prompt_ms = int(timings["prompt_n"]), timings.get("prompt_ms")
    prompt_ms = None if prompt_ms is None else float(prompt_ms)
    cache_n = timings.get("cache_n", body.get("tokens_cached"))
    if cache_n is None:
        return ServerReport(prompt_n, None, prompt_ms, "timings")
    return ServerReport(int(cache_n) + prompt_n, int(cache_n), prompt_ms, "timings")


def parse_usage(body: dict) -> ServerReport:
    """Read OpenAI-style `usage.prompt_tokens` and `usage.prompt_tokens_details.cached_tokens`."""
    usage = body.get("usage")
    if not isinstance(usage, dict) or "prompt_tokens" not in usage:
        raise ValueError("the response has no `usage.prompt_tokens`")
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    timings = body.get("timings")  # llama.cpp's OpenAI endpoints add its own timings
    prompt_ms = timings.get("prompt_ms") if isinstance(timings, dict) else None
    return ServerReport(
        int(usage["prompt_tokens"]),
        None if cached is None else int(cached),
        prompt_ms,
        "usage.prompt_tokens_details",
    )


def parse_sglang(body: dict) -> ServerReport:
    """Read SGLang's native `/generate` `meta_info.prompt_tokens` and `cached_tokens`."""
    item = body[0] if isinstance(body, list) and body else body  # a batch answers a list
    meta = item.get("meta_info") if isinstance(item, dict) else None
    if not isinstance(meta, dict) or "prompt_tokens" not in meta:
        raise ValueError("the response has no SGLang `meta_info.prompt_tokens`")
    cached = meta.get("cached_tokens")
    return ServerReport(
        int(meta["prompt_tokens"]), None if cached is None else int(cached), None, "meta_info"
    )


def parse_response(body) -> ServerReport:
    """Read any of the shapes above, llama.cpp's `timings` first."""
    timings = body.get("timings") if isinstance(body, dict) else None
    if isinstance(timings, dict) and "cache_n" in timings:
        return parse_llamacpp(body)
    if isinstance(body, dict) and isinstance(body.get("usage"), dict):
        return parse_usage(body)
    if isinstance(body, list) or (isinstance(body, dict) and "meta_info" in body):
        return parse_sglang(body)
    if isinstance(body, dict) and "timings" in body:
        return parse_llamacpp(body)
    raise ValueError(
        "the response has none of llama.cpp `timings`, OpenAI `usage` or SGLang `meta_info`"
    )
