"""Reuse a stale KV cache on purpose, and measure how far its next-token predictions drift.

transformers does not check that a cache was computed from the tokens in front of the new ones:
hand it the cache of an *older* request and it continues from it silently. These helpers run
that bug under control and compare it with the correct computation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from labkit.cache import as_token_ids, copy_cache, extend, prefill


@dataclass(frozen=True)
class Divergence:
    """How far test next-token distributions are from reference ones, position by position."""

    kl_per_position: np.ndarray  # (num_positions,) KL(ref || test) in nats
    top1_ref: np.ndarray  # (num_positions,) argmax token id of the reference
    top1_test: np.ndarray  # (num_positions,) argmax token id of the test

    @property
    def kl_mean(self) -> float:
        """Return the mean KL divergence over positions, in nats."""
        return float(self.kl_per_position.mean())

    @property
    def kl_max(self) -> float:
        """Return the largest KL divergence over positions, in nats."""
        return float(self.kl_per_position.max())

    @property
    def top1_agreement(self) -> float:
        """Return the fraction of positions where both pick the same most likely token."""
        return float((self.top1_ref == self.top1_test).mean())


def _as_positions(logits) -> torch.Tensor:
    logits = torch.as_tensor(logits)
    if logits.dim() == 3:  # (batch 1, num_positions, vocab_size)
        if logits.shape[0] != 1:
            raise ValueError(f"Expected one sequence of logits, got batch {logits.shape[0]}.")
        logits = logits[0]
    if logits.dim() == 1:
        logits = logits[None]
    return logits.double().cpu()  # (num_positions, vocab_size)


def next_token_divergence(logits_ref, logits_test) -> Divergence:
    """Return KL(softmax(ref) || softmax(test)) and top-1 agreement at each position.

    logits: (num_positions, vocab_size) or (1, num_positions, vocab_size); computed in float64.
    """
    ref, test = _as_positions(logits_ref), _as_positions(logits_test)
    if ref.shape != test.shape:
        raise ValueError(
            f"Logits of shapes {tuple(ref.shape)} and {tuple(test.shape)} cannot be compared: "
            "pass the same positions of the same vocabulary."
        )
    log_p, log_q = torch.log_softmax(ref, dim=-1), torch.log_softmax(test, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1).clamp_min(0.0)
    return Divergence(kl.numpy(), ref.argmax(-1).numpy(), test.argmax(-1).numpy())


@dataclass(frozen=True)
class StaleCacheResult:
    """The edited request continued from a stale cache, and from a correct one, vs full compute.

    Divergences cover the suffix positions, then the generated ones (teacher-forced with the
    reference's greedy tokens): kl_per_position[:suffix_len] is the suffix.
    """

    reuse_len: int  # cached positions reused (stale: from the original; fresh: from the edit)
    suffix_len: int  # positions of the edited request computed on top of the cache
    stale: Divergence  # stale cache + continuation vs full computation of the edited request
    fresh: Divergence  # the edited request's own cache + continuation vs full computation
    reference_ids: list[int]  # greedy tokens from the full computation
    stale_ids: list[int]  # greedy tokens generated freely from the stale cache

    @property
    def generated_agreement(self) -> float:
        """Return the fraction of generated positions where both greedy tokens are equal."""
        if not self.reference_ids:
            return 1.0
        same = [a == b for a, b in zip(self.reference_ids, self.stale_ids, strict=True)]
        return float(np.mean(same))


def _greedy(model, cache, last_logits, max_new_tokens: int) -> list[int]:
    """Return max_new_tokens greedy ids continuing from the cache (extended in place)."""
    new_ids: list[int] = []
    logits = last_logits  # (1, 1, vocab_size)
    for step in range(max_new_tokens):
        new_ids.append(int(logits[0, -1].argmax()))
        if step + 1 < max_new_tokens:
            logits, cache = extend(model, cache, new_ids[-1:], last_only=True)
    return new_ids


def stale_cache_experiment(
    model, original_ids, edited_ids, *, reuse_len: int | None = None, max_new_tokens: int = 0
) -> StaleCacheResult:
    """Continue the edited request from the original's cache (the bug) and compare with truth.

    The original request is prefilled and its first reuse_len positions (default: all of them,
    or len(edited) - 1 if shorter) are reused as if they held the edited request's tokens; the
    edited request's positions reuse_len.. are computed on top: what an engine that skips the
    prefix check does. The reference is the full computation of the edited request followed by
    max_new_tokens greedy tokens. The stale path and a correct one (the edited request's own
    cache cropped to reuse_len) are teacher-forced along the same tokens and compared with it;
    the stale path also generates its own greedy tokens freely.
    """
    original, edited = as_token_ids(original_ids), as_token_ids(edited_ids)
    longest = min(len(original), len(edited) - 1)
    reuse_len = longest if reuse_len is None else reuse_len
    if not 0 < reuse_len <= longest:
        raise ValueError(
            f"reuse_len must be in 1..{longest} (the original has {len(original)} tokens, the "
            f"edited request {len(edited)}), got {reuse_len}."
        )
    suffix = edited[reuse_len:]
    ref_logits, ref_cache = prefill(model, edited)  # (1, seq_len, vocab_size)
    reference_ids = _greedy(model, copy_cache(ref_cache), ref_logits[:, -1:], max_new_tokens)
    generated = torch.tensor(reference_ids[:-1], dtype=torch.long)  # teacher-forced on all paths
    _, original_cache = prefill(model, original, last_only=True)
    stale_cache = copy_cache(original_cache, reuse_len)
    fresh_cache = copy_cache(ref_cache, reuse_len)
    # Logits of the suffix positions, then of the generated ones: (1, num_positions, vocab_size)
    logits = {"ref": [ref_logits[:, reuse_len:]], "stale": [], "fresh": []}
    for name, cache in (("stale", stale_cache), ("fresh", fresh_cache)):
        logits[name].append(extend(model, cache, suffix)[0])
    stale_ids = _greedy(model, copy_cache(stale_cache), logits["stale"][0][:, -1:], max_new_tokens)
    if len(generated):
        for name, cache in (("ref", ref_cache), ("stale", stale_cache), ("fresh", fresh_cache)):
            logits[name].append(extend(model, cache, generated)[0])
    ref, stale, fresh = (torch.cat(logits[name], dim=1) for name in ("ref", "stale", "fresh"))
    return StaleCacheResult(
        reuse_len=reuse_len,
        suffix_len=len(suffix),
        stale=next_token_divergence(ref, stale),
        fresh=next_token_divergence(ref, fresh),
        reference_ids=reference_ids,
        stale_ids=stale_ids,
    )
