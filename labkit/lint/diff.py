"""Compare two consecutive requests part by part, and say what changed first and where.

The parts are compared in the order a chat template renders them: system text, tool
definitions, messages. The first part that differs says *where*; the lines or keys that changed
there say *why* (a key of `labkit.lint.causes.CAUSES`): the attribution line's `cch=`, a date or
time, `git status` output, another changing id, the same tools in another order, the same JSON
object with its keys in another order, a reasoning block dropped from an earlier turn, or some
other edit of the history. Only what rendering shows counts: `cache_control` marks and the key
order of message envelopes are ignored; tool inputs and schemas keep their key order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from labkit.lint.causes import classify_lines
from labkit.lint.hunks import first_changed_lines, redacted_lines
from labkit.sessions.render import request_shape
from labkit.tokens import common_prefix_len

__all__ = [
    "Change",
    "compare_requests",
    "message_at",
    "request_parts",
]

_ORDERED = {"input", "input_schema", "parameters", "arguments"}  # rendered in their key order
_REASONING_BLOCKS = {"thinking", "redacted_thinking"}
_REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")
_AS_SENT = "arguments as sent"  # a cleaned tool call keeps its arguments' JSON text here


@dataclass
class Change:
    """The first structural difference between two requests: cause key, where, and what."""

    cause: str
    where: str  # "system[0]", "tools", "messages[3].content[1].input", ...
    detail: str  # what changed, in a few words (not yet redacted)


def request_parts(request: dict) -> dict:
    """Return a request's rendered parts: system texts (with where), tools and messages."""
    shape = request_shape(request)
    if shape == "prompt":
        return {"shape": shape, "system": [("prompt", request["prompt"])], "tools": [], "msgs": []}
    system, messages, first = [], list(request["messages"]), 0
    if shape == "anthropic":
        raw = request.get("system") or []
        raw = [{"text": raw}] if isinstance(raw, str) else raw
        system = [(f"system[{i}]", block["text"]) for i, block in enumerate(raw)]
    else:  # OpenAI: the leading system (or developer) messages are the system text
        while first < len(messages) and messages[first].get("role") in ("system", "developer"):
            content = messages[first].get("content") or ""
            if isinstance(content, str):
                system.append((f"messages[{first}]", content))
            else:
                system += [
                    (f"messages[{first}].content[{p}]", c["text"]) for p, c in enumerate(content)
                ]
            first += 1
    tools = [_clean(t) for t in request.get("tools") or []]
    msgs = [(f"messages[{first + k}]", _clean(m)) for k, m in enumerate(messages[first:])]
    return {"shape": shape, "system": system, "tools": tools, "msgs": msgs}


def compare_requests(prev: dict, cur: dict) -> Change | None:
    """Return the first rendered difference between two requests; None when `cur` extends `prev`."""
    a, b = request_parts(prev), request_parts(cur)
    if a["shape"] != b["shape"]:
        return Change("other", "request", f"shape {a['shape']} → {b['shape']}")
    old, new = "\n".join(t for _, t in a["system"]), "\n".join(t for _, t in b["system"])
    if old != new and not (a["shape"] == "prompt" and new.startswith(old)):
        return _system_change(old, new, b["system"])
    if _key(a["tools"]) != _key(b["tools"]):
        return _tools_change(a["tools"], b["tools"])
    for (where, m), (_, n) in zip(a["msgs"], b["msgs"], strict=False):
        if _key(m) != _key(n):
            return _message_change(where, m, n)
    if len(b["msgs"]) < len(a["msgs"]):
        dropped = len(a["msgs"]) - len(b["msgs"])
        return Change(
            "edited-history", a["msgs"][len(b["msgs"])][0], f"{dropped} message(s) dropped"
        )
    return None


