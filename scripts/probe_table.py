"""Turn two `labkit probe --json` runs (the line on, the line off) into the README's Markdown table.

    labkit probe fix_failing_test --url URL --attribution on --json > on.json
    labkit probe fix_failing_test --url URL --attribution off --json > off.json
    labkit simulate fix_failing_test --engine llamacpp --replies ignored --attribution on \
        --json > sim_on.json   # and off
    python scripts/probe_table.py on.json off.json --simulate sim_on.json sim_off.json

Per request: prompt tokens, the server's `cache_n` with the prediction beside it, the server's
prompt ms, line on and off; totals; the ratio of the session's prompt times; the hardware line.
Exit 1 when a server count differs from its prediction (or from `simulate`), so a table that
disagrees is never pasted as if it agreed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

__all__ = ["hardware_line", "mismatches", "probe_table"]


def _load(path: str) -> list[dict]:
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise SystemExit(f"{path}: not a `labkit probe --json` / `simulate --json` list")
    return rows


def mismatches(probe: list[dict], simulated: list[dict] | None = None) -> list[str]:
    """Return one line per request whose server count differs from the prediction or simulate."""
    found = []
    for k, row in enumerate(probe):
        if row["cached"] != row["predicted_cached"]:
            found.append(
                f"request {k}: cache_n {row['cached']} != predicted {row['predicted_cached']}"
            )
        if simulated is not None and (
            k >= len(simulated) or simulated[k]["cached"] != row["cached"]
        ):
            other = simulated[k]["cached"] if k < len(simulated) else "missing"
            found.append(f"request {k}: cache_n {row['cached']} != simulate's {other}")
    return found


def hardware_line() -> str:
    """Return this machine's CPU model, cores visible and load average."""
    from labkit.device import cpu_model_name

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu_model_name()}, {os.cpu_count()} cores visible, load average {load:.1f} when the "
        "table was made"
    )


def _ms(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def probe_table(on: list[dict], off: list[dict]) -> str:
    """Return the Markdown table of a line-on and a line-off probe of the same session."""
    if len(on) != len(off):
        raise ValueError(f"the runs differ in length ({len(on)} vs {len(off)} requests)")
    head = (
        "| request | line on: tokens | cache_n (predicted) | prompt ms "
        "| line off: tokens | cache_n (predicted) | prompt ms |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for k, (a, b) in enumerate(zip(on, off, strict=True)):
        lines.append(
            f"| {k} | {a['n_tokens']:,} | {a['cached']:,} ({a['predicted_cached']:,}) "
            f"| {_ms(a['prompt_ms'])} | {b['n_tokens']:,} | {b['cached']:,} "
            f"({b['predicted_cached']:,}) | {_ms(b['prompt_ms'])} |"
        )

    def total(rows, key):
        return sum(r[key] for r in rows)

    on_ms, off_ms = total(on, "prompt_ms"), total(off, "prompt_ms")
    lines.append(
        f"| all {len(on)} | {total(on, 'n_tokens'):,} | {total(on, 'cached'):,} "
        f"| **{on_ms:,.0f}** | {total(off, 'n_tokens'):,} | {total(off, 'cached'):,} "
        f"| **{off_ms:,.0f} ({on_ms / off_ms:.1f}× less)** |"
    )
    computed_on, computed_off = total(on, "computed"), total(off, "computed")
    lines.append("")
    lines.append(
        f"Prefilled: {computed_on:,} tokens with the line, {computed_off:,} without "
        f"({computed_on / computed_off:.1f}× fewer); prompt time {on_ms / 1000:,.1f} s vs "
        f"{off_ms / 1000:,.1f} s ({on_ms / off_ms:.1f}× less)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("on", help="`labkit probe ... --attribution on --json` output")
    parser.add_argument("off", help="`labkit probe ... --attribution off --json` output")
    parser.add_argument(
        "--simulate",
        nargs=2,
        metavar=("SIM_ON", "SIM_OFF"),
        help="`labkit simulate ... --replies ignored --json` outputs to compare with, on and off",
    )
    parser.add_argument("--hardware", help="the hardware line (default: this machine's)")
    args = parser.parse_args(argv)
    on, off = _load(args.on), _load(args.off)
    sims = [_load(p) for p in args.simulate] if args.simulate else [None, None]
    print(probe_table(on, off))
    print()
    print(f"Hardware: {args.hardware or hardware_line()}.")
    bad = [
        f"line {w}: {m}"
        for w, rows, sim in (("on", on, sims[0]), ("off", off, sims[1]))
        for m in mismatches(rows, sim)
    ]
    if bad:
        print("\n".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
