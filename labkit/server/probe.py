"""Replay a session on a running server, one request at a time, and read what the server reports.

Token ids go to the server where it accepts them, so its tokenizer cannot differ from labkit's:
llama.cpp `POST /completion` with `prompt` as ids and `cache_prompt: true`; vLLM and SGLang
`POST /v1/completions` with an id prompt; an OpenAI-compatible `/v1/chat/completions` (the
server tokenizes the messages itself) as the fallback. Each request asks for one new token.

Replies: `ignored`. With one new token the server's slot holds the prompt only: llama.cpp feeds
a sampled token back into the slot (`server_slot::handle_last_sampled_token`, which pushes it onto
`slot.prompt.tokens`) only to compute the *next* token, and `process_token` stops at
`n_predict` = 1 before that (`has_budget`). The session's recorded replies then reach the server
as part of the next prompt, which is what `labkit simulate` models (slots hold prompts only).
With more new tokens the generated text would sit in the slot and the next prompt, carrying the
recorded reply instead, would stop matching where the two differ.

Every request's cached count is compared with the engine model's prediction for the same
tokens: `labkit.engines` `make_engine("llamacpp", n_slots=...)` — reuse = the common prefix with
the slot, minus one when that is the whole prompt (`update_slots`, `[TAG_PROMPT_LOGITS]`), slot
choice and the RAM prompt cache as in `get_available_slot` and `server_prompt_cache::load`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from labkit.engines import make_engine
from labkit.server.responses import ServerReport, parse_response

__all__ = [
    "API_NAMES",
    "ProbeError",
    "ProbeRow",
    "chat_messages",
    "detect_api",
    "http_json",
    "probe_request",
    "probe_session",
    "rows_json",
]

API_NAMES = ("auto", "llamacpp", "completions", "chat")
_ENGINE_OF_SERVER = {"llamacpp": "llamacpp", "vllm": "vllm", "sglang": "sglang"}


class ProbeError(RuntimeError):
    """The server could not be reached, refused a request, or answered in an unknown shape."""


@dataclass(frozen=True)
class ProbeRow:
    """One request as the server served it, beside the engine model's prediction."""

    turn: int
    n_tokens: int  # prompt tokens labkit sent
    cached: int | None  # tokens the server says it reused (None: it does not report them)
    computed: int | None  # tokens the server prefilled
    header_end: int | None  # token index where the attribution line ends (None without one)
    prompt_ms: float | None  # the server's own prefill time (llama.cpp)
    predicted_cached: int | None  # the engine model's cached count for the same tokens
    source: str  # the response fields the counts came from


def http_json(url: str, body: dict | None, timeout_s: float):
    """Return (status, JSON or error text) of a GET (no body) or a POST; ProbeError if unreached."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        text = err.read().decode("utf-8", "replace")[:300].replace("\n", " ")
        return err.code, text
    except TimeoutError as err:
        raise ProbeError(
            f"No answer from {url} within {timeout_s:.0f} s: the server is busy or stuck; raise "
            "--timeout or check the server's log."
        ) from err
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            raise ProbeError(
                f"No answer from {url} within {timeout_s:.0f} s: raise --timeout or check the "
                "server's log."
            ) from err
        raise ProbeError(
            f"No server answers at {url} ({err.reason}): start one (`labkit server run`) or "
            "check --url."
        ) from err
    except json.JSONDecodeError as err:
        raise ProbeError(f"{url} did not answer with JSON: is --url an inference server?") from err


def detect_api(url: str, timeout_s: float = 10.0) -> tuple[str, dict]:
    """Return ("llamacpp" | "completions", facts) for the server at `url`.

    llama.cpp answers `GET /props` with its settings (`total_slots`); vLLM, SGLang and other
    OpenAI-compatible servers answer `GET /v1/models` with the model's id.
    """
    url = url.rstrip("/")
    status, body = http_json(f"{url}/props", None, timeout_s)
    if status == 200 and isinstance(body, dict) and "default_generation_settings" in body:
        return "llamacpp", {"total_slots": body.get("total_slots"), "engine": "llamacpp"}
    status, body = http_json(f"{url}/v1/models", None, timeout_s)
    if status == 200 and isinstance(body, dict) and body.get("data"):
        model = body["data"][0]
        owner = str(model.get("owned_by", "")).lower()
        engine = next((e for e in ("vllm", "sglang") if e in owner), None)
        return "completions", {"model": model.get("id"), "engine": engine}
    raise ProbeError(
        f"{url} answers neither llama.cpp's /props nor /v1/models (HTTP {status}): check --url "
        "(give the server's root, e.g. http://127.0.0.1:8080)."
    )


def chat_messages(request: dict) -> list[dict]:
    """Return a request's system prompt and messages as OpenAI chat messages of plain text."""
    if "messages" in request and "system" not in request:  # already OpenAI-shaped
        return [{"role": m["role"], "content": m.get("content") or ""} for m in request["messages"]]

    def text(content) -> str:
        if isinstance(content, str):
            return content
        parts = []
        for block in content:
            if block.get("type") == "text":
                parts.append(block["text"])
            elif block.get("type") == "tool_use":
                parts.append(json.dumps({"name": block["name"], "input": block["input"]}))
            elif block.get("type") == "tool_result":
                parts.append(text(block.get("content") or ""))
        return "\n".join(parts)

    system = request.get("system")
    messages = [{"role": "system", "content": text(system)}] if system else []
    return messages + [
        {"role": m["role"], "content": text(m["content"])} for m in request["messages"]
    ]


