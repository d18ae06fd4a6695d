"""Measure what reusing a cached prefix saves (cold vs warm time to first token), and decoding."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import torch

from labkit.cache import generate_greedy, prefill
from labkit.device import device_name
from labkit.prefix_cache import PrefixCache
from labkit.resources import data_path
from labkit.timing import measure_alternating

DEFAULT_PREFIX_LENS = (250, 500, 1000, 2000)
QUESTIONS = (
    "Why does my test pass locally but fail in CI?",
    "How do I profile the slowest function in this module?",
    "Can you explain what this regular expression matches?",
    "What is the safest way to rename a public function?",
    "Why is the second run of my script so much faster than the first?",
)


def system_prompt_text(num_copies: int = 1) -> str:
    """Return a coding agent's long system prompt (data/long_system_prompt.txt), repeated."""
    text = data_path("long_system_prompt.txt").read_text(encoding="utf-8").strip()
    parts = [text] + [
        f"Reminder {i}: the rules above still apply.\n{text}" for i in range(2, num_copies + 1)
    ]
    return "\n\n".join(parts)


def _chat_ids(tokenizer, role: str, content: str, generation_prompt: bool = False) -> list[int]:
    text = f"<|im_start|>{role}\n{content}<|im_end|>\n"
    text += "<|im_start|>assistant\n" if generation_prompt else ""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def prompt_ids(tokenizer, prefix_len: int, suffix_len: int, question: int = 0):
    """Return (prefix_ids, suffix_ids) of exactly prefix_len and suffix_len real-text tokens.

    The prefix is a system turn (repeated as needed), the suffix a user turn, both 1-D tensors
    in the ChatML layout SmolLM2 uses.
    """
    prefix: list[int] = []
    copies = 1
    while len(prefix) < prefix_len:
        prefix = _chat_ids(tokenizer, "system", system_prompt_text(copies))
        copies *= 2
    suffix: list[int] = []
    while len(suffix) < suffix_len:
        suffix += _chat_ids(tokenizer, "user", QUESTIONS[question % len(QUESTIONS)], True)
        question += 1
    return (
        torch.tensor(prefix[:prefix_len], dtype=torch.long),
        torch.tensor(suffix[:suffix_len], dtype=torch.long),
    )


@dataclass(frozen=True)
class BenchRow:
    """Cold vs warm time to first token for one prefix length (medians, in seconds)."""

    prefix_len: int
    suffix_len: int
    cold_ttft_s: float  # prefill prefix + suffix from nothing
    warm_ttft_s: float  # find the cached prefix, copy it, compute the suffix
    speedup: float  # cold_ttft_s / warm_ttft_s
    cold_spread_s: float
    warm_spread_s: float
    cold_min_s: float  # fastest runs: the least disturbed by other work on the machine
    warm_min_s: float
    repeats: int
    device_name: str


def prefix_reuse_sweep(
    model,
    tokenizer,
    prefix_lens=DEFAULT_PREFIX_LENS,
    suffix_len: int = 16,
    repeats: int = 5,
    warmup: int = 1,
) -> list[BenchRow]:
    """Measure cold and warm TTFT at each prefix length, in one run on the model's device.

    Warm means `PrefixCache.serve(..., store=False)` with the prefix stored: the lookup, the
    copy of the cached prefix and the suffix's forward pass are all timed. Cold and warm runs
    alternate (`labkit.timing.measure_alternating`), `repeats` of each after `warmup` rounds.
    """
    if suffix_len < 1 or min(prefix_lens) < 1:
        raise ValueError(
            f"Need prefix and suffix lengths >= 1 token, got prefix_lens="
            f"{list(prefix_lens)} and suffix_len={suffix_len}."
        )
    rows = []
    for prefix_len in prefix_lens:
        prefix, suffix = prompt_ids(tokenizer, prefix_len, suffix_len)
        ids = torch.cat([prefix, suffix])  # (prefix_len + suffix_len,)
        store = PrefixCache(model)
        store.insert(prefix, prefill(model, prefix, last_only=True)[1])
        served = store.serve(ids, store=False)
        if served.tokens_reused != prefix_len:
            raise RuntimeError(
                f"Expected to reuse {prefix_len} tokens, reused "
                f"{served.tokens_reused}: this is a bug in labkit."
            )
        # Cold and warm take turns, so a burst of other work on the machine hits both alike.
        timings = measure_alternating(
            {
                "cold": lambda ids=ids: prefill(model, ids, last_only=True),
                "warm": lambda ids=ids, store=store: store.serve(ids, store=False),
            },
            rounds=repeats,
            warmup=warmup,
            device=model.device,
        )
        cold, warm = timings["cold"], timings["warm"]
        rows.append(
            BenchRow(
                prefix_len,
                suffix_len,
                cold.median_s,
                warm.median_s,
                cold.median_s / warm.median_s,
                cold.spread_s,
                warm.spread_s,
                cold.min_s,
                warm.min_s,
                repeats,
                cold.device_name,
            )
        )
    return rows