def _clean(value):
    """Return `value` without cache_control marks, strings as one text block, arguments parsed."""
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _clean(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(out.get("content"), str) and "role" in out:
        out["content"] = [{"type": "text", "text": out["content"]}]
    if isinstance(out.get("arguments"), str):  # OpenAI tool calls: JSON text, rendered as sent
        try:
            out["arguments"], out[_AS_SENT] = json.loads(out["arguments"]), out["arguments"]
        except json.JSONDecodeError:
            pass
    return out


def _objects(value):
    """Return `value` without the arguments' text as sent (their parsed objects stay)."""
    if isinstance(value, list):
        return [_objects(v) for v in value]
    if isinstance(value, dict):
        return {k: _objects(v) for k, v in value.items() if k != _AS_SENT}
    return value


def _key(value, ordered: bool = False):
    """Return a comparable form of `value` that keeps key order only where rendering keeps it."""
    if isinstance(value, dict):
        items = [(k, _key(v, ordered or k in _ORDERED)) for k, v in value.items()]
        return ("dict", tuple(items if ordered else sorted(items, key=lambda kv: kv[0])))
    if isinstance(value, list):
        return ("list", tuple(_key(v, ordered) for v in value))
    return value


def _system_change(old: str, new: str, parts: list[tuple[str, str]]) -> Change:
    first = common_prefix_len(old, new)
    where, offset = parts[-1][0] if parts else "system", 0
    for label, text in parts:
        if first <= offset + len(text):
            where = label
            break
        offset += len(text) + 1
    i1, i2, j1, j2 = first_changed_lines(old, new, first)
    # Classify redacted lines (secrets found around the hunk, not only in it): a value whose
    # secret name is on another line, or a changed key, never reaches the detail; only that it
    # changed, and where.
    was, before = redacted_lines(old, i1, i2, first)
    now, _ = redacted_lines(new, j1, j2, first)
    if was == now:  # every difference lies inside redacted values
        detail = f"a secret value changed on line {j1 + 1} (values not shown)"
        return Change("changing-secret", where, detail)
    cause, detail = classify_lines(was, now, before)
    return Change(cause, where, detail)


def _tool_name(tool: dict) -> str:
    spec = tool.get("function") if isinstance(tool.get("function"), dict) else tool
    return str(spec.get("name", "?"))


def _tools_change(old: list[dict], new: list[dict]) -> Change:
    sort = lambda tools: sorted(tools, key=lambda t: json.dumps(t, sort_keys=True))
    old_names, new_names = [_tool_name(t) for t in old], [_tool_name(t) for t in new]
    if sort(old) == sort(new) and old_names != new_names:
        return Change(
            "reordered-tools", "tools", f"{', '.join(old_names)} → {', '.join(new_names)}"
        )
    for i, (x, y) in enumerate(zip(old, new, strict=False)):
        if _key(x) != _key(y) and x == y:
            path, keys_old, keys_new = _key_order(x, y)
            where = f"tools[{i}]{path}"
            return Change("reordered-json-keys", where, f"keys {keys_old} → {keys_new}")
    added = [n for n in new_names if n not in old_names]
    removed = [n for n in old_names if n not in new_names]
    if added or removed:
        detail = "; ".join(
            f"{verb} {', '.join(names)}"
            for verb, names in (("added", added), ("removed", removed))
            if names
        )
        return Change("tools-changed", "tools", detail)
    i = next(i for i, (x, y) in enumerate(zip(old, new, strict=False)) if _key(x) != _key(y))
    return Change("tools-changed", f"tools[{i}]", f"definition of {new_names[i]} changed")


def _key_order(a, b, path: str = "") -> tuple[str, str, str]:
    """Return (path, old keys, new keys) of the first object whose keys changed order (a == b)."""
    if isinstance(a, dict):
        if list(a) != list(b):
            return path, "(" + ", ".join(a) + ")", "(" + ", ".join(b) + ")"
        for k in a:
            if _key(a[k], True) != _key(b[k], True):
                return _key_order(a[k], b[k], f"{path}.{k}")
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if _key(x, True) != _key(y, True):
                return _key_order(x, y, f"{path}[{i}]")
    return path, "?", "?"


def _without_reasoning(message: dict) -> dict:
    out = {k: v for k, v in message.items() if k not in _REASONING_FIELDS}
    if isinstance(out.get("content"), list):
        out["content"] = [b for b in out["content"] if b.get("type") not in _REASONING_BLOCKS]
    return out


def _reasoning(message: dict) -> str:
    blocks = [b for b in message.get("content") or [] if b.get("type") in _REASONING_BLOCKS]
    fields = [str(message.get(f) or "") for f in _REASONING_FIELDS]
    return "".join(str(b.get("thinking") or b.get("data") or "") for b in blocks) + "".join(fields)


def _message_change(where: str, old: dict, new: dict) -> Change:
    role = old.get("role", "?")
    if _objects(old) == _objects(new):  # the same objects, written differently
        path, keys_old, keys_new = _key_order(_objects(old), _objects(new))
        if keys_old == "?":  # same key order too: the text differs (spaces, escapes)
            path = _first_difference(old, new).replace(f".{_AS_SENT}", ".arguments")
            detail = "the same JSON, written differently (spaces or escapes)"
            return Change("reordered-json-keys", where + path, detail)
        return Change("reordered-json-keys", where + path, f"keys {keys_old} → {keys_new}")
    if _key(_without_reasoning(old)) == _key(_without_reasoning(new)) and _reasoning(old):
        what = "changed" if _reasoning(new) else "dropped"
        return Change("dropped-reasoning", where, f"{role} turn's reasoning {what}")
    path = _first_difference(_objects(old), _objects(new))
    return Change("edited-history", where + path, f"{role} message edited")


def _first_difference(a, b, path: str = "") -> str:
    """Return the path of the first value that differs between `a` and `b`."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a or k not in b or _key(a[k]) != _key(b[k]):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            if i >= len(a) or i >= len(b) or _key(a[i]) != _key(b[i]):
                return _first_difference(
                    a[i] if i < len(a) else None, b[i] if i < len(b) else None, f"{path}[{i}]"
                )
    return path


def message_at(request: dict, text: str, char: int) -> str:
    """Return which message of a request holds character `char` of its rendered text.

    Each message's strings are looked for in order; the first message whose last string found
    ends after `char` holds it.
    """
    cursor = 0
    for label, message in request_parts(request)["msgs"]:
        for leaf in _strings(message):
            found = text.find(leaf, cursor)
            cursor = found + len(leaf) if found >= 0 else cursor
        if cursor > char:
            return label
    return "messages"


def _strings(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in ("type", "role"):
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str) and len(value) >= 8:
        yield value
