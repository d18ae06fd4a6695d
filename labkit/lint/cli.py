"""The `labkit lint REQUESTS` command."""

from __future__ import annotations

import json
import sys

from labkit.lint.core import lint_file
from labkit.lint.report import SCHEMA, format_report, report_json
from labkit.redact import redact

__all__ = ["add_cli"]


def _cmd_lint(args) -> int:
    try:
        report = lint_file(args.requests, model=args.model, attribution=args.attribution)
    except (RuntimeError, ValueError, OSError) as err:  # say it without echoing a secret
        raise RuntimeError(redact(str(err))) from None
    if args.json:
        print(json.dumps(report_json(report), indent=2, ensure_ascii=False))
    else:
        print(format_report(report))
    for warning in report.warnings:
        print(f"labkit lint: warning: {redact(warning)}", file=sys.stderr)
    if report.errors:
        print(f"labkit lint: {len(report.errors)} line(s) could not be read", file=sys.stderr)
    if report.errors and not report.requests:
        return 2  # nothing could be read: bad input
    return 1 if report.errors else 0


def add_cli(sub) -> None:
    """Add the `lint` command to the `labkit` command's subparsers."""
    lint = sub.add_parser(
        "lint",
        help="find where captured requests stop reusing the KV cache, and why",
        description="Render and tokenize captured requests (JSONL or JSON), find where each "
        "diverges from the previous one, name the likely cause and suggest a fix. Secrets are "
        "redacted from all output. Exit status: 0; 1 when some lines could not be read (the "
        "others are linted); 2 for bad input (no file, no readable request); 3 internal error.",
    )
    lint.add_argument("requests", help="request file: JSONL (one request a line) or JSON")
    lint.add_argument(
        "--attribution",
        choices=["on", "off"],
        help="on: add the attribution line with a fresh cch per request; off: remove it "
        "(default: the requests as captured)",
    )
    lint.add_argument("--json", action="store_true", help=f'print JSON (schema "{SCHEMA}")')
    lint.add_argument("--model", help="tokenizer to use (default: the default model's)")
    lint.set_defaults(func=_cmd_lint)
