"""Run a command while busy processes compete for the CPU: the stress mode of the test suite.

    python scripts/stress.py [--busy 2] -- COMMAND ...

Starts `--busy` processes that spin on the CPU (what a browser, a build or a second notebook does
to a learner's laptop), runs COMMAND, stops the busy processes and exits with COMMAND's status.
`LABKIT_STRESS=1 make test` runs the whole suite this way; timing asserts must hold under it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys

BUSY_CODE = "while True:\n    pass\n"
DEFAULT_BUSY = 2


@contextlib.contextmanager
def busy_processes(count: int):
    """Keep `count` CPU-spinning child processes running inside the `with` block."""
    children = [
        subprocess.Popen([sys.executable, "-c", BUSY_CODE], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        yield [child.pid for child in children]
    finally:
        for child in children:  # only the processes started here, each by its own handle
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--busy",
        type=int,
        default=int(os.environ.get("LABKIT_STRESS_BUSY", DEFAULT_BUSY)),
        help="busy processes to run alongside (default: %(default)s)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --, e.g. -- pytest tests")
    if args.busy < 0:
        parser.error(f"--busy must be 0 or more, got {args.busy}")
    with busy_processes(args.busy) as pids:
        print(f"stress: {args.busy} busy processes (pids {pids}) compete for the CPU", flush=True)
        return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