def format_table(rows: list[BenchRow]) -> str:
    """Return the rows as a text table, with the hardware named above it."""
    lines = [
        f"Prefix reuse on {rows[0].device_name}, median of {rows[0].repeats} runs"
        if rows
        else "No rows.",
        f"{'prefix_len':>10} {'suffix_len':>10} {'cold TTFT ms':>13} {'warm TTFT ms':>13} "
        f"{'speedup':>8}",
    ]
    for row in rows:
        lines.append(
            f"{row.prefix_len:>10} {row.suffix_len:>10} {row.cold_ttft_s * 1e3:>13.1f} "
            f"{row.warm_ttft_s * 1e3:>13.1f} {row.speedup:>7.1f}x"
        )
    return "\n".join(lines)


def estimate_ttft_s(rows: list[BenchRow], prefix_len: int, suffix_len: int) -> tuple[float, float]:
    """Return (cold, warm) TTFT estimated from a sweep for any prefix and suffix length.

    Cold interpolates the measured cold times over total length. Warm is the measured warm time
    at this prefix length plus what the extra suffix tokens cost on the cold curve there.
    """
    rows = sorted(rows, key=lambda r: r.prefix_len)
    totals = np.array([r.prefix_len + r.suffix_len for r in rows], dtype=float)
    prefixes = np.array([r.prefix_len for r in rows], dtype=float)
    cold = np.array([r.cold_ttft_s for r in rows])
    warm = np.array([r.warm_ttft_s for r in rows])

    def interp(x, xs, ys):  # linear, and extended linearly past both ends
        if len(xs) == 1 or xs[0] <= x <= xs[-1]:
            return float(np.interp(x, xs, ys))
        i = 0 if x < xs[0] else len(xs) - 2
        slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
        return max(float(ys[i] + slope * (x - xs[i])), 0.0)

    cold_s = interp(prefix_len + suffix_len, totals, cold)
    measured_suffix = rows[0].suffix_len
    warm_at_prefix_s = interp(prefix_len, prefixes, warm)
    extra_s = cold_s - interp(prefix_len + measured_suffix, totals, cold)
    floor_s = warm_at_prefix_s * min(1.0, suffix_len / measured_suffix)  # fewer tokens: cheaper
    return cold_s, min(max(warm_at_prefix_s + extra_s, floor_s), cold_s)


@dataclass(frozen=True)
class DecodeRun:
    """Greedy decoding timed token by token, with or without the cache."""

    token_ids: list[int]
    step_s: list[float]  # seconds for each new token (the first includes the prompt)
    tokens_computed: list[int]  # positions the model computed for each new token
    use_cache: bool
    device_name: str

    @property
    def tokens_per_sec(self) -> float:
        """Return new tokens per second over the whole run."""
        return len(self.token_ids) / sum(self.step_s)


def decode_run(model, input_ids, max_new_tokens: int, *, use_cache: bool) -> DecodeRun:
    """Generate greedily and time each new token."""
    step_s: list[float] = []
    token_ids = generate_greedy(
        model, input_ids, max_new_tokens, use_cache=use_cache, step_s=step_s
    )
    prompt_len = torch.as_tensor(input_ids).shape[-1]
    computed = [prompt_len + i if (i == 0 or not use_cache) else 1 for i in range(max_new_tokens)]
    return DecodeRun(token_ids, step_s, computed, use_cache, device_name(model.device))


def _cmd_bench(args) -> int:
    from labkit.models import load_model

    prefix_lens = [int(n) for n in str(args.prefix_lens).split(",") if n.strip()]
    model, tokenizer = load_model(args.model)
    rows = prefix_reuse_sweep(model, tokenizer, prefix_lens, args.suffix_len, args.repeats)
    print(json.dumps([asdict(r) for r in rows], indent=2) if args.json else format_table(rows))
    return 0


def add_cli(subparsers) -> None:
    """Register the `bench` subcommand on an argparse subparsers object."""
    bench = subparsers.add_parser("bench", help="time cold vs warm TTFT over prefix lengths")
    bench.add_argument(
        "--prefix-lens",
        default=",".join(map(str, DEFAULT_PREFIX_LENS)),
        help="comma-separated prefix lengths in tokens (default: %(default)s)",
    )
    bench.add_argument(
        "--suffix-len",
        type=int,
        default=16,
        help="new tokens after the prefix (default: %(default)s)",
    )
    bench.add_argument("--repeats", type=int, default=5, help="timed runs per point")
    bench.add_argument("--model", default=None, help="model name (default: labkit's default)")
    bench.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    bench.set_defaults(func=_cmd_bench)
