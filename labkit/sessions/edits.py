"""Edit requests as clients do: the attribution line on, off or last, a timestamp, tools reordered.

Every function returns a new request (or list of requests) and leaves its argument unchanged.
"""

from __future__ import annotations

import copy
import random
import re
from datetime import datetime, timezone

from labkit.sessions.format import request_shape
from labkit.sessions.header import HEADER_NAME, attribution_enabled, billing_header

__all__ = [
    "HEADER_LINE",
    "VARIANTS",
    "add_timestamp",
    "apply_variant",
    "move_header_to_end",
    "shuffle_tools",
    "with_attribution",
]

# The attribution line wherever it starts a line, up to a newline (taken too) or a special token.
HEADER_LINE = re.compile(rf"^{re.escape(HEADER_NAME)}:[^\n<]*\n?", re.MULTILINE)
VARIANTS = ("header on", "header off", "header at end", "timestamp", "shuffled tools")
TIMESTAMP_START_S = 1_767_603_600  # 2026-01-05 09:00 UTC: when the "timestamp" variant starts
_SEP = "\n"  # joins system blocks and the blocks of one message, as labkit.sessions renders them


def _strip_header(text: str) -> str:
    return HEADER_LINE.sub("", text)


def _strip_openai_header(content):
    if isinstance(content, str):
        return _strip_header(content)
    parts = [{**p, "text": _strip_header(p["text"])} for p in content or []]
    return [p for p in parts if p["text"]]


def _prepend_system_line(request: dict, shape: str, line: str) -> None:
    """Put `line` first in the system prompt, in place: a block of its own, or a first line."""
    if shape == "anthropic":
        system = request.get("system")
        if isinstance(system, str):
            system = [{"type": "text", "text": system}] if system else []
        request["system"] = [{"type": "text", "text": line}, *(system or [])]
        return
    messages = request["messages"]
    first = next((m for m in messages if m.get("role") in ("system", "developer")), None)
    if first is None:
        messages.insert(0, {"role": "system", "content": line})
    elif isinstance(first["content"], str):
        first["content"] = line + _SEP + first["content"]
    else:
        first["content"].insert(0, {"type": "text", "text": line})


def _check_not_rendered(shape: str, what: str) -> None:
    if shape == "prompt":
        raise ValueError(
            f"{what} needs a chat request (Anthropic or OpenAI shape), not an already-rendered "
            '{"prompt": ...}: edit the request before rendering it.'
        )


def with_attribution(
    request: dict,
    enabled: bool | str | None,
    *,
    cch: str | None = None,
    rng: random.Random | None = None,
) -> dict:
    """Return a copy of `request` with the attribution line first (enabled) or removed (disabled).

    `enabled` is read like $CLAUDE_CODE_ATTRIBUTION_HEADER ("0"/"off" turn it off; None reads the
    variable). An attribution line already in the request is replaced or removed, so captured
    sessions work both ways. Anthropic shape: the line is system block 0; OpenAI shape: the first
    line of the first system message. A `{"prompt": ...}` request is already rendered: enabled
    leaves it as it is, disabled removes lines that start with the header name.
    """
    request = copy.deepcopy(request)
    line = billing_header(cch, rng=rng) if attribution_enabled(enabled) else None
    shape = request_shape(request)
    if shape == "prompt":
        if line is None:
            request["prompt"] = _strip_header(request["prompt"])
        return request
    if shape == "anthropic":
        system = request.get("system")
        if isinstance(system, str):
            request["system"] = _strip_header(system)
        elif system is not None:
            blocks = [(b, _strip_header(b["text"])) for b in system]
            request["system"] = [{**b, "text": t} for b, t in blocks if t or not b["text"]]
    else:
        for message in request["messages"]:
            if message.get("role") in ("system", "developer"):
                message["content"] = _strip_openai_header(message.get("content"))
        request["messages"] = [
            m
            for m in request["messages"]
            if m.get("role") not in ("system", "developer") or m["content"]
        ]
    if line is not None:
        _prepend_system_line(request, shape, line)
    return request


def move_header_to_end(
    request: dict, *, cch: str | None = None, rng: random.Random | None = None
) -> dict:
    """Return a copy with the attribution line taken out of the system prompt and put last.

    The line becomes the last text block of the last message (OpenAI: its last line), after the
    message's `cache_control` breakpoint, so everything before it can be reused.
    """
    _check_not_rendered(request_shape(request), "move_header_to_end")
    request = with_attribution(request, False)
    line = billing_header(cch, rng=rng)
    last = request["messages"][-1]
    content = last.get("content")
    if isinstance(content, list):
        content.append({"type": "text", "text": line})
    else:
        last["content"] = (content + _SEP if content else "") + line
    return request


def add_timestamp(request: dict, t_s: float, *, fmt: str = "%Y-%m-%d %H:%M:%S") -> dict:
    """Return a copy with "Current time (UTC): ..." (time `t_s`, seconds since 1970) first."""
    shape = request_shape(request)
    _check_not_rendered(shape, "add_timestamp")
    request = copy.deepcopy(request)
    stamp = datetime.fromtimestamp(t_s, tz=timezone.utc).strftime(fmt)
    _prepend_system_line(request, shape, f"Current time (UTC): {stamp}")
    return request


def shuffle_tools(request: dict, seed: int) -> dict:
    """Return a copy with its tool definitions in an order drawn from `random.Random(seed)`."""
    request = copy.deepcopy(request)
    if request.get("tools"):
        random.Random(seed).shuffle(request["tools"])
    return request


def apply_variant(requests: list[dict], variant: str, *, seed: int = 0) -> list[dict]:
    """Return a session's requests edited as one of VARIANTS.

    "header on" adds a fresh attribution line per request (cch from `random.Random(seed)`, as
    `render_session(..., seed=seed)`); the other variants start from "header off" and add one
    change: the line moved last, a timestamp to the second (each request's "t_s", else 30 s a
    turn, after TIMESTAMP_START_S), or the tools reshuffled each request (seed + request index).
    """
    rng = random.Random(seed)
    if variant == "header on":
        return [with_attribution(r, True, rng=rng) for r in requests]
    off = [with_attribution(r, False) for r in requests]
    if variant == "header off":
        return off
    if variant == "header at end":
        return [move_header_to_end(r, rng=rng) for r in off]
    if variant == "timestamp":
        return [
            add_timestamp(r, TIMESTAMP_START_S + float(r.get("t_s", 30.0 * k)))
            for k, r in enumerate(off)
        ]
    if variant == "shuffled tools":
        return [shuffle_tools(r, seed + k) for k, r in enumerate(off)]
    raise ValueError(f"Unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}.")
