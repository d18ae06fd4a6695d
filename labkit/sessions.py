"""Load coding-agent sessions (Anthropic or OpenAI requests, or rendered prompts) and render them.

A session file holds the requests a client sent, in order: JSON (one request or a list) or JSONL
(one request a line). Three shapes are read:

- Anthropic Messages: `{"system": ..., "tools": [...], "messages": [...]}` with text, tool_use,
  tool_result and thinking blocks;
- OpenAI chat: `{"messages": [{"role": "system"|"user"|"assistant"|"tool", ...}], "tools": [...]}`;
- an already-rendered prompt: `{"prompt": "..."}`, tokenized as it is (no chat template).

Rendering is deterministic: tool inputs and schemas are written with `json.dumps` in the
request's own key order (never sorted), so a key-order change in a request shows up as a token
change, as it would on a server. With a ChatML template (SmolLM2's) it is also append-only: when
request k+1 extends request k's messages, its tokens start with all of request k's tokens.
"""

from __future__ import annotations

import bisect
import copy
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from labkit.header import HEADER_NAME, attribution_enabled, billing_header

__all__ = [
    "HEADER_LINE",
    "RenderedRequest",
    "SessionFormatError",
    "load_requests",
    "render_request",
    "render_session",
    "request_shape",
    "validate_request",
    "with_attribution",
]

# The attribution line wherever it starts a line, up to a newline (taken too) or a special token.
HEADER_LINE = re.compile(rf"^{re.escape(HEADER_NAME)}:[^\n<]*\n?", re.MULTILINE)
TOOLS_HEADING = (
    "# Tools\n\nYou can call the tools below. To call one, write "
    '<tool_call id=ID>{"name": NAME, "input": {...}}</tool_call>; each result comes back in '
    "the next user turn as <tool_result id=ID>...</tool_result>."
)
_SEP = "\n"  # between system blocks, between content blocks of one message


class SessionFormatError(ValueError):
    """A session file or request does not have a shape labkit reads."""


_BLOCKS = {"user": ("text", "tool_result"), "assistant": ("text", "tool_use", "thinking")}
_OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool")
_ANTHROPIC_ONLY = ("tool_use", "tool_result", "thinking")


def _check(ok: bool, where: str, problem: str) -> None:
    if not ok:
        raise SessionFormatError(f"{where}: {problem}")


def _check_text_parts(parts, where: str, what: str = "a string or a list of text blocks") -> None:
    if isinstance(parts, str):
        return
    _check(isinstance(parts, list), where, f"must be {what}, not {type(parts).__name__}")
    for i, part in enumerate(parts):
        _check(isinstance(part, dict), f"{where}[{i}]", "must be an object")
        _check(
            part.get("type") == "text",
            f"{where}[{i}]",
            f"expected a text block, got type {part.get('type')!r}",
        )
        _check(isinstance(part.get("text"), str), f"{where}[{i}].text", "missing or not a string")


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
    openai_tools = any(isinstance(t, dict) and "function" in t for t in request.get("tools") or [])
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
    shape = request_shape(request)
    if shape == "prompt":
        _check(isinstance(request["prompt"], str), "prompt", "must be a string")
        return shape
    tools = request.get("tools") or []
    _check(isinstance(tools, list), "tools", "must be a list")
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        _check(isinstance(tool, dict), where, "must be an object")
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
    _check(role in _BLOCKS, f"{where}.role", f"must be 'user' or 'assistant', not {role!r}")
    if isinstance(content, str):
        return
    _check(isinstance(content, list), f"{where}.content", "must be a string or a list of blocks")
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        _check(isinstance(block, dict), at, "must be an object")
        kind = block.get("type")
        known = ("text", "tool_use", "tool_result", "thinking")
        _check(kind in known, at, f"unknown block type {kind!r} (labkit reads {', '.join(known)})")
        _check(kind in _BLOCKS[role], at, f"a {kind} block does not belong in a {role} message")
        if kind == "text":
            _check(isinstance(block.get("text"), str), f"{at}.text", "missing or not a string")
        elif kind == "tool_use":
            for key, typ in (("id", str), ("name", str), ("input", dict)):
                _check(isinstance(block.get(key), typ), f"{at}.{key}", "missing or wrong type")
        elif kind == "tool_result":
            _check(isinstance(block.get("tool_use_id"), str), f"{at}.tool_use_id", "missing")
            _check_text_parts(block.get("content", ""), f"{at}.content")


