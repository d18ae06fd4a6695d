"""The `labkit proxy --upstream URL [--port N] [--log FILE]` command."""

from __future__ import annotations

from labkit.proxy.server import serve_proxy

__all__ = ["add_cli"]


def _cmd_proxy(args) -> int:
    serve_proxy(args.upstream, port=args.port, log=args.log)
    return 0


def add_cli(sub) -> None:
    """Add the `proxy` command to the `labkit` command's subparsers."""
    proxy = sub.add_parser(
        "proxy",
        help="forward an agent's traffic to a server, log each request and its cache reuse",
        description="Listen on 127.0.0.1:PORT and forward every request to UPSTREAM unchanged "
        "(streams included). For each chat request print a line (tokens, cached, computed from "
        "the server's own counters, and the cause when reuse broke) and, with --log, append "
        "the request body, redacted, to a JSONL file that labkit lint, simulate and probe read. "
        "HTTP headers (API keys) are never logged.",
    )
    proxy.add_argument(
        "--upstream", required=True, help="the server's base URL, e.g. http://127.0.0.1:8080"
    )
    proxy.add_argument(
        "--port", type=int, default=8081, help="port to listen on (default 8081; 0: any free)"
    )
    proxy.add_argument("--log", help="JSONL file to append each request to (redacted)")
    proxy.set_defaults(func=_cmd_proxy)
