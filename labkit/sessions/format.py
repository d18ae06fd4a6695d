"""Read and check session files: the request shapes labkit reads, with errors that name the field.

A session file holds the requests a client sent, in order: JSON (one request or a list) or JSONL
(one request a line). Three shapes are read:

- Anthropic Messages: `{"system": ..., "tools": [...], "messages": [...]}` with text, tool_use,
  tool_result and thinking blocks; any other typed block (an image, a document, a type labkit
  does not know) is read too and rendered by a digest of its content (`labkit.sessions.blocks`);
- OpenAI chat: `{"messages": [{"role": "system"|"user"|"assistant"|"tool", ...}], "tools": [...]}`;
- an already-rendered prompt: `{"prompt": "..."}`, tokenized as it is (no chat template).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from labkit.sessions.blocks import is_media_block

__all__ = [
    "MAX_DEPTH",
    "SessionFormatError",
    "decode_lines",
    "load_requests",
    "read_json_items",
    "request_shape",
    "validate_request",
]


class SessionFormatError(ValueError):
    """A session file or request does not have a shape labkit reads."""


_BLOCKS = {
    "user": ("text", "tool_result"),
    "assistant": ("text", "tool_use", "thinking", "redacted_thinking"),
}
_OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool")
_ANTHROPIC_ONLY = ("tool_use", "tool_result", "thinking")
# Values an error message may quote: the words the formats use. Anything else (it may be a
# secret pasted into the wrong field) is described by its type and length, never echoed.
_QUOTABLE = {
    *_OPENAI_ROLES,
    *_ANTHROPIC_ONLY,
    "text",
    "function",
    "image",
    "image_url",
    "document",
    "redacted_thinking",
    "input_text",
    "output_text",
    "refusal",
}
MAX_DEPTH = 100  # nesting deeper than this is refused with its location (no recursion errors)


def _shown(value) -> str:
    """Return a value for an error message: quoted if it is a known word, else described."""
    if isinstance(value, str) and value in _QUOTABLE:
        return repr(value)
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return "null" if value is None else f"a {type(value).__name__}"


def _check(ok: bool, where: str, problem: str) -> None:
    if not ok:
        raise SessionFormatError(f"{where}: {problem}")


def _check_text_parts(
    parts, where: str, what: str = "a string or a list of text blocks", media: bool = False
) -> None:
    """Check text parts; with `media`, typed non-text parts (images, documents) pass too."""
    if isinstance(parts, str):
        return
    _check(isinstance(parts, list), where, f"must be {what}, not {type(parts).__name__}")
    for i, part in enumerate(parts):
        _check(isinstance(part, dict), f"{where}[{i}]", "must be an object")
        if media and isinstance(part.get("type"), str) and part["type"] != "text":
            continue  # an image, a document, an unknown part: rendered by its digest
        _check(
            part.get("type") == "text",
            f"{where}[{i}]",
            f"expected a text block, got type {_shown(part.get('type'))}",
        )
        _check(isinstance(part.get("text"), str), f"{where}[{i}].text", "missing or not a string")


def _check_t_s(t_s) -> None:
    ok = t_s is None or (
        isinstance(t_s, (int, float)) and not isinstance(t_s, bool) and _finite(t_s)
    )
    _check(ok, "t_s", "must be a number of seconds (finite)")


def _finite(number) -> bool:
    try:
        return math.isfinite(float(number))
    except OverflowError:  # an int too large for a float
        return False


def _check_tree(value) -> None:
    """Refuse nesting deeper than MAX_DEPTH and strings that are not valid Unicode (lone
    surrogates), naming where; iterative, so a deep document cannot exhaust the stack."""
    stack = [(value, "request", 0)]
    while stack:
        item, where, depth = stack.pop()
        _check(depth <= MAX_DEPTH, where, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, dict):
            stack += [(v, f"{where}.{k}" if depth else str(k), depth + 1) for k, v in item.items()]
            strings = item.keys()
        elif isinstance(item, list):
            stack += [(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(item)]
            strings = ()
        else:
            strings = (item,) if isinstance(item, str) else ()
        for text in strings:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as err:
                    _check(
                        False,
                        where,
                        f"holds a lone surrogate (\\u{ord(text[err.start]):x}), "
                        "not text: fix the escape sequence in the file",
                    )


def request_shape(request) -> str:
    """Return the request's shape: "prompt", "openai" or "anthropic" (not checked in depth)."""
    _check(isinstance(request, dict), "request", f"must be an object, not {type(request).__name__}")
    if "prompt" in request:
        return "prompt"
    messages = request.get("messages")
    _check(
        isinstance(messages, list) and messages,
        "messages",
        'missing or not a non-empty list (write {"prompt": ...} for an already-rendered prompt)',
    )
    tools = request.get("tools") if isinstance(request.get("tools"), list) else []
    openai_tools = any(isinstance(t, dict) and "function" in t for t in tools)
    openai_roles = any(
        isinstance(m, dict)
        and (m.get("role") in ("system", "developer", "tool") or "tool_calls" in m)
        for m in messages
    )
    anthropic = "system" in request or any(
        isinstance(m, dict)
        and isinstance(m.get("content"), list)
        and any(isinstance(b, dict) and b.get("type") in _ANTHROPIC_ONLY for b in m["content"])
        for m in messages
    )
    return "openai" if (openai_tools or openai_roles) and not anthropic else "anthropic"