def _check_openai(message, where: str) -> None:
    _check(isinstance(message, dict), where, "must be an object")
    role, content = message.get("role"), message.get("content")
    _check(
        role in _OPENAI_ROLES,
        f"{where}.role",
        f"must be one of {', '.join(_OPENAI_ROLES)}, not {role!r}",
    )
    if content is not None or role != "assistant":
        _check_text_parts(content, f"{where}.content", "a string or a list of text parts")
    if role == "tool":
        _check(isinstance(message.get("tool_call_id"), str), f"{where}.tool_call_id", "missing")
    for j, call in enumerate(message.get("tool_calls") or []):
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


@dataclass
class RenderedRequest:
    """One request rendered through a chat template: text, token ids and where things are.

    Spans are token index ranges `(start, end)`; `breakpoints` are token positions where a block
    carrying `cache_control` ends (the tokens `[0, breakpoint)` hold that block and all before it).
    """

    text: str
    tokens: list[int] = field(repr=False)
    breakpoints: list[int]
    shape: str  # "anthropic", "openai" or "prompt"
    system_span: tuple[int, int] | None = None  # the system message's content
    header_span: tuple[int, int] | None = None  # the attribution line, without its newline
    t_s: float | None = None  # the request's "t_s" field (seconds), if it carries one
    n_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.n_tokens = len(self.tokens)


def load_requests(path: str | Path) -> list[dict]:
    """Return the requests in a JSON (one request or a list) or JSONL (one a line) file, checked.

    Raises SessionFormatError naming the file, the request (0-based) and line, and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No session file at {path}: check the path (see data/sessions/).")
    text = path.read_text(encoding="utf-8")
    items: list[tuple[dict, int | None]] = []  # (request, line number or None)
    if path.suffix != ".jsonl":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            if path.suffix == ".json":
                raise SessionFormatError(
                    f"{path}: not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
                ) from err
        else:
            items = [(r, None) for r in (data if isinstance(data, list) else [data])]
    if not items:
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append((json.loads(line), line_no))
            except json.JSONDecodeError as err:
                raise SessionFormatError(
                    f"{path}: line {line_no}: not valid JSON: {err.msg} (column {err.colno})"
                ) from err
    if not items:
        raise SessionFormatError(f"{path}: no requests found; write one JSON request a line.")
    for index, (request, line_no) in enumerate(items):
        try:
            validate_request(request)
        except SessionFormatError as err:
            where = f"request {index}" + (f" (line {line_no})" if line_no else "")
            raise SessionFormatError(f"{path}: {where}: {err}") from None
    return [request for request, _ in items]


def _strip_header(text: str) -> str:
    return HEADER_LINE.sub("", text)


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
    elif shape == "anthropic":
        system = request.get("system")
        if isinstance(system, str):
            system = _strip_header(system)
            blocks = [{"type": "text", "text": t} for t in (line, system) if t]
            request["system"] = system if line is None else blocks
            return request
        blocks = []
        for block in system or []:
            text = _strip_header(block["text"])
            if text or not block["text"]:
                blocks.append({**block, "text": text})
        if line is not None:
            blocks.insert(0, {"type": "text", "text": line})
        if blocks or system is not None:
            request["system"] = blocks
    else:
        messages = request["messages"]
        for message in messages:
            if message.get("role") in ("system", "developer"):
                message["content"] = _strip_openai_header(message.get("content"))
        request["messages"] = messages = [
            m for m in messages if m.get("role") not in ("system", "developer") or m["content"]
        ]
        if line is not None:
            first = next((m for m in messages if m.get("role") in ("system", "developer")), None)
            if first is None:
                messages.insert(0, {"role": "system", "content": line})
            elif isinstance(first["content"], str):
                first["content"] = line + _SEP + first["content"]
            else:
                first["content"].insert(0, {"type": "text", "text": line})
    return request


def _strip_openai_header(content):
    if isinstance(content, str):
        return _strip_header(content)
    parts = [{**p, "text": _strip_header(p["text"])} for p in content or []]
    return [p for p in parts if p["text"]]


class _Builder:
    """Build one message's content, remembering where cached blocks end."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.marks: list[int] = []  # character offsets in the content
        self.size = 0

    def add(self, text: str, cached: bool = False, sep: str = "") -> None:
        text = (sep if self.parts else "") + text
        self.parts.append(text)
        self.size += len(text)
        if cached:
            self.marks.append(self.size)

    def text(self) -> str:
        return "".join(self.parts)


