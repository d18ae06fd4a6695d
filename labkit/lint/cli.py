"""The `labkit lint REQUESTS` command.

Exit status (for scripts and CI):
  0  every line read, and no cause named in --fail-on found;
  1  some lines could not be read (the others are linted and reported);
  2  bad input: no such file, nothing readable, an unknown --fail-on cause or tokenizer;
  3  an internal error (a bug in labkit: please report it with the message), as for every
     labkit command;
  4  a cause named in --fail-on was found (wins over 1).
"""

from __future__ import annotations

import json
import sys

from labkit.lint.causes import CAUSES, EXPECTED
from labkit.lint.core import lint_file
from labkit.lint.hosted import HOSTED_APIS
from labkit.lint.report import SCHEMA, format_report, report_json
from labkit.redact import redact

__all__ = ["EXIT_CAUSES", "EXIT_CRASH", "EXIT_INPUT", "EXIT_PARTIAL", "add_cli", "fail_on_causes"]

EXIT_PARTIAL, EXIT_INPUT, EXIT_CRASH, EXIT_CAUSES = 1, 2, 3, 4
BUSTERS = sorted(set(CAUSES) - EXPECTED)


def fail_on_causes(spec: str | None) -> set[str]:
    """Return the cause keys a --fail-on value names ("any": every cache-buster)."""
    if not spec:
        return set()
    names = {name.strip() for name in spec.split(",") if name.strip()}
    if "any" in names:
        names = (names - {"any"}) | set(BUSTERS)
    unknown = sorted(names - set(CAUSES))
    if unknown:
        raise ValueError(
            f"--fail-on: unknown cause(s) {', '.join(unknown)}; use 'any' or some of: "
            f"{', '.join(BUSTERS)}"
        )
    return names


def _cmd_lint(args) -> int:
    try:
        fail_on = fail_on_causes(args.fail_on)
        report = lint_file(
            args.requests, model=args.model, attribution=args.attribution, api=args.api
        )
    except (RuntimeError, ValueError, OSError) as err:  # bad input: say it without a secret
        print(f"labkit lint: error: {redact(str(err))}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as err:  # a bug: say so, and which exit status scripts will see
        print(
            f"labkit lint: internal error ({type(err).__name__}: {redact(str(err))}); this is a "
            "bug in labkit — please report it with this message.",
            file=sys.stderr,
        )
        return EXIT_CRASH
    if args.json:
        print(json.dumps(report_json(report), indent=2, ensure_ascii=False))
    else:
        print(format_report(report))
    for warning in report.warnings:
        print(f"labkit lint: warning: {redact(warning)}", file=sys.stderr)
    if not report.requests:
        print("labkit lint: no request could be read", file=sys.stderr)
        return EXIT_INPUT
    found = sorted(fail_on & {c.cause for c in report.causes})
    if found:
        print(f"labkit lint: cause(s) found: {', '.join(found)} (--fail-on)", file=sys.stderr)
        return EXIT_CAUSES
    if report.errors:
        print(f"labkit lint: {len(report.errors)} line(s) could not be read", file=sys.stderr)
        return EXIT_PARTIAL
    return 0


def add_cli(sub) -> None:
    """Add the `lint` command to the `labkit` command's subparsers."""
    lint = sub.add_parser(
        "lint",
        help="find where captured requests stop reusing the KV cache, and why",
        description="Render and tokenize captured requests (JSONL or JSON), find where each "
        "diverges from the previous one, name the likely cause and suggest a fix. Secrets are "
        "redacted from all output. Exit status: 0 clean; 1 some lines unreadable (the others "
        "are linted); 2 bad input (no file, no readable request); 3 internal error; 4 a "
        "--fail-on cause found.",
    )
    lint.add_argument("requests", help="request file: JSONL (one request a line) or JSON")
    lint.add_argument(
        "--attribution",
        choices=["on", "off"],
        help="on: add the attribution line with a fresh cch per request; off: remove it "
        "(default: the requests as captured)",
    )
    lint.add_argument(
        "--api",
        choices=["auto", "none", *HOSTED_APIS],
        default="auto",
        help="also show reuse and cost on a hosted API, in its prefix order (tools → system → "
        "messages), with its minimum length and TTL; auto: from the model name (claude-*, gpt-*)",
    )
    lint.add_argument(
        "--fail-on",
        metavar="CAUSE[,CAUSE]",
        help="exit 4 when one of these causes is found ('any': every cache-buster), for CI",
    )
    lint.add_argument("--json", action="store_true", help=f'print JSON (schema "{SCHEMA}")')
    lint.add_argument("--model", help="tokenizer to use (default: the default model's)")
    lint.set_defaults(func=_cmd_lint)