def validate_request(request) -> str:
    """Check one request's shape and return it; raise SessionFormatError naming the field."""
    _check_tree(request)
    shape = request_shape(request)
    if shape == "prompt":
        _check(isinstance(request["prompt"], str), "prompt", "must be a string")
        _check_t_s(request.get("t_s"))
        return shape
    _check_t_s(request.get("t_s"))
    tools = request.get("tools") or []
    _check(isinstance(tools, list), "tools", "must be a list")
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        _check(isinstance(tool, dict), where, "must be an object")
        _check(
            isinstance(tool.get("function", {}), dict),
            f"{where}.function",
            "must be an object (the tool's definition)",
        )
        if shape == "openai":
            tool, where = tool.get("function"), f"{where}.function"
            _check(
                isinstance(tool, dict),
                where,
                'missing (write {"type": "function", '
                '"function": {"name": ..., "parameters": {...}}})',
            )
        schema = "parameters" if shape == "openai" else "input_schema"
        _check(isinstance(tool.get("name"), str), f"{where}.name", "missing or not a string")
        _check(isinstance(tool.get(schema, {}), dict), f"{where}.{schema}", "must be an object")
        _check(shape == "openai" or schema in tool, f"{where}.{schema}", "missing")
    if shape == "anthropic" and request.get("system") is not None:
        _check_text_parts(request["system"], "system")
    for i, message in enumerate(request["messages"]):
        (_check_openai if shape == "openai" else _check_anthropic)(message, f"messages[{i}]")
    return shape


def _check_anthropic(message, where: str) -> None:
    _check(isinstance(message, dict), where, "must be an object")
    role, content = message.get("role"), message.get("content")
    _check(
        isinstance(role, str) and role in _BLOCKS,
        f"{where}.role",
        f"must be 'user' or 'assistant', not {_shown(role)}",
    )
    if isinstance(content, str):
        return
    _check(isinstance(content, list), f"{where}.content", "must be a string or a list of blocks")
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        _check(isinstance(block, dict), at, "must be an object")
        kind = block.get("type")
        _check(isinstance(kind, str), f"{at}.type", "missing or not a string")
        if is_media_block(block):  # image, document, unknown type: rendered by its digest
            continue
        _check(kind in _BLOCKS[role], at, f"a {kind} block does not belong in a {role} message")
        if kind == "text":
            _check(isinstance(block.get("text"), str), f"{at}.text", "missing or not a string")
        elif kind == "tool_use":
            for key, typ in (("id", str), ("name", str), ("input", dict)):
                _check(isinstance(block.get(key), typ), f"{at}.{key}", "missing or wrong type")
        elif kind == "tool_result":
            _check(isinstance(block.get("tool_use_id"), str), f"{at}.tool_use_id", "missing")
            _check_text_parts(block.get("content", ""), f"{at}.content", media=True)