def _tools_text(tools: list[dict], out: _Builder) -> None:
    out.add(_SEP * 2 + TOOLS_HEADING if out.parts else TOOLS_HEADING)
    for tool in tools:
        spec = tool.get("function", tool)  # OpenAI wraps the definition in "function"
        schema = spec.get("input_schema", spec.get("parameters", {}))
        entry = f"## {spec['name']}\n{spec.get('description', '')}\nInput schema: "
        out.add(entry + json.dumps(schema, ensure_ascii=False), "cache_control" in tool, _SEP * 2)


def _call(call_id: str, name: str, input_json: str) -> str:
    return (
        f'<tool_call id={call_id}>{{"name": {json.dumps(name)}, "input": {input_json}}}</tool_call>'
    )


def _result(call_id: str, content: str, is_error: bool = False) -> str:
    error = " error=true" if is_error else ""
    return f"<tool_result id={call_id}{error}>{content}</tool_result>"


def _parts_text(content) -> str:
    if isinstance(content, str) or content is None:
        return content or ""
    return _SEP.join(part["text"] for part in content)


def _anthropic_block(block: dict) -> str:
    kind = block["type"]
    if kind == "text":
        return block["text"]
    if kind == "tool_use":
        return _call(block["id"], block["name"], json.dumps(block["input"], ensure_ascii=False))
    if kind == "tool_result":
        content = _parts_text(block.get("content"))
        return _result(block["tool_use_id"], content, bool(block.get("is_error")))
    return f"<thinking>{block.get('thinking', '')}</thinking>"


def _anthropic_chat(request: dict) -> list[tuple[str, _Builder]]:
    chat = []
    system, tools = request.get("system"), request.get("tools") or []
    if system or tools:
        out = _Builder()
        for block in [{"text": system}] if isinstance(system, str) else system or []:
            out.add(block["text"], "cache_control" in block, _SEP)
        if tools:
            _tools_text(tools, out)
        chat.append(("system", out))
    for message in request["messages"]:
        out = _Builder()
        content = message["content"]
        for block in [{"type": "text", "text": content}] if isinstance(content, str) else content:
            out.add(_anthropic_block(block), "cache_control" in block, _SEP)
        chat.append((message["role"], out))
    return chat


def _openai_chat(request: dict) -> list[tuple[str, _Builder]]:
    chat: list[tuple[str, _Builder]] = []
    tools = request.get("tools") or []
    for message in request["messages"]:
        role, content = message["role"], message.get("content")
        if role == "tool":
            result = _result(message["tool_call_id"], _parts_text(content))
            if chat and chat[-1][0] == "tool":
                chat[-1][1].add(result, sep=_SEP)
            else:
                chat.append(("tool", _Builder()))
                chat[-1][1].add(result)
            continue
        out = _Builder()
        for part in [{"text": content}] if isinstance(content, str) else content or []:
            out.add(part["text"], "cache_control" in part, _SEP)
        for call in message.get("tool_calls") or []:
            fn = call["function"]
            out.add(_call(call["id"], fn["name"], fn.get("arguments") or "{}"), sep=_SEP)
        chat.append(("system" if role == "developer" else role, out))
    chat = [("user" if role == "tool" else role, out) for role, out in chat]
    if tools:
        if not chat or chat[0][0] != "system":
            chat.insert(0, ("system", _Builder()))
        _tools_text(tools, chat[0][1])
    return chat


