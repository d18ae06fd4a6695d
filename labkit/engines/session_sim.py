"""Simulate a whole agent session on the engine models: per-turn tables, totals, hit rates.

Also the `labkit simulate FILE --engine NAME` command, which prints one row per request.
Everything here counts tokens with the engine models of `labkit.engines`; nothing runs a model.

`replies="cached"` (the default) lets each engine keep what it generated after a request, read
from the next request (`labkit.engines.replies`): the best case, where the model's output
re-tokenizes to the reply the client sends back. `replies="ignored"` caches prompts only: the
lower bound. The "anthropic" engine is served the requests in the hosted API's prefix order,
tools -> system -> messages, and is a gateway's view: it sees the attribution line as text.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence
from itertools import accumulate

from labkit.engines.base import ServeResult
from labkit.engines.registry import ENGINE_NAMES, make_engine, simulate
from labkit.engines.replies import REPLIES, api_view, generated_after
from labkit.redact import redact
from labkit.resources import resolve_session
from labkit.sessions.edits import apply_variant
from labkit.sessions.render import load_requests, render_request, with_attribution

__all__ = [
    "REPLIES",
    "SIMPLIFICATIONS",
    "add_cli",
    "compare_engines",
    "cumulative",
    "engine_options",
    "format_table",
    "header_end",
    "hit_rate",
    "render_variant",
    "simulate_session",
    "text_table",
    "turn_rows",
]


_FLAGS = {
    "slots": "--slots",
    "cache_ram": "--no-cache-ram",
    "block_size": "--block-size",
    "capacity_tokens": "--capacity",
}
_OPTIONS = {
    "llamacpp": ("slots", "cache_ram", "capacity_tokens"),
    "vllm": ("block_size", "capacity_tokens"),
    "sglang": ("block_size", "capacity_tokens"),
    "anthropic": (),
}


SIMPLIFICATIONS = {
    "llamacpp": "one slot (llama-server's default -np auto has 4 on a unified KV cache; one client "
    "at a time goes back to the slot that holds its conversation), RAM prompt cache with no "
    "eviction unless --capacity is set, no --cache-reuse shifting",
    "vllm": "one pool of blocks, no eviction unless --capacity is set",
    "sglang": "one radix tree, no eviction unless --capacity is set",
    "anthropic": "an Anthropic-style prompt cache that sees the attribution line as text (a "
    "gateway or proxy; Anthropic's own API handles the line apart), prefix order tools -> system "
    "-> messages, entries never evicted before their TTL",
}


def render_variant(requests: list[dict], tokenizer, variant: str, *, seed: int = 0) -> list:
    """Return a session rendered as one of `labkit.sessions.edits.VARIANTS` ("header on", ...)."""
    return [render_request(r, tokenizer) for r in apply_variant(requests, variant, seed=seed)]


def engine_options(
    engine: str,
    *,
    slots: int | None = None,
    cache_ram: bool = True,
    block_size: int | None = None,
    capacity_tokens: int | None = None,
) -> dict:
    """Return the keyword options of `make_engine(engine, ...)` for the given settings.

    `slots` and `cache_ram` are llama.cpp's (`--parallel`, `--cache-ram`), `block_size` is vLLM's
    block size or SGLang's page size, `capacity_tokens` the RAM cache (llama.cpp), block pool
    (vLLM, rounded down to whole blocks) or tree (SGLang) size; None or True leaves the default.
    """
    if engine not in ENGINE_NAMES:
        raise ValueError(f"Unknown engine {engine!r}: choose one of {', '.join(ENGINE_NAMES)}.")
    given = {"slots": slots, "cache_ram": None if cache_ram else False}
    given |= {"block_size": block_size, "capacity_tokens": capacity_tokens}
    allowed = _OPTIONS[engine]
    extra = [name for name, value in given.items() if value is not None and name not in allowed]
    if extra:
        takes = ", ".join(f"{_FLAGS[name]}" for name in allowed) or "no options"
        raise ValueError(
            f"{', '.join(_FLAGS[name] for name in extra)} does not apply to {engine}; "
            f"it takes {takes}."
        )
    if engine == "llamacpp":
        options = {"n_slots": slots, "cache_ram": given["cache_ram"]}
        options["cache_ram_max_tokens"] = capacity_tokens
    elif engine == "vllm":
        blocks = None if capacity_tokens is None else capacity_tokens // (block_size or 16)
        options = {"block_size": block_size, "capacity_blocks": blocks}
    else:
        options = {"page_size": block_size, "capacity_tokens": capacity_tokens}
    return {name: value for name, value in options.items() if value is not None}


def simulate_session(
    rendered: Sequence, engine: str = "llamacpp", *, replies: str = "cached", **options
) -> list[ServeResult]:
    """Serve a rendered session on a fresh engine model; return one ServeResult per request.

    `replies`: "cached" keeps what the engine generated after each request (the reply the next
    request carries), "ignored" caches prompts only. The "anthropic" engine gets each request in
    the API's prefix order (tools -> system -> messages) and never caches replies.
    """
    if replies not in REPLIES:
        raise ValueError(f"replies must be one of {', '.join(REPLIES)}, not {replies!r}.")
    requests = [api_view(r) for r in rendered] if engine == "anthropic" else rendered
    generated = generated_after(rendered) if replies == "cached" else None
    return simulate(make_engine(engine, **options), requests, generated=generated)


def header_end(request, engine: str | None = None) -> int | None:
    """Return the token index where the attribution line ends, in the order `engine` is served.

    The "anthropic" engine is served the API's order (tools -> system -> messages, `api_view`),
    where the line sits after the tools; the other engines the chat template's order. None when
    the request has no attribution line.
    """
    api_order = engine == "anthropic" and getattr(request, "api_tokens", None) is not None
    span = getattr(request, "api_header_span" if api_order else "header_span", None)
    return span[1] if span else None


def turn_rows(
    rendered: Sequence, results: Sequence[ServeResult], *, engine: str | None = None
) -> list[dict]:
    """Return one row per request: turn, n_tokens, cached, computed, header_end, engine detail.

    `header_end` is the token index where the attribution line ends (None without one), in the
    order the engine that served `results` saw the request (`header_end`); llama.cpp's rows add
    its own names `cache_n` and `prompt_n`.
    """
    rows = []
    for turn, (request, result) in enumerate(zip(rendered, results, strict=True)):
        end = header_end(request, engine)
        row = {"turn": turn, "n_tokens": result.n_tokens, "cached": result.cached}
        row |= {"computed": result.computed, "header_end": end}
        row |= {k: result.detail[k] for k in ("cache_n", "prompt_n") if k in result.detail}
        rows.append(row)
    return rows


def compare_engines(
    sessions: dict[str, Sequence],
    engines: Sequence[str] = ENGINE_NAMES,
    options: dict[str, dict] | None = None,
    *,
    replies: str = "cached",
) -> list[dict]:
    """Return a long table: one row per (session label, engine, turn) with tokens cached."""
    rows = []
    for label, rendered in sessions.items():
        for engine in engines:
            engine_options = (options or {}).get(engine, {})
            results = simulate_session(rendered, engine, replies=replies, **engine_options)
            for row in turn_rows(rendered, results, engine=engine):
                rows.append({"label": label, "engine": engine, **row})
    return rows


def hit_rate(results: Sequence[ServeResult], *, skip_first: bool = True) -> float:
    """Return the share of prompt tokens served from cache (after the cold first request)."""
    kept = results[1:] if skip_first else results
    return sum(r.cached for r in kept) / max(1, sum(r.n_tokens for r in kept))


def cumulative(values: Sequence[int]) -> list[int]:
    """Return running totals: tokens prefilled so far after each turn."""
    return list(accumulate(values))


def text_table(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    """Return rows of dicts as a right-aligned text table (floats to 4 significant digits)."""
    columns = list(columns or rows[0])
    cells = [
        [f"{v:.4g}" if isinstance(v, float) else str(v) for v in (r.get(c, "") for c in columns)]
        for r in rows
    ]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [columns] + cells
    return "\n".join(
        "  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)) for line in lines
    )


def format_table(rows: list[dict]) -> str:
    """Return per-request rows (from `turn_rows`) as a text table with a totals line."""
    columns = ["request", "n_tokens", "cached", "computed", "header_end"]
    columns += [c for c in ("cache_n", "prompt_n") if c in rows[0]]
    summed = [c for c in columns if c not in ("request", "header_end")]
    total = {"request": "total", "header_end": ""} | {c: sum(r[c] for r in rows) for c in summed}
    shown = [r | {"request": r["turn"], "header_end": r["header_end"] or "-"} for r in rows]
    return text_table([*shown, total], columns)


def _cmd_simulate(args) -> int:
    from labkit.models import context_tokens, load_tokenizer

    options = engine_options(
        args.engine,
        slots=args.slots,
        cache_ram=args.cache_ram,
        block_size=args.block_size,
        capacity_tokens=args.capacity,
    )
    path = resolve_session(args.file)
    requests = load_requests(path)
    tokenizer = load_tokenizer(args.model)
    if args.attribution is not None:  # a fresh cch per request, from the seed
        rng = random.Random(args.seed)
        requests = [with_attribution(r, args.attribution, rng=rng) for r in requests]
    rendered = [render_request(r, tokenizer) for r in requests]
    results = simulate_session(rendered, args.engine, replies=args.replies, **options)
    context = context_tokens(args.model)
    for r, result in enumerate(results):
        if context and result.n_tokens > context:
            print(
                f"labkit simulate: warning: request {r} has {result.n_tokens:,} tokens, more than "
                f"the model's context of {context:,}: a server would refuse it or cut it",
                file=sys.stderr,
            )
    if args.json:
        keys = ("n_tokens", "cached", "computed")
        rows = [{k: getattr(r, k) for k in keys} for r in results]
        over = [bool(context and r.n_tokens > context) for r in results]
        print(json.dumps([row | {"over_context": o} for row, o in zip(rows, over, strict=True)]))
        return 0
    attribution = args.attribution or "as in the file"
    print(
        redact(f"{path.name} on {args.engine} (attribution {attribution}, replies {args.replies})")
    )
    print(format_table(turn_rows(rendered, results, engine=args.engine)))
    print(f"hit rate after the first request: {hit_rate(results):.1%}")
    print(f"model: {SIMPLIFICATIONS[args.engine]}")
    return 0


def add_cli(sub) -> None:
    """Add the `simulate` command to the `labkit` command's subparsers."""
    cmd = sub.add_parser(
        "simulate",
        help="replay a session's requests on a serving-engine model, turn by turn",
        description='Render and tokenize a session (JSONL or JSON requests, or {"prompt": ...} '
        "lines) and serve it on a model of a serving engine's prefix cache: one row per request "
        "with tokens, cached and computed. Exit status: 0; 2 for bad input (the message names "
        "the file, line, request and field); 3 internal error.",
    )
    cmd.add_argument(
        "file",
        help="session file: JSONL (one request a line) or JSON, or a bundled session's name "
        "(e.g. fix_failing_test)",
    )
    cmd.add_argument("--engine", required=True, choices=ENGINE_NAMES, help="engine to model")
    cmd.add_argument(
        "--attribution",
        choices=["on", "off"],
        help="on: add the attribution line with a fresh cch per request; off: remove it "
        "(default: the requests as in the file)",
    )
    cmd.add_argument(
        "--replies",
        choices=REPLIES,
        default="cached",
        help="cached: the engine keeps the reply it generated after each request (read from the "
        "next request, the best case); ignored: prompts only, the lower bound (default: cached)",
    )
    cmd.add_argument("--json", action="store_true", help="print a JSON list, one object a request")
    cmd.add_argument("--model", help="tokenizer to use (default: the default model's)")
    cmd.add_argument("--seed", type=int, default=0, help="seed of the cch values (default 0)")
    cmd.add_argument("--slots", type=int, help="llama.cpp: number of slots (--parallel)")
    cmd.add_argument(
        "--no-cache-ram", dest="cache_ram", action="store_false", help="llama.cpp: no RAM cache"
    )
    cmd.add_argument("--block-size", type=int, help="vLLM block size, SGLang page size (tokens)")
    cmd.add_argument("--capacity", type=int, help="cache capacity in tokens (default: unbounded)")
    cmd.set_defaults(func=_cmd_simulate)