def _check_openai(message, where: str) -> None:
    _check(isinstance(message, dict), where, "must be an object")
    role, content = message.get("role"), message.get("content")
    _check(
        isinstance(role, str) and role in _OPENAI_ROLES,
        f"{where}.role",
        f"must be one of {', '.join(_OPENAI_ROLES)}, not {_shown(role)}",
    )
    if content is not None or role != "assistant":
        media = role not in ("system", "developer")  # images etc. in user/assistant/tool turns
        _check_text_parts(content, f"{where}.content", "a string or a list of parts", media=media)
    if role == "tool":
        _check(isinstance(message.get("tool_call_id"), str), f"{where}.tool_call_id", "missing")
    calls = message.get("tool_calls") or []
    _check(isinstance(calls, list), f"{where}.tool_calls", "must be a list")
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        _check(
            isinstance(fn, dict) and isinstance(fn.get("name"), str),
            f"{at}.function.name",
            "missing or not a string",
        )
        _check(isinstance(call.get("id"), str), f"{at}.id", "missing or not a string")
        args = fn.get("arguments", "{}")
        _check(isinstance(args, str), f"{at}.function.arguments", "must be a JSON string")


def decode_lines(data: bytes) -> tuple[str, list[tuple[int, str]]]:
    """Decode UTF-8 bytes (a leading BOM is dropped); return (text, [(line, error)]).

    A line that is not UTF-8 is reported with its line and column and left empty in the text,
    so the other lines keep their numbers.
    """
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    lines, errors = data.split(b"\n"), []
    for line_no, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as err:
            errors.append(
                (
                    line_no,
                    f"line {line_no}: not UTF-8 text (byte 0x{line[err.start]:02x} at column "
                    f"{err.start + 1}): save the file as UTF-8",
                )
            )
            lines[line_no - 1] = b""
    return b"\n".join(lines).decode("utf-8"), errors


def _loads(text: str):
    """Return json.loads(text); raise json.JSONDecodeError or ValueError with a short message."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"nested too deeply to read (more than {MAX_DEPTH} levels)") from None


def read_json_items(text: str, suffix: str = "") -> tuple[list[tuple], list[tuple]]:
    """Parse JSON (one object or a list) or JSONL text; return ([(item, line)], [(line, error)]).

    A ".jsonl" file is read line by line; a ".json" file as one document; anything else as one
    document if it parses, else line by line. Line numbers are 1-based (None for one document).
    """
    if suffix != ".jsonl":
        try:
            data = _loads(text)
        except json.JSONDecodeError as err:
            if suffix == ".json":  # one JSON document: nothing to read line by line
                where = f"line {err.lineno}, column {err.colno}"
                return [], [(err.lineno, f"not valid JSON: {err.msg} ({where})")]
        except ValueError as err:
            if suffix == ".json":
                return [], [(None, f"not valid JSON: {err}")]
        else:
            return [(item, None) for item in (data if isinstance(data, list) else [data])], []
    items, errors = [], []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((_loads(line), line_no))
        except json.JSONDecodeError as err:
            errors.append(
                (line_no, f"line {line_no}: not valid JSON: {err.msg} (column {err.colno})")
            )
        except ValueError as err:
            errors.append((line_no, f"line {line_no}: not valid JSON: {err}"))
    return items, errors


def load_requests(path: str | Path) -> list[dict]:
    """Return the requests in a JSON (one request or a list) or JSONL (one a line) file, checked.

    Raises SessionFormatError naming the file, the request (0-based) and line, and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No session file at {path}: check the path (see data/sessions/).")
    text, bad_bytes = decode_lines(path.read_bytes())
    items, bad_lines = read_json_items(text, path.suffix)
    bad = sorted(bad_bytes + bad_lines, key=lambda e: e[0] or 0)
    if bad:
        line_no, message = bad[0]
        raise SessionFormatError(f"{path}: {message}")
    if not items:
        raise SessionFormatError(f"{path}: no requests found; write one JSON request a line.")
    for index, (request, line_no) in enumerate(items):
        try:
            validate_request(request)
        except SessionFormatError as err:
            where = f"request {index}" + (f" (line {line_no})" if line_no else "")
            raise SessionFormatError(f"{path}: {where}: {err}") from None
    return [request for request, _ in items]