def _apply_template(tokenizer, messages: list[dict]) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "This tokenizer has no chat template, so a chat request cannot be rendered. Use a chat "
            'model\'s tokenizer (labkit.load_tokenizer()) or a session of {"prompt": ...} lines.'
        )
    from jinja2.exceptions import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except TemplateError:  # templates without a system role: fold it into the first user turn
        if len(messages) < 2 or messages[0]["role"] != "system":
            raise
        first = {
            "role": "user",
            "content": messages[0]["content"] + "\n\n" + messages[1]["content"],
        }
        merged = [first, *messages[2:]]
        return tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)


def render_request(request: dict, tokenizer) -> RenderedRequest:
    """Render one request through the tokenizer's chat template into text and token ids.

    System blocks are joined into one system message, followed by a "# Tools" section (name,
    description, JSON schema of each tool) — always in the system text, even when the template
    has a `tools=` slot, so every model sees the same text. tool_use blocks (OpenAI tool_calls)
    become `<tool_call id=...>{"name": ..., "input": ...}</tool_call>` text; tool_result blocks
    (OpenAI tool messages) become `<tool_result id=...>...</tool_result>` in a user message;
    blocks of one message are joined by newlines. The generation prompt is added.

    Character offsets map to tokens by the tokenizer's offset mapping: a breakpoint counts the
    tokens that end at or before the block's last character (a token straddling that end, rare
    as blocks end before a newline or a special token, is left out). A block is found in the
    rendered text by searching for its message's content in order; a template that rewrites
    content (strips it, say) can hide a message, whose breakpoints are then left out.
    """
    shape = validate_request(request)
    t_s = request.get("t_s")
    t_s = float(t_s) if isinstance(t_s, (int, float)) else None
    if shape == "prompt":
        text, marks, system = request["prompt"], [], None
    else:
        chat = _anthropic_chat(request) if shape == "anthropic" else _openai_chat(request)
        text = _apply_template(tokenizer, [{"role": r, "content": b.text()} for r, b in chat])
        marks, system, cursor = [], None, 0
        for role, out in chat:
            content = out.text()
            start = text.find(content, cursor)
            if start < 0 or not content:
                continue
            if role == "system" and system is None:
                system = (start, start + len(content))
            marks += [start + mark for mark in out.marks]
            cursor = start + len(content)
    tokens, to_token = _tokenize(tokenizer, text)
    header = HEADER_LINE.search(text)
    return RenderedRequest(
        text=text,
        tokens=tokens,
        breakpoints=[to_token(mark) for mark in marks],
        shape=shape,
        system_span=(to_token(system[0]), to_token(system[1])) if system else None,
        header_span=(
            (to_token(header.start()), to_token(header.start() + len(header[0].rstrip("\n"))))
            if header
            else None
        ),
        t_s=t_s,
    )


def _tokenize(tokenizer, text: str):
    """Return the token ids of `text` (special tokens parsed) and a char-offset → token mapper."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ends = [end for _, end in enc["offset_mapping"]]
        return list(enc["input_ids"]), lambda char: bisect.bisect_right(ends, char)
    count = lambda char: len(tokenizer(text[:char], add_special_tokens=False)["input_ids"])
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]), count


def render_session(
    requests: list[dict] | str | Path,
    tokenizer,
    *,
    attribution: bool | str | None = True,
    seed: int = 0,
) -> list[RenderedRequest]:
    """Render each request of a session, with or without the attribution line (fresh cch each).

    `attribution` is read like $CLAUDE_CODE_ATTRIBUTION_HEADER (None reads the variable); the
    cch values come from `random.Random(seed)`, so a session renders the same way every time.
    """
    if isinstance(requests, (str, Path)):
        requests = load_requests(requests)
    rng = random.Random(seed)
    enabled = attribution_enabled(attribution)
    return [render_request(with_attribution(r, enabled, rng=rng), tokenizer) for r in requests]
