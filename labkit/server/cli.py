"""The `labkit server build|run`, `labkit probe` and `labkit bench --server` commands."""

from __future__ import annotations

import json
import random
import sys
import time

from labkit.server.build import build_server
from labkit.server.probe import API_NAMES, detect_api, probe_session, rows_json
from labkit.server.process import DEFAULT_CTX, llama_server

__all__ = ["add_cli", "format_probe_table", "render_probe_session"]


def render_probe_session(
    file: str, attribution: str | None, *, seed: int = 0, model=None, shorten: dict | None = None
):
    """Return (requests, rendered) of a session file or bundled name, the line on/off/as is.

    `shorten` (keyword arguments of `labkit.experiments.shorten_session`) makes the session short
    first, for a slow machine: same structure, fewer tokens.
    """
    from labkit.experiments.replay import shorten_session
    from labkit.models import load_tokenizer
    from labkit.resources import resolve_session
    from labkit.sessions.render import load_requests, render_request, with_attribution

    requests = load_requests(resolve_session(file))
    tokenizer = load_tokenizer(model)
    if shorten is not None:
        requests = shorten_session(requests, tokenizer, **shorten)
    if attribution is not None:  # a fresh cch per request, from the seed (as `labkit simulate`)
        rng = random.Random(seed)
        requests = [with_attribution(r, attribution, rng=rng) for r in requests]
    return requests, [render_request(r, tokenizer) for r in requests]


def format_probe_table(rows) -> str:
    """Return probe rows as `labkit simulate`'s table plus prompt_ms and predicted_cached."""
    from labkit.engines.session_sim import text_table

    def show(value):
        return "-" if value is None else value

    columns = ["request", "n_tokens", "cached", "computed", "header_end", "prompt_ms"]
    columns += ["predicted_cached"]
    shown = [
        {"request": r.turn, "n_tokens": r.n_tokens, "cached": show(r.cached)}
        | {"computed": show(r.computed), "header_end": show(r.header_end)}
        | {"prompt_ms": show(r.prompt_ms), "predicted_cached": show(r.predicted_cached)}
        for r in rows
    ]

    def total(name):
        values = [getattr(r, name) for r in rows]
        return "-" if any(v is None for v in values) else sum(values)

    shown.append(
        {"request": "total", "n_tokens": total("n_tokens"), "cached": total("cached")}
        | {"computed": total("computed"), "header_end": "", "prompt_ms": total("prompt_ms")}
        | {"predicted_cached": total("predicted_cached")}
    )
    return text_table(shown, columns)


def _cmd_build(args) -> int:
    build_server(force=args.force, jobs=args.jobs)
    return 0


def _cmd_run(args) -> int:
    with llama_server(
        args.model, port=args.port, slots=args.slots, ctx=args.ctx, threads=args.threads
    ) as server:
        print(
            f"llama-server is ready at {server.url} ({args.slots} slot(s), {args.ctx} tokens "
            f"each); log: {server.log_path}. Stop it with Ctrl-C.",
            flush=True,
        )
        try:
            while server.alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nstopping llama-server", flush=True)
            return 0
        print(
            f"llama-server exited with code {server.process.returncode}; log: {server.log_path}",
            file=sys.stderr,
        )
        return 2


def _cmd_probe(args) -> int:
    api, facts = (args.api, {}) if args.api != "auto" else detect_api(args.url, args.timeout)
    requests, rendered = render_probe_session(
        args.file, args.attribution, seed=args.seed, model=args.model
    )
    if args.requests is not None:
        requests, rendered = requests[: args.requests], rendered[: args.requests]
    rows = probe_session(
        rendered, args.url, api=api, requests=requests, facts=facts, timeout_s=args.timeout
    )  # all requests first: on an error nothing is printed but the one-line message
    if args.json:
        print(json.dumps(rows_json(rows)))
        return 0
    attribution = args.attribution or "as in the file"
    print(f"{args.file} on {args.url} (attribution {attribution}, replies {args.replies})")
    print(format_probe_table(rows))
    if any(r.cached is None for r in rows):
        print(
            f"The server does not report cached tokens ({rows[0].source}): vLLM needs "
            "--enable-prompt-tokens-details, SGLang --enable-cache-report."
        )
    return 0


