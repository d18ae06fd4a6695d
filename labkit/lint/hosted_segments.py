"""A request in a hosted API's cache order, tools -> system -> messages: its segments, their
tokens and `cache_control` breakpoints, and the request's capture time (`labkit.lint.hosted`).
"""

from __future__ import annotations

import json
from datetime import datetime

from labkit.lint.params import thinking_setting
from labkit.sessions.blocks import block_placeholder, is_media_block

__all__ = ["hosted_segments", "hosted_tokens", "request_time_s"]


def _block_text(block) -> str:
    if isinstance(block, str):
        return block
    kind = block.get("type")
    if kind == "text":
        return block.get("text", "")
    if is_media_block(block):
        return block_placeholder(block)
    cleaned = {k: v for k, v in block.items() if k != "cache_control"}
    return json.dumps(cleaned, ensure_ascii=False)


def _tool_text(tool: dict) -> str:
    return json.dumps({k: v for k, v in tool.items() if k != "cache_control"}, ensure_ascii=False)


def _mark(block) -> str | None:
    """Return the ttl of a block's cache_control ("5m" by default), None without one."""
    if isinstance(block, dict) and isinstance(block.get("cache_control"), dict):
        return str(block["cache_control"].get("ttl", "5m"))
    return None


def hosted_segments(request: dict) -> list[tuple[str, str, str | None]]:
    """Return (where, text, cache_control ttl or None) in the API's order: tools, system, messages.

    A segment is one tool definition, one system block or one content block; the third item is
    the block's `cache_control` ttl ("5m" by default) where it carries a breakpoint. The
    thinking and tool_choice settings, when set, sit between system and messages: the API's
    docs list a change of either as invalidating the messages cache only.
    """
    tools = request.get("tools") or []
    out = [(f"tools[{i}]", _tool_text(t), _mark(t)) for i, t in enumerate(tools)]
    system = request.get("system") or []
    system = [{"type": "text", "text": system}] if isinstance(system, str) else system
    for i, block in enumerate(system):
        out.append((f"system[{i}]", _block_text(block), _mark(block)))
    settings = {"thinking": thinking_setting(request), "tool_choice": request.get("tool_choice")}
    if any(v is not None for v in settings.values()):  # a change invalidates the messages cache
        out.append(("thinking, tool_choice", json.dumps(settings, sort_keys=True), None))
    for i, message in enumerate(request.get("messages") or []):
        content = message.get("content")
        if isinstance(content, str) or content is None:
            text = f"{message.get('role')}: {content or ''}"
            out.append((f"messages[{i}]", text, _mark(message)))
            continue
        for j, block in enumerate(content):
            out.append((f"messages[{i}].content[{j}]", _block_text(block), _mark(block)))
        for j, call in enumerate(message.get("tool_calls") or []):
            text = json.dumps(call, ensure_ascii=False)
            out.append((f"messages[{i}].tool_calls[{j}]", text, None))
    return out


def hosted_tokens(request: dict, tokenizer) -> tuple[list[int], list[int], set[str]]:
    """Return the tokens in the API's order, the breakpoints (prefix lengths) and their ttls."""
    tokens, breakpoints, ttls = [], [], set()
    for _, text, ttl in hosted_segments(request):
        tokens += tokenizer(text, add_special_tokens=False)["input_ids"]
        if ttl is not None and tokens:
            breakpoints.append(len(tokens))
            ttls.add(ttl)
    return tokens, breakpoints, ttls


def request_time_s(request: dict) -> float | None:
    """Return a request's time in seconds: its `t_s`, else an ISO capture time, else None."""
    if isinstance(request.get("t_s"), (int, float)):
        return float(request["t_s"])
    meta = request.get("labkit_proxy") if isinstance(request.get("labkit_proxy"), dict) else {}
    for value in (meta.get("captured_at"), request.get("captured_at"), request.get("timestamp")):
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None
