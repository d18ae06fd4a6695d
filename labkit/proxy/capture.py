"""What `labkit proxy` writes for each request: a redacted log line and a live line.

A log line is the request body as the client sent it, with every string redacted
(`labkit.redact.redact`: keys, ids and structure untouched, secrets replaced), plus two fields:
`t_s` (seconds since the proxy started, when the request arrived) and `labkit_proxy` (the
request's place in the log, method, path, status, time, capture time, and the server's own
cached-token counters, `labkit.proxy.counters`). HTTP headers are never written. So the log is
a session file: `labkit lint`, `labkit simulate` and `labkit probe` read it as they read
`data/sessions/*.jsonl` (they ignore the extra fields; lint's hosted-API rules read `t_s`).

Only requests whose body is a chat or completion request labkit reads are logged (a body
`labkit.sessions.validate_request` accepts); token counting (`.../count_tokens`), model lists and
health checks are forwarded but not logged.
"""

from __future__ import annotations

import json

from labkit.lint.causes import CAUSES
from labkit.lint.params import parameter_change, text_change
from labkit.redact import redact
from labkit.sessions.format import SessionFormatError, validate_request

__all__ = ["LOG_FIELD", "chat_request", "live_line", "log_record", "redact_json", "reuse_cause"]

LOG_FIELD = "labkit_proxy"  # the field of a log line that holds what the proxy saw


def redact_json(value):
    """Return a JSON value with every string in it redacted (keys kept)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    return value


def chat_request(method: str, path: str, body: bytes) -> dict | None:
    """Return the request a body holds when it is a chat/completion request to log, else None."""
    if method != "POST" or path.split("?")[0].rstrip("/").endswith("count_tokens"):
        return None
    try:
        request = json.loads(body.decode("utf-8"))
        validate_request(request)
    except (UnicodeDecodeError, json.JSONDecodeError, SessionFormatError):
        return None
    return request


def log_record(request: dict, meta: dict, t_s: float) -> dict:
    """Return the log line for a request: its redacted body, `t_s` and the proxy's fields."""
    body = {k: v for k, v in request.items() if k not in (LOG_FIELD, "t_s")}
    return redact_json(body) | {"t_s": round(t_s, 3), LOG_FIELD: redact_json(meta)}


def reuse_cause(prev: dict | None, cur: dict) -> tuple[str, str, str]:
    """Return (cause, where, detail) of why `cur` cannot reuse all of `prev`; cause "" if it can.

    The structural causes of `labkit lint` (no tokenizer needed): request parameters, the first
    rendered part that changed, edits inside images, tool schemas; "final-message-only" when
    only the final user message differs (expected).
    """
    if prev is None:
        return "first", "", ""
    change = parameter_change(prev, cur) or text_change(prev, cur)
    if change is None:
        return "", "", ""
    return change.cause, redact(change.where), redact(change.detail)


def live_line(
    index: int,
    meta: dict,
    counters: dict | None,
    cause: tuple[str, str, str],
    before: dict | None = None,
) -> str:
    """Return the line printed for one request: tokens, cached, computed, and a broken reuse.

    `before` holds the counters of the request it is compared with: when it extends it (no
    cause) yet the server reused less than half of it, the line says the server lost the cache;
    when it changed (a cause) yet the server reused nearly all of it, the line says so (llama.cpp
    normalizes the attribution line's `cch=` on its Anthropic endpoint, `server-chat.cpp`
    `normalize_anthropic_billing_header`, PR #21793).
    """
    head = f"#{index} {meta['method']} {meta['path']} → {meta['status']} in {meta['ms']:,.0f} ms"
    if counters is None:
        head += ": no cache counters in the response"
    elif counters.get("cached") is None:
        head += f": {counters['n_tokens']:,} tokens (the server does not report cached tokens)"
    else:
        head += (
            f": {counters['n_tokens']:,} tokens, {counters['cached']:,} cached, "
            f"{counters['computed']:,} computed"
        )
        if isinstance(counters.get("prompt_ms"), (int, float)):  # llama.cpp times its prefill
            head += f" (prefill {counters['prompt_ms']:,.0f} ms)"
    key, where, detail = cause
    if key and key not in ("first", "final-message-only") and _kept_by_server(counters, before):
        head += f" — changed at {where}: {CAUSES[key].label}" + (f" ({detail})" if detail else "")
        head += ", yet the server reused the previous request: it ignores or normalizes this change"
    elif key and key not in ("first", "final-message-only"):
        head += f" — reuse broke at {where}: {CAUSES[key].label}"
        head += f" ({detail})" if detail else ""
    elif key == "final-message-only":
        head += " — only the final user message differs (expected)"
    elif not key and _lost_by_server(counters, before):
        head += (
            f" — the request extends the previous one ({before['n_tokens']:,} tokens), yet the "
            "server reused less than half: another request took the slot, or the cache evicted it"
        )
    return redact(head)


def _kept_by_server(counters: dict | None, before: dict | None) -> bool:
    """Return True when the server reused nearly all of the previous request (90% or more)."""
    if not counters or not before or counters.get("cached") is None:
        return False
    return counters["cached"] >= 0.9 * before["n_tokens"]


def _lost_by_server(counters: dict | None, before: dict | None) -> bool:
    if not counters or not before or counters.get("cached") is None:
        return False
    return counters["cached"] < before["n_tokens"] / 2
