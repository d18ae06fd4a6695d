"""Render coding-agent sessions (Anthropic or OpenAI requests, or rendered prompts) into tokens.

Reading and checking session files lives in `labkit.sessions.format`, the attribution line and
other request edits in `labkit.sessions.edits`; their public names are re-exported here, so
`from labkit.sessions import load_requests, with_attribution` keeps working.

Rendering is deterministic: tool inputs and schemas are written with `json.dumps` in the
request's own key order (never sorted), so a key-order change in a request shows up as a token
change, as it would on a server. With a ChatML template (SmolLM2's) it is also append-only: when
request k+1 extends request k's messages, its tokens start with all of request k's tokens.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from labkit.sessions.blocks import block_placeholder, is_media_block
from labkit.sessions.edits import HEADER_LINE, with_attribution
from labkit.sessions.format import (
    SessionFormatError,
    load_requests,
    request_shape,
    validate_request,
)
from labkit.sessions.header import attribution_enabled
from labkit.tokens import MemoTokenizer, encode_whole

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

TOOLS_HEADING = (
    "# Tools\n\nYou can call the tools below. To call one, write "
    '<tool_call id=ID>{"name": NAME, "input": {...}}</tool_call>; each result comes back in '
    "the next user turn as <tool_result id=ID>...</tool_result>."
)
_SEP = "\n"  # between system blocks, between content blocks of one message


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
    # Each chat message in order (system first): its role, and its content's token span (None
    # when the template hid it). Empty for an already-rendered {"prompt": ...} request.
    roles: list[str] = field(default_factory=list)
    message_spans: list[tuple[int, int] | None] = field(default_factory=list)
    # The hosted API's cache prefix order, tools -> system -> messages (Anthropic shape with
    # tools): the same request rendered with the tools section before the system blocks. None
    # when that order is the template's own (no tools, or not an Anthropic request).
    api_tokens: list[int] | None = field(default=None, repr=False)
    api_breakpoints: list[int] | None = None
    api_header_span: tuple[int, int] | None = None  # the attribution line within api_tokens
    n_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.n_tokens = len(self.tokens)


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
    return _SEP.join(
        part["text"] if part.get("type", "text") == "text" else block_placeholder(part)
        for part in content
    )


def _anthropic_block(block: dict) -> str:
    kind = block["type"]
    if kind == "text":
        return block["text"]
    if kind == "tool_use":
        return _call(block["id"], block["name"], json.dumps(block["input"], ensure_ascii=False))
    if kind == "tool_result":
        content = _parts_text(block.get("content"))
        return _result(block["tool_use_id"], content, bool(block.get("is_error")))
    if is_media_block(block):  # an image, a document, an unknown type: its digest
        return block_placeholder(block)
    return f"<thinking>{block.get('thinking', '')}</thinking>"


def _anthropic_chat(request: dict, tools_first: bool = False) -> list[tuple[str, _Builder]]:
    chat = []
    system, tools = request.get("system"), request.get("tools") or []
    if system or tools:
        out = _Builder()
        if tools and tools_first:
            _tools_text(tools, out)
        blocks = [{"text": system}] if isinstance(system, str) else system or []
        for i, block in enumerate(blocks):  # after the tools, the first block opens a paragraph
            out.add(block["text"], "cache_control" in block, _SEP * 2 if i == 0 else _SEP)
        if tools and not tools_first:
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
            text = part["text"] if part.get("type", "text") == "text" else block_placeholder(part)
            out.add(text, "cache_control" in part, _SEP)
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


def render_request(request: dict, tokenizer, *, api_order: bool = True) -> RenderedRequest:
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

    `roles` and `message_spans` locate each message's content in the tokens (the token at a
    span's end is the template's end-of-turn token, `<|im_end|>` for ChatML): the engine models
    read a reply the model generated from the next request (`labkit.engines.replies`). An
    Anthropic request with tools is rendered a second time in the hosted API's cache order,
    tools -> system -> messages (`api_tokens`, `api_breakpoints`), since a local template puts
    the tools after the system prompt; `api_order=False` skips it (`labkit lint` does not read
    it).
    """
    shape = validate_request(request)
    t_s = request.get("t_s")
    t_s = float(t_s) if isinstance(t_s, (int, float)) else None
    if shape == "prompt":
        text, marks, system, spans, roles = request["prompt"], [], None, [], []
    else:
        chat = _anthropic_chat(request) if shape == "anthropic" else _openai_chat(request)
        text, marks, system, spans = _render_chat(tokenizer, chat)
        roles = [role for role, _ in chat]
    tokens, to_token = _tokenize(tokenizer, text)
    header = HEADER_LINE.search(text)
    api_tokens = api_breakpoints = api_header = None
    if api_order and shape == "anthropic" and request.get("tools"):
        api_text, api_marks, _, _ = _render_chat(tokenizer, _anthropic_chat(request, True))
        api_tokens, api_to_token = _tokenize(tokenizer, api_text)
        api_breakpoints = [api_to_token(mark) for mark in api_marks]
        api_header = _line_span(HEADER_LINE.search(api_text), api_to_token)
    return RenderedRequest(
        text=text,
        tokens=tokens,
        breakpoints=[to_token(mark) for mark in marks],
        shape=shape,
        system_span=(to_token(system[0]), to_token(system[1])) if system else None,
        header_span=_line_span(header, to_token),
        t_s=t_s,
        roles=roles,
        message_spans=[(to_token(a), to_token(b)) if a is not None else None for a, b in spans],
        api_tokens=api_tokens,
        api_breakpoints=api_breakpoints,
        api_header_span=api_header,
    )


def _line_span(match, to_token) -> tuple[int, int] | None:
    """Return the token span of a matched line, without its newline (None without a match)."""
    if match is None:
        return None
    return to_token(match.start()), to_token(match.start() + len(match[0].rstrip("\n")))


def _render_chat(tokenizer, chat: list[tuple[str, _Builder]]):
    """Return the chat's text, its breakpoint offsets, the system span and each message's span.

    Offsets are characters; a message the template hid (not found in order) has span (None, None).
    """
    text = _apply_template(tokenizer, [{"role": r, "content": b.text()} for r, b in chat])
    marks, system, cursor, spans = [], None, 0, []
    for role, out in chat:
        content = out.text()
        start = text.find(content, cursor)
        if start < 0 or not content:
            spans.append((None, None))
            continue
        if role == "system" and system is None:
            system = (start, start + len(content))
        marks += [start + mark for mark in out.marks]
        cursor = start + len(content)
        spans.append((start, cursor))
    return text, marks, system, spans


def _tokenize(tokenizer, text: str):
    """Return the token ids of `text` (special tokens parsed) and a char-offset → token mapper."""
    if isinstance(tokenizer, MemoTokenizer):  # long texts in pieces, each distinct one once
        return tokenizer.encode(text)
    return encode_whole(tokenizer, text)


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
