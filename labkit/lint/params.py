"""Request parameters that bust a cache without a visible prompt edit, and workloads that are fine.

A request can lose its cache while its messages only grow:

- another `model` (a server that swaps models, or a router): no KV of one model serves
  another; on hosted APIs caches are per model. Claude Code's CHANGELOG (2.1.108) warns before
  `/model` mid-conversation "since the next response re-reads the full history uncached";
- `thinking` turned on, off or resized (Anthropic `thinking`, OpenAI `reasoning_effort` /
  `reasoning`, llama.cpp / vLLM `chat_template_kwargs.enable_thinking`), and a forced or changed
  `tool_choice`: the Anthropic prompt-caching docs list both as invalidating the messages cache
  (tools and system stay cached); on a local server they matter when the chat template renders
  them;
- a tool whose name stays but whose input schema changes: the tool definitions come first in a
  hosted API's prefix (tools → system → messages), so everything after them is lost.

And a workload can look like a buster and be none: when only the final user message differs
between two requests (an evaluation over many questions, a regenerated answer), everything up to
that message is reused and nothing could do better; it is reported as expected.
"""

from __future__ import annotations

import json

from labkit.lint.blocks import media_change
from labkit.lint.diff import Change, _key, compare_requests, request_parts

__all__ = [
    "PARAMETER_CAUSES",
    "conversation_key",
    "previous_in_conversation",
    "final_message_only",
    "parameter_change",
    "schema_only_change",
    "text_change",
    "thinking_setting",
]

# cause key -> whether the whole prompt is lost (True) or only what follows system and tools
PARAMETER_CAUSES = {"model-switch": True, "thinking-changed": False, "tool-choice-changed": False}


def _dump(value) -> str:
    return "(not set)" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def thinking_setting(request: dict):
    """Return a request's thinking/reasoning setting in a comparable form (None when unset)."""
    kwargs = request.get("chat_template_kwargs")
    kwargs = kwargs if isinstance(kwargs, dict) else {}
    found = {
        key: value
        for key, value in (
            ("thinking", request.get("thinking")),
            ("reasoning_effort", request.get("reasoning_effort")),
            ("reasoning", request.get("reasoning")),
            ("enable_thinking", kwargs.get("enable_thinking")),
        )
        if value is not None
    }
    return found or None


def parameter_change(prev: dict, cur: dict) -> Change | None:
    """Return the first request parameter that busts the cache between two requests, or None."""
    if "prompt" in prev or "prompt" in cur:
        return None
    if prev.get("model") and cur.get("model") and prev["model"] != cur["model"]:
        return Change("model-switch", "model", f"{prev['model']} → {cur['model']}")
    old, new = thinking_setting(prev), thinking_setting(cur)
    if old != new:
        return Change("thinking-changed", "thinking", f"{_dump(old)} → {_dump(new)}")
    if prev.get("tool_choice") != cur.get("tool_choice"):
        old, new = _dump(prev.get("tool_choice")), _dump(cur.get("tool_choice"))
        return Change("tool-choice-changed", "tool_choice", f"{old} → {new}")
    return None


def _schema_of(tool: dict) -> tuple[str, dict]:
    spec = tool.get("function", tool)
    key = "parameters" if "function" in tool else "input_schema"
    return key, {k: v for k, v in spec.items() if k != key}


def schema_only_change(prev: dict, cur: dict) -> Change | None:
    """Return a "tool-schema-changed" Change when the same tools differ only in an input schema."""
    old, new = request_parts(prev)["tools"], request_parts(cur)["tools"]
    if len(old) != len(new):
        return None
    for i, (a, b) in enumerate(zip(old, new, strict=True)):
        if _key(a) == _key(b):
            continue
        key, rest_a = _schema_of(a)
        _, rest_b = _schema_of(b)
        outer = lambda t: {k: v for k, v in t.items() if k != "function"} if "function" in t else {}
        if rest_a != rest_b or outer(a) != outer(b):
            return None  # the name, the description or the wrapper changed too
        name = rest_b.get("name", "?")
        where = f"tools[{i}]" + (".function" if "function" in b else "") + f".{key}"
        return Change("tool-schema-changed", where, f"input schema of {name} changed")
    return None


def final_message_only(prev: dict, cur: dict) -> bool:
    """Return True when two requests differ only in their final user message (and agree on
    every parameter that matters to the cache): an evaluation or a regenerated answer."""
    if parameter_change(prev, cur) is not None:
        return False
    a, b = request_parts(prev), request_parts(cur)
    if a["shape"] == "prompt" or a["shape"] != b["shape"] or len(a["msgs"]) != len(b["msgs"]):
        return False
    if a["system"] != b["system"] or _key(a["tools"]) != _key(b["tools"]) or not b["msgs"]:
        return False
    *head_a, (_, last_a) = a["msgs"]
    *head_b, (_, last_b) = b["msgs"]
    same_head = _key([m for _, m in head_a]) == _key([m for _, m in head_b])
    users = last_a.get("role") == last_b.get("role") == "user"
    return same_head and users and last_a != last_b


def conversation_key(request: dict) -> str | None:
    """Return what ties a request to its conversation: its model and its first message.

    An agent interleaves side requests (a title from a small model, a subagent with its own
    first message) with the main conversation; each is compared with the last request of its
    own conversation. A rendered prompt has no key.
    """
    if "prompt" in request:
        return None
    msgs = request_parts(request)["msgs"]
    first = json.dumps(_key(msgs[0][1]) if msgs else None, default=str)
    return json.dumps([request.get("model"), first])


def previous_in_conversation(keys: list[str | None], k: int) -> int:
    """Return the index of the request that request k extends: the last one with its key, else
    the one just before it (a new conversation is compared with whatever the server last saw)."""
    for j in range(k - 1, -1, -1):
        if keys[k] is not None and keys[j] == keys[k]:
            return j
    return k - 1


def text_change(prev: dict, cur: dict) -> Change | None:
    """Return the first change of what two requests render, with the second version's causes:
    "final-message-only" (expected), an edit inside an image, a tool's schema, else the cause
    `labkit.lint.diff.compare_requests` names; None when `cur` extends `prev`."""
    if final_message_only(prev, cur):
        where = request_parts(cur)["msgs"][-1][0]
        return Change("final-message-only", where, "only the final user message differs")
    change = compare_requests(prev, cur)
    if change is not None and change.cause == "edited-history":
        change = media_change(prev, cur) or change
    if change is not None and change.cause == "tools-changed":
        change = schema_only_change(prev, cur) or change
    return change
