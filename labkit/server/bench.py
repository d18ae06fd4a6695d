"""Prefill speed of the same prompt in transformers and in llama-server, on this machine.

The server's side is its own `timings.prompt_ms` for a cold prompt (`cache_prompt: false`, so the
slot's cache is not reused), the transformers side `labkit.cache.prefill` timed by
`labkit.timing.measure`: both prefill exactly the same token ids, and the medians are compared.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from labkit.cache import prefill
from labkit.device import device_name
from labkit.experiments.bench import prompt_ids
from labkit.server.probe import ProbeError, http_json
from labkit.server.responses import parse_llamacpp
from labkit.timing import measure

__all__ = ["PrefillRow", "format_prefill_table", "prefill_compare", "server_prefill_ms"]


@dataclass(frozen=True)
class PrefillRow:
    """Prefill of one prompt: transformers vs llama-server, medians."""

    n_tokens: int
    transformers_ms: float
    server_ms: float
    transformers_tokens_per_sec: float
    server_tokens_per_sec: float
    repeats: int
    device_name: str


def server_prefill_ms(url: str, tokens: Sequence[int], timeout_s: float = 300.0) -> float:
    """Return llama-server's own prefill time (ms) for the whole prompt, reusing nothing."""
    body = {"prompt": list(tokens), "n_predict": 1, "cache_prompt": False, "temperature": 0}
    status, answer = http_json(f"{url.rstrip('/')}/completion", body, timeout_s)
    if status != 200:
        raise ProbeError(f"{url}/completion answered HTTP {status}: {answer}")
    report = parse_llamacpp(answer)
    if report.cached != 0 or report.n_prompt != len(tokens) or report.prompt_ms is None:
        raise ProbeError(
            f"Expected a cold prefill of {len(tokens)} tokens, the server reports "
            f"{report.cached} cached of {report.n_prompt}: is this llama.cpp?"
        )
    return report.prompt_ms


def prefill_compare(
    model, tokenizer, url: str, lengths: Sequence[int] = (512, 2048), repeats: int = 3
) -> list[PrefillRow]:
    """Time the prefill of the same prompts in transformers and on the server at `url`."""
    rows = []
    for n_tokens in lengths:
        prefix, suffix = prompt_ids(tokenizer, n_tokens - 16, 16)
        ids = [*prefix.tolist(), *suffix.tolist()]
        tensor = torch.tensor(ids, dtype=torch.long)
        local = measure(lambda t=tensor: prefill(model, t, last_only=True), repeats=repeats)
        server_prefill_ms(url, ids)  # warm-up, as measure() does
        server_ms = statistics.median(server_prefill_ms(url, ids) for _ in range(repeats))
        rows.append(
            PrefillRow(
                n_tokens,
                local.median_s * 1e3,
                server_ms,
                n_tokens / local.median_s,
                n_tokens / (server_ms / 1e3),
                repeats,
                device_name(model.device),
            )
        )
    return rows


def format_prefill_table(rows: Sequence[PrefillRow]) -> str:
    """Return the rows as a text table, with the hardware named above it."""
    lines = [
        f"Prefill of the same prompt on {rows[0].device_name}, median of {rows[0].repeats} runs",
        f"{'n_tokens':>8} {'transformers ms':>16} {'llama-server ms':>16} "
        f"{'transformers tok/s':>19} {'llama-server tok/s':>19}",
    ]
    for r in rows:
        lines.append(
            f"{r.n_tokens:>8} {r.transformers_ms:>16.1f} {r.server_ms:>16.1f} "
            f"{r.transformers_tokens_per_sec:>19.0f} {r.server_tokens_per_sec:>19.0f}"
        )
    return "\n".join(lines)
