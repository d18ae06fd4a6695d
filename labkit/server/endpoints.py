"""Send the attribution line to each of a server's chat endpoints and read what each one reused.

llama.cpp's Anthropic-compatible `POST /v1/messages` rewrites the line's `cch` before it renders
the prompt: `normalize_anthropic_billing_header` in `tools/server/server-chat.cpp` (called by
`server_chat_convert_anthropic_to_oai` on the `system` string, or on each `system` text block,
that starts with `x-anthropic-billing-header:`) overwrites the five characters after `cch=` with
`fffff` when a `;` follows them (ggml-org/llama.cpp PR #21793; in the llama-cpp-python 0.3.36
tree `labkit server build` compiles). Its OpenAI-compatible `POST /v1/chat/completions` and its
`POST /completion` leave the text alone, so there the line still ends reuse. Older llama.cpp
builds, and other servers, may differ: `cch_pair` measures it instead of assuming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.server.probe import ProbeError, http_json
from labkit.sessions.header import billing_header

__all__ = ["ENDPOINTS", "EndpointReuse", "cch_pair"]

ENDPOINTS = ("/v1/messages", "/v1/chat/completions")


@dataclass(frozen=True)
class EndpointReuse:
    """The second of two requests that differ only in `cch`, as one endpoint served it."""

    endpoint: str
    n_tokens: int  # prompt tokens of the second request, as the server counted them
    cached: int  # of those, reused from the first request
    computed: int  # prefilled again


def _body(endpoint: str, line: str, system: str, user: str) -> dict:
    common = {"model": "local", "max_tokens": 1, "temperature": 0}
    if endpoint == "/v1/messages":  # the line as its own system block, as Claude Code sends it
        blocks = [{"type": "text", "text": line}, {"type": "text", "text": system}]
        return common | {"system": blocks, "messages": [{"role": "user", "content": user}]}
    # the Anthropic endpoint joins the system blocks with nothing between them; so do we
    messages = [{"role": "system", "content": line + system}, {"role": "user", "content": user}]
    return common | {"messages": messages}


def _counts(endpoint: str, answer: dict) -> tuple[int, int]:
    """Return (n_tokens, cached) from an Anthropic `usage` or llama.cpp's `timings`."""
    if endpoint == "/v1/messages":
        usage = answer["usage"]
        cached = usage.get("cache_read_input_tokens") or 0
        return usage["input_tokens"] + cached, cached
    timings = answer.get("timings") or {}
    if "cache_n" in timings:
        return timings["cache_n"] + timings["prompt_n"], timings["cache_n"]
    usage = answer["usage"]  # another OpenAI-compatible server
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return usage["prompt_tokens"], cached


def cch_pair(
    url: str,
    system: str,
    user: str = "Run the tests and fix the first failure.",
    *,
    cchs: tuple[str, str] = ("1a2b3", "9f8e7"),
    endpoints: tuple[str, ...] = ENDPOINTS,
    timeout_s: float = 300.0,
) -> list[EndpointReuse]:
    """Send each endpoint two requests that differ only in `cch`; return how it served the second.

    Each request asks for one new token. A server that normalises the line reuses all of the
    first request but its last token; one that sees the line as text stops inside the line.
    """
    rows = []
    for endpoint in endpoints:
        for cch in cchs:
            body = _body(endpoint, billing_header(cch), system, user)
            status, answer = http_json(f"{url.rstrip('/')}{endpoint}", body, timeout_s)
            if status != 200:
                raise ProbeError(
                    f"{endpoint} answered HTTP {status} ({answer}): the server may not have "
                    "this endpoint; pass endpoints=... with the ones it has."
                )
        try:
            n_tokens, cached = _counts(endpoint, answer)
        except (KeyError, TypeError) as err:
            raise ProbeError(f"{endpoint} answered without token counts ({err}).") from err
        rows.append(EndpointReuse(endpoint, n_tokens, cached, n_tokens - cached))
    return rows
