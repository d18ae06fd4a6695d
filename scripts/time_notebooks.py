"""Run every numbered notebook through nbval, one at a time, and write a table of their times.

    python scripts/time_notebooks.py [--small] [--budget-s 300] [--stress] [NOTEBOOK ...]

Full mode (LABKIT_SMALL=0) unless --small. Each notebook runs in its own pytest process
(`--nbval-lax --nbval-current-env`), so a failure in one does not stop the others. The table
(notebook, mode, result, wall seconds, within budget) names the hardware, the versions and the
load, is written as Markdown to --out (default build/notebook_times_{full,small}.md, which git
ignores) and printed at the end. Exits 1 if a notebook fails or runs over --budget-s.
`make test-full` runs it; `--stress` (or LABKIT_STRESS=1) runs it with two busy processes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from stress import DEFAULT_BUSY, busy_processes

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUDGET_S = 300  # a workshop's budget per notebook: 5 minutes


def numbered_notebooks(folder: Path) -> list[Path]:
    """Return the lessons, in order: every notebooks/NN_*.ipynb (solutions and others excluded)."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if p.is_file())


def hardware() -> str:
    """Return the device, versions and load this run measures on, in one line."""
    import torch

    import labkit

    device = labkit.pick_device()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{labkit.device_name(device)} ({device.type}), {os.cpu_count()} CPUs visible, "
        f"torch {torch.__version__}, Python {platform.python_version()}, "
        f"load average {load:.1f} at the start"
    )


def run_notebook(path: Path, *, small: bool, cell_timeout_s: int) -> tuple[bool, float, str]:
    """Run one notebook through nbval; return (passed, wall seconds, last lines of its output)."""
    env = {**os.environ, "LABKIT_SMALL": "1" if small else "0"}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--nbval-lax",
        "--nbval-current-env",
        f"--nbval-cell-timeout={cell_timeout_s}",
        str(path),
    ]
    start_s = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall_s = time.perf_counter() - start_s
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
    return done.returncode == 0, wall_s, tail


def table(rows: list[dict], *, budget_s: float, header: str) -> str:
    """Return the results as a Markdown table under a line naming the hardware."""
    lines = [
        header,
        "",
        "| notebook | mode | result | wall time | within budget |",
        "|---|---|---|---:|---|",
    ]
    for r in rows:
        within = "yes" if r["passed"] and r["wall_s"] <= budget_s else "no"
        minutes, seconds = divmod(round(r["wall_s"]), 60)
        lines.append(
            f"| `{r['notebook']}` | {r['mode']} | {'passed' if r['passed'] else 'FAILED'} "
            f"| {minutes} min {seconds:02d} s | {within} |"
        )
    total_s = round(sum(r["wall_s"] for r in rows))
    lines.append(f"| all | | | {total_s // 60} min {total_s % 60:02d} s | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    parser.add_argument("--small", action="store_true", help="small mode (LABKIT_SMALL=1)")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S)
    parser.add_argument("--cell-timeout-s", type=int, default=900)
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write")
    parser.add_argument(
        "--stress",
        action="store_true",
        default=os.environ.get("LABKIT_STRESS", "") == "1",
        help=f"run with {DEFAULT_BUSY} busy processes competing for the CPU ($LABKIT_STRESS=1)",
    )
    args = parser.parse_args(argv)
    notebooks = args.notebooks or numbered_notebooks(ROOT / "notebooks")
    mode = "small" if args.small else "full"
    out = args.out or ROOT / "build" / f"notebook_times_{mode}{'_stress' if args.stress else ''}.md"
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    stress_note = f", {DEFAULT_BUSY} busy processes competing" if args.stress else ""
    header = (
        f"Notebook wall times, {mode} mode{stress_note}, {stamp}: {hardware()}. "
        f"Budget {args.budget_s:.0f} s per notebook."
    )
    rows = []
    with busy_processes(DEFAULT_BUSY if args.stress else 0):
        for path in notebooks:
            print(f"running {path.name} ({mode} mode) ...", flush=True)
            passed, wall_s, tail = run_notebook(
                path, small=args.small, cell_timeout_s=args.cell_timeout_s
            )
            print(f"  {'passed' if passed else 'FAILED'} in {wall_s:.0f} s", flush=True)
            if not passed:
                print(tail, flush=True)
            rows.append({"notebook": path.name, "mode": mode, "passed": passed, "wall_s": wall_s})
    text = table(rows, budget_s=args.budget_s, header=header)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"\n{text}\n(written to {out})")
    ok = all(r["passed"] and r["wall_s"] <= args.budget_s for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