def probe_request(
    url: str,
    api: str,
    tokens: Sequence[int],
    *,
    model: str | None = None,
    messages: list[dict] | None = None,
    timeout_s: float = 120.0,
) -> ServerReport:
    """Send one prompt (one new token, greedy) and return what the server reports about it."""
    url = url.rstrip("/")
    if api == "llamacpp":
        endpoint = f"{url}/completion"
        body = {"prompt": list(tokens), "n_predict": 1, "cache_prompt": True, "temperature": 0}
    elif api == "completions":
        endpoint = f"{url}/v1/completions"
        body = {"model": model, "prompt": list(tokens), "max_tokens": 1, "temperature": 0}
    elif api == "chat":
        endpoint = f"{url}/v1/chat/completions"
        body = {"model": model, "messages": messages, "max_tokens": 1, "temperature": 0}
    else:
        raise ValueError(f"Unknown api {api!r}: choose one of {', '.join(API_NAMES[1:])}.")
    status, answer = http_json(endpoint, body, timeout_s)
    if status == 404:
        raise ProbeError(
            f"{endpoint} does not exist (HTTP 404): the server is not {api}-compatible; try "
            "another --api or check --url."
        )
    if status != 200:
        what = "a token-id prompt" if api != "chat" else "the chat request"
        raise ProbeError(
            f"{endpoint} refused {what} (HTTP {status}: {answer}); try --api chat, or check the "
            "server's context size (--ctx)."
        )
    try:
        return parse_response(answer)
    except ValueError as err:
        raise ProbeError(f"{endpoint} answered, but {err}: labkit cannot read its counts.") from err


def probe_session(
    rendered: Sequence,
    url: str,
    *,
    api: str = "auto",
    requests: Sequence[dict] | None = None,
    engine=None,
    facts: dict | None = None,
    timeout_s: float = 120.0,
) -> list[ProbeRow]:
    """Send each rendered request to the server in order; return one ProbeRow per request.

    `engine` is the engine model whose predictions go beside the server's counts; pass the same
    one across calls to follow a server that keeps its cache between sessions (default: a fresh
    model of the server's engine, which assumes a fresh server). `requests` (the session's dicts)
    are needed for `api="chat"`; `facts` is what `detect_api` returned, if already asked.
    """
    facts = dict(facts or {})
    if api == "auto":
        api, facts = detect_api(url, timeout_s)
    if api == "chat" and requests is None:
        raise ValueError("api='chat' needs the session's requests (requests=...).")
    if engine is None:
        name = _ENGINE_OF_SERVER.get(
            facts.get("engine") or ("llamacpp" if api == "llamacpp" else "")
        )
        options = {"n_slots": facts["total_slots"]} if facts.get("total_slots") else {}
        engine = make_engine(name, **options) if name else None
    model = facts.get("model")
    rows = []
    for turn, request in enumerate(rendered):
        tokens = list(request.tokens)
        messages = chat_messages(requests[turn]) if api == "chat" else None
        report = probe_request(
            url, api, tokens, model=model, messages=messages, timeout_s=timeout_s
        )
        if api != "chat" and report.n_prompt != len(tokens):
            raise ProbeError(
                f"The server counted {report.n_prompt} prompt tokens for request {turn}, labkit "
                f"sent {len(tokens)}: it did not take the ids as they are (BOS added?)."
            )
        predicted = engine.serve(tokens).cached if engine is not None else None
        span = getattr(request, "header_span", None)
        rows.append(
            ProbeRow(
                turn,
                len(tokens),
                report.cached,
                report.computed,
                span[1] if span else None,
                report.prompt_ms,
                predicted,
                report.source,
            )
        )
    return rows


def rows_json(rows: Sequence[ProbeRow]) -> list[dict]:
    """Return rows as `labkit simulate --json` objects plus `prompt_ms` and `predicted_cached`."""
    keys = ("n_tokens", "cached", "computed", "prompt_ms", "predicted_cached")
    return [{k: asdict(r)[k] for k in keys} for r in rows]
