"""Time callables with warm-up and repeats (CUDA events on a GPU, perf_counter elsewhere), alone or
in alternation so that a busy machine slows them all alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

from labkit.device import device_name, pick_device, synchronize


@dataclass(frozen=True)
class Timing:
    """Repeated timings of one callable, in seconds, with the hardware they ran on."""

    median_s: float
    min_s: float
    max_s: float
    spread_s: float  # interquartile range (max - min when fewer than 4 repeats)
    repeats: int
    device: str  # "cuda", "mps" or "cpu"
    device_name: str
    peak_memory_bytes: int | None  # peak allocated on the device during the runs (CUDA only)
    times_s: tuple[float, ...]

    def __str__(self) -> str:
        return (
            f"{self.median_s * 1e3:.1f} ms median of {self.repeats} "
            f"(min {self.min_s * 1e3:.1f}, max {self.max_s * 1e3:.1f}) on {self.device_name}"
        )


def spread(times_s: list[float]) -> float:
    """Return the interquartile range of the times (max - min for fewer than 4)."""
    if len(times_s) < 4:
        return max(times_s) - min(times_s)
    q1, _, q3 = statistics.quantiles(times_s, n=4)
    return q3 - q1


def measure(
    fn: Callable,
    *,
    setup: Callable | None = None,
    warmup: int = 1,
    repeats: int = 5,
    device=None,
) -> Timing:
    """Run `fn` warmup + repeats times and return its Timing.

    If `setup` is given, its result is passed to `fn` and its own time is not counted
    (use it to copy a cache before each warm request, for example).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(
            f"Need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}."
        )
    device = pick_device(device)

    def run_once() -> float:
        arg = setup() if setup is not None else None
        synchronize(device)
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(arg) if setup is not None else fn()
            end.record()
            torch.cuda.synchronize(device)
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        fn(arg) if setup is not None else fn()
        synchronize(device)
        return time.perf_counter() - t0

    for _ in range(warmup):
        run_once()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times_s = [run_once() for _ in range(repeats)]
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return Timing(
        median_s=statistics.median(times_s),
        min_s=min(times_s),
        max_s=max(times_s),
        spread_s=spread(times_s),
        repeats=repeats,
        device=device.type,
        device_name=device_name(device),
        peak_memory_bytes=peak,
        times_s=tuple(times_s),
    )


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
