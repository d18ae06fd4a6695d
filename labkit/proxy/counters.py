"""Read a server's own cached-token counters from its response: JSON or a server-sent stream.

Each engine reports the prompt tokens it took from its cache in its own field:

- llama.cpp `llama-server`: `timings.cache_n` (tokens reused) and `timings.prompt_n` (tokens
  computed), with `prompt_ms`, on `/completion` and, appended, on its OpenAI-compatible endpoints
  (`tools/server/server-task.cpp`, `result_timings::to_json`); a stream carries them on its
  last event;
- OpenAI-compatible servers (vLLM with `--enable-prompt-tokens-details`, SGLang with
  `--enable-cache-report`, OpenAI): `usage.prompt_tokens` and
  `usage.prompt_tokens_details.cached_tokens` (Responses API: `usage.input_tokens` and
  `usage.input_tokens_details.cached_tokens`); a stream carries `usage` on its last chunk when
  the request asks for `stream_options: {"include_usage": true}`;
- Anthropic Messages: `usage.cache_read_input_tokens`, `usage.cache_creation_input_tokens` and
  `usage.input_tokens` (the tokens after the last breakpoint); in a stream, on `message_start`'s
  `message.usage`.

`response_counters` returns them as one dict in labkit's names: `n_tokens` (prompt tokens),
`cached` and `computed` (n_tokens == cached + computed), `source` (which field), and
`prompt_ms` when the server timed its prefill.
"""

from __future__ import annotations

import gzip
import json
import zlib

__all__ = ["counters_from", "decode_body", "response_counters", "stream_events"]


def decode_body(body: bytes, content_encoding: str | None) -> bytes | None:
    """Return a response body without its gzip/deflate encoding; None for one we cannot read."""
    encoding = (content_encoding or "identity").strip().lower()
    try:
        if encoding in ("", "identity"):
            return body
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error, EOFError):
        return None
    return None  # br, zstd: not in the standard library


def stream_events(text: str) -> list[dict]:
    """Return the JSON objects of a server-sent event stream's `data:` fields, in order."""
    events, data = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line.strip() and data:
            payload, data = "\n".join(data), []
            try:
                value = json.loads(payload)
            except json.JSONDecodeError:
                continue  # "[DONE]" and other non-JSON payloads
            if isinstance(value, dict):
                events.append(value)
    return events


def _int(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def counters_from(obj: dict) -> dict | None:
    """Return the cached-token counters one response object carries, or None."""
    timings = obj.get("timings")
    if isinstance(timings, dict) and _int(timings.get("prompt_n")) is not None:
        cached, computed = _int(timings.get("cache_n")) or 0, _int(timings["prompt_n"])
        out = {"n_tokens": cached + computed, "cached": cached, "computed": computed}
        out["source"] = "llama.cpp timings"
        if isinstance(timings.get("prompt_ms"), (int, float)):
            out["prompt_ms"] = float(timings["prompt_ms"])
        return out
    usage = obj.get("usage")
    if not isinstance(usage, dict) and isinstance(obj.get("message"), dict):
        usage = obj["message"].get("usage")  # Anthropic stream: message_start
    if not isinstance(usage, dict):
        return None
    if _int(usage.get("cache_read_input_tokens")) is not None or (
        _int(usage.get("input_tokens")) is not None and "cache_creation_input_tokens" in usage
    ):
        cached = _int(usage.get("cache_read_input_tokens")) or 0
        written = _int(usage.get("cache_creation_input_tokens")) or 0
        n = cached + written + (_int(usage.get("input_tokens")) or 0)
        out = {"n_tokens": n, "cached": cached, "computed": n - cached}
        return out | {"source": "anthropic usage"}
    for total_key, details_key in (
        ("prompt_tokens", "prompt_tokens_details"),
        ("input_tokens", "input_tokens_details"),
    ):
        n = _int(usage.get(total_key))
        if n is None:
            continue
        details = usage.get(details_key) if isinstance(usage.get(details_key), dict) else {}
        cached = _int(details.get("cached_tokens"))
        if cached is None:
            return {"n_tokens": n, "cached": None, "computed": None, "source": f"usage.{total_key}"}
        return {
            "n_tokens": n,
            "cached": cached,
            "computed": n - cached,
            "source": f"usage.{details_key}.cached_tokens",
        }
    return None


def response_counters(body: bytes, content_type: str | None = None) -> dict | None:
    """Return the counters of a whole response body (JSON, or an SSE stream), or None.

    In a stream the last event with llama.cpp timings wins, else the last with complete usage
    (Anthropic puts the prompt's counters on `message_start`; OpenAI-style servers on the last
    chunk).
    """
    text = body.decode("utf-8", errors="replace")
    is_stream = "text/event-stream" in (content_type or "") or text.lstrip().startswith("data:")
    if not is_stream:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return counters_from(value) if isinstance(value, dict) else None
    found = [c for c in (counters_from(e) for e in stream_events(text)) if c is not None]
    timed = [c for c in found if c["source"] == "llama.cpp timings"]
    if timed:
        return timed[-1]
    complete = [c for c in found if c["cached"] is not None]
    return (complete or found)[-1] if found else None