def _extend_bench(sub) -> None:
    bench = sub.choices["bench"]  # registered by labkit.experiments.bench
    bench.add_argument(
        "--server",
        action="store_true",
        help="prefill tokens/s in transformers and llama-server, side by side",
    )
    bench.add_argument("--url", help="with --server: use this llama-server instead of starting one")
    plain = bench.get_default("func")

    def run(args) -> int:
        if not args.server:
            return plain(args)
        from labkit.models import load_model
        from labkit.server.bench import format_prefill_table, prefill_compare

        model, tokenizer = load_model(args.model)
        lengths = [int(n) for n in str(args.prefix_lens).split(",") if n.strip()]
        if args.url:
            rows = prefill_compare(model, tokenizer, args.url, lengths, args.repeats)
        else:
            with llama_server(ctx=max(lengths) + 64) as server:
                rows = prefill_compare(model, tokenizer, server.url, lengths, args.repeats)
        print(json.dumps([r.__dict__ for r in rows]) if args.json else format_prefill_table(rows))
        return 0

    bench.set_defaults(func=run)


def add_cli(sub) -> None:
    """Add `server` and `probe` to the `labkit` command, and `--server` to `bench`."""
    server = sub.add_parser("server", help="build or run a real llama.cpp llama-server")
    actions = server.add_subparsers(dest="action", required=True)
    build = actions.add_parser("build", help="compile the pinned llama-server once (~15 min)")
    build.add_argument("--force", action="store_true", help="build again even if built")
    build.add_argument("--jobs", type=int, help="parallel compile jobs (default: all cores)")
    build.set_defaults(func=_cmd_build)
    run = actions.add_parser("run", help="run llama-server with the default model on 127.0.0.1")
    run.add_argument("--port", type=int, help="port (default: a free one)")
    run.add_argument("--slots", type=int, default=1, help="slots, llama-server --parallel (1)")
    run.add_argument("--ctx", type=int, default=DEFAULT_CTX, help="context per slot in tokens")
    run.add_argument("--threads", type=int, help="CPU threads (default: llama-server's choice)")
    run.add_argument("--model", help="a GGUF file (default: the one `labkit fetch` keeps)")
    run.set_defaults(func=_cmd_run)

    probe = sub.add_parser(
        "probe",
        help="replay a session on a running server and read its own cached-token counts",
        description="Send a session's requests to a server one at a time (token ids where it "
        "takes them, one new token each) and print what the server reports beside what "
        "`labkit simulate` predicts.",
    )
    probe.add_argument("file", help="session file, or a bundled session's name")
    probe.add_argument("--url", required=True, help="server root, e.g. http://127.0.0.1:8080")
    probe.add_argument(
        "--attribution",
        choices=["on", "off"],
        help="on: the line with a fresh cch per request; off: without it",
    )
    probe.add_argument(
        "--replies",
        choices=["ignored"],
        default="ignored",
        help="ignored (the only mode): the server generates one token, so its cache holds the "
        "prompt only and the recorded reply arrives with the next prompt",
    )
    probe.add_argument(
        "--api",
        choices=API_NAMES,
        default="auto",
        help="llamacpp (/completion), completions (/v1/completions, vLLM, SGLang), "
        "chat (/v1/chat/completions); auto asks the server",
    )
    probe.add_argument(
        "--json", action="store_true", help="print a JSON list, one object a request"
    )
    probe.add_argument("--timeout", type=float, default=300.0, help="seconds per request (300)")
    probe.add_argument("--requests", type=int, help="send only the first N requests")
    probe.add_argument("--seed", type=int, default=0, help="seed of the cch values (default 0)")
    probe.add_argument("--model", help="tokenizer to use (default: the default model's)")
    probe.set_defaults(func=_cmd_probe)
    _extend_bench(sub)
