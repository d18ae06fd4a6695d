"""Time several callables in alternation, so that a busy machine slows them all alike."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Hashable

from labkit.timing import Timing, measure, spread


def measure_alternating(
    fns: dict[Hashable, Callable], *, rounds: int = 3, warmup: int = 1, device=None
) -> dict[Hashable, Timing]:
    """Run each callable once per round, in turn, for `rounds` rounds; return a Timing for each.

    Timing one callable's repeats back to back lets a burst of other work on the machine land on
    one of them only; alternating spreads every callable's runs over the whole measurement, so
    ratios of their times (and their minimums) stay comparable. `warmup` untimed rounds go first.
    """
    if rounds < 1 or warmup < 0:
        raise ValueError(f"Need rounds >= 1 and warmup >= 0, got rounds={rounds}, warmup={warmup}.")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            samples[key].append(measure(fn, warmup=0, repeats=1, device=device))
    timings = {}
    for key, runs in samples.items():
        times_s = [run.median_s for run in runs]
        peaks = [run.peak_memory_bytes for run in runs if run.peak_memory_bytes is not None]
        timings[key] = Timing(
            median_s=statistics.median(times_s),
            min_s=min(times_s),
            max_s=max(times_s),
            spread_s=spread(times_s),
            repeats=rounds,
            device=runs[0].device,
            device_name=runs[0].device_name,
            peak_memory_bytes=max(peaks) if peaks else None,
            times_s=tuple(times_s),
        )
    return timings
