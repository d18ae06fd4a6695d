"""Model an Anthropic-style prompt cache (`cache_control` breakpoints) on token ids.

This is a prompt cache that sees every token of the request, the attribution line included: what
a third-party gateway or proxy that caches Anthropic-style requests does with it. Anthropic's own
API handles the attribution line apart from the prompt, so the line does not break its prompt
cache; this model is the gateway case. Its prefix order is the API's, tools -> system ->
messages: give it requests through `labkit.engines.replies.api_view` (the session helpers do).

Defaults come from `data/prompt_caching_apis.json`, a dated snapshot of the vendors' docs:
check the live prompt-caching and pricing pages before quoting a figure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from labkit.engines.base import ServeResult, as_tokens, token_bytes
from labkit.resources import data_path

USAGE_FIELDS = ("cache_read_input_tokens", "cache_creation_input_tokens", "input_tokens")


def load_prompt_caching_apis(path: Path | str | None = None) -> dict:
    """Return the hosted-API prompt-caching figures, each with its `as_of` date and `source`."""
    path = data_path("prompt_caching_apis.json") if path is None else Path(path)
    return json.loads(path.read_text(encoding="utf-8"))


def prefix_digests(tokens: Sequence[int], lengths: set[int]) -> dict[int, bytes]:
    """Return a SHA-256 digest of tokens[:length] for each requested length."""
    digests, hasher, start = {}, hashlib.sha256(), 0
    for length in sorted(lengths):
        hasher.update(token_bytes(tokens[start:length]))
        digests[length], start = hasher.copy().digest(), length
    return digests


class AnthropicAPI:
    """Anthropic-style prompt caching: `cache_control` breakpoints, exact-prefix entries, a TTL.

    The tokens are the whole request as the cache sees it, in tools -> system -> messages order.

    - `breakpoints` are prefix lengths where a `cache_control` block ends (at most
      `max_breakpoints`); None is automatic caching (one breakpoint at the end of the prompt),
      an empty list is no caching.
    - An entry is the exact prefix up to a breakpoint, written with expiry `t_s + ttl_s`; a hit
      refreshes it. Prefixes shorter than `min_cacheable_tokens` are never cached. With `t_s`
      None the clock advances 1 s per request.
    - Reuse (`cache_read_input_tokens`): the longest live entry found looking back from any
      breakpoint. `cache_creation_input_tokens`: from there to the last cacheable breakpoint.
      `input_tokens`: the rest. There is no at-least-one-token rule: an exact repeat reads all.
    Simplified: the API looks back at most 20 content blocks from each breakpoint. We have
    tokens, not blocks, so the "blocks" we count are the positions where an earlier request wrote
    an entry that is a prefix of this prompt (live or expired): at most `lookback_blocks` of them
    are checked per breakpoint. Entries are never evicted early, there is no per-organization
    isolation. For the 1-hour TTL pass `ttl_s=3600`: any `ttl_s` above 300 is priced as a 1-hour
    write (2.0x) unless `write_multiplier` is given.
    """

    name = "anthropic"
    label = "Anthropic-style cache via a gateway"  # what a learner reads (widgets, figures)

    def __init__(
        self,
        ttl_s: float | None = None,
        min_cacheable_tokens: int | None = None,
        write_multiplier: float | None = None,
        read_multiplier: float | None = None,
        max_breakpoints: int | None = None,
        lookback_blocks: int | None = None,
    ):
        figures = load_prompt_caching_apis()["anthropic"]
        self.ttl_s = float(figures["ttl_s"]["5m"] if ttl_s is None else ttl_s)
        ttl_name = "1h" if self.ttl_s > figures["ttl_s"]["5m"] else "5m"
        self.min_cacheable_tokens = (
            figures["default_min_cacheable_tokens"]
            if min_cacheable_tokens is None
            else min_cacheable_tokens
        )
        self.write_multiplier = (
            figures["write_multiplier"][ttl_name] if write_multiplier is None else write_multiplier
        )
        self.read_multiplier = (
            figures["read_multiplier"] if read_multiplier is None else read_multiplier
        )
        self.max_breakpoints = (
            figures["max_breakpoints"] if max_breakpoints is None else max_breakpoints
        )
        self.lookback_blocks = (
            figures["lookback_blocks"] if lookback_blocks is None else lookback_blocks
        )
        if self.ttl_s <= 0 or self.lookback_blocks < 1 or self.max_breakpoints < 1:
            raise ValueError("ttl_s, lookback_blocks and max_breakpoints must be positive.")
        self.reset()

    def reset(self) -> None:
        """Drop every cache entry and restart the clock."""
        self.entries: dict[tuple[int, bytes], float] = {}  # (prefix length, digest) -> expiry
        self._lengths: set[int] = set()
        self._last_t_s = -1.0

    def serve(
        self,
        tokens: Sequence[int],
        *,
        breakpoints: Sequence[int] | None = None,
        t_s: float | None = None,
        generated: Sequence[int] = (),
    ) -> ServeResult:
        """Serve one request at time `t_s` (seconds) with `cache_control` at `breakpoints`.

        `generated` is ignored: a reply is cached only when a later request carries it.
        """
        tokens = as_tokens(tokens)
        n = len(tokens)
        now_s = self._last_t_s + 1.0 if t_s is None else float(t_s)
        self._last_t_s = now_s
        cacheable = [
            b for b in self._check_breakpoints(breakpoints, n) if b >= self.min_cacheable_tokens
        ]
        top = max(cacheable, default=0)
        digests = prefix_digests(tokens, set(cacheable) | {x for x in self._lengths if x <= top})
        read = max((self._lookback(b, digests, now_s) for b in cacheable), default=0)
        if read:
            self.entries[(read, digests[read])] = now_s + self.ttl_s  # a hit refreshes the TTL
        for b in cacheable:
            if b > read:
                self.entries[(b, digests[b])] = now_s + self.ttl_s
                self._lengths.add(b)
        creation = max(0, top - read)
        detail = {
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": creation,
            "input_tokens": n - read - creation,
            "t_s": now_s,
        }
        return ServeResult(n, read, n - read, detail)

    def cost_usd(self, result: ServeResult, base_input_usd_per_mtok: float) -> float:
        """Return the input cost of a request: writes and reads priced with the multipliers."""
        if not all(name in result.detail for name in USAGE_FIELDS):
            raise ValueError(
                "cost_usd needs a result from AnthropicAPI.serve (with "
                f"{', '.join(USAGE_FIELDS)} in its detail)."
            )
        usage = result.detail
        weighted = (
            usage["input_tokens"]
            + self.write_multiplier * usage["cache_creation_input_tokens"]
            + self.read_multiplier * usage["cache_read_input_tokens"]
        )
        return weighted * base_input_usd_per_mtok / 1e6

    def _check_breakpoints(self, breakpoints: Sequence[int] | None, n: int) -> list[int]:
        if breakpoints is None:
            return [n]
        points = sorted({int(b) for b in breakpoints})
        if len(points) > self.max_breakpoints:
            raise ValueError(
                f"{len(points)} cache_control breakpoints given; the API accepts at "
                f"most {self.max_breakpoints}: keep e.g. the end of the system "
                "prompt and the end of the conversation."
            )
        if points and (points[0] < 1 or points[-1] > n):
            raise ValueError(
                f"Breakpoints are prefix lengths from 1 to the prompt length {n}; got {points}."
            )
        return points

    def _lookback(self, breakpoint: int, digests: dict[int, bytes], now_s: float) -> int:
        checked = 0
        for length in sorted((x for x in self._lengths if x <= breakpoint), reverse=True):
            expiry = self.entries.get((length, digests[length]))
            if expiry is None:
                continue  # no earlier request wrote this prefix: not a block boundary we know
            if expiry > now_s:
                return length
            checked += 1
            if checked >= self.lookback_blocks:
                break
        return 0
