"""Score selective recompute (`labkit.experiments.blend`) against a full recompute, per fraction.

`blend_sweep` reuses request k's cache for request k+1 with a fraction f of positions
recomputed (chosen by K/V deviation, or at random as the control) and scores each blend's
next-token predictions against the full computation (`next_token_divergence`); `sweep_rows`
gives one row per f: the compute saved and each selection's KL and top-1 agreement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from labkit.cache import as_token_ids, extend, generate_greedy, prefill
from labkit.experiments.blend import SELECTIONS, BlendCost, blend_cache, blend_cost
from labkit.experiments.stale_cache import Divergence, next_token_divergence

__all__ = ["BlendPoint", "SweepRow", "blend_sweep", "sweep_rows"]


@dataclass(frozen=True)
class BlendPoint:
    """The quality of one selective recompute, against a full recompute of the request."""

    fraction: float
    selection: str
    seed: int
    cost: BlendCost
    divergence: Divergence  # next-token predictions of the new turn and the generated tokens


def blend_sweep(
    model,
    before_ids,
    after_ids,
    fractions,
    *,
    selections=SELECTIONS,
    seeds=(0,),
    max_new_tokens: int = 0,
    check_layer: int = 1,
) -> list[BlendPoint]:
    """Reuse request k's cache for request k+1 with each fraction recomputed; score each.

    Request k+1 must have request k's token count up to the new turn (a same-length edit). The
    reference is the full computation of request k+1 and its greedy continuation; every blend
    then computes the new turn and the reference's generated tokens (teacher-forced) on top, and
    is scored position by position with `next_token_divergence`. Random selection runs once
    per seed; deviation selection is deterministic and runs once.
    """
    before, after = as_token_ids(before_ids), as_token_ids(after_ids)
    reuse_len = len(before)
    if len(after) <= reuse_len:
        raise ValueError(
            f"Request k+1 ({len(after)} tokens) must be longer than request k ({reuse_len}): it "
            "appends a turn."
        )
    generated = generate_greedy(model, after, max_new_tokens) if max_new_tokens else []
    full_ids = torch.cat([after, torch.tensor(generated[:-1], dtype=torch.long)])
    ref_logits, _ = prefill(model, full_ids)
    ref = ref_logits[:, reuse_len:]  # predictions of the new turn and the generated tokens
    _, stale = prefill(model, before)
    points = []
    for fraction in fractions:
        for selection in selections:
            if fraction == 0 and selection != selections[0]:
                continue  # fraction 0 reuses the cache as it is, whatever the selection
            for seed in seeds if selection == "random" and fraction > 0 else seeds[:1]:
                cache, _ = blend_cache(
                    model,
                    stale,
                    after[:reuse_len],
                    fraction,
                    selection=selection,
                    check_layer=check_layer,
                    seed=seed,
                )
                logits, _ = extend(model, cache, full_ids[reuse_len:])
                cost = blend_cost(reuse_len, len(cache.layers), fraction, check_layer)
                div = next_token_divergence(ref, logits)
                points.append(BlendPoint(float(fraction), selection, seed, cost, div))
    return points


@dataclass(frozen=True)
class SweepRow:
    """One fraction of a `blend_sweep`: the cost, and each selection's quality (random: mean)."""

    fraction: float
    recomputed: int  # positions carried through every layer after the check layer
    compute_saved: float  # share of a full recompute's token-layers saved
    kl_deviation: float  # mean KL(full || blend) over the scored positions, in nats
    kl_random: float  # the same with random positions, mean over the seeds
    top1_deviation: float  # share of scored positions whose most likely token is unchanged
    top1_random: float


def sweep_rows(points: list[BlendPoint]) -> list[SweepRow]:
    """Return one row per fraction, in increasing order, from the points of a `blend_sweep`."""
    rows = []
    for fraction in sorted({p.fraction for p in points}):
        at = [p for p in points if p.fraction == fraction]
        by = {s: [p for p in at if p.selection == s] for s in SELECTIONS}
        by["random"] = by["random"] or by["deviation"]  # fraction 0: both are the cache as it is
        by["deviation"] = by["deviation"] or by["random"]

        def mean(selection: str, field: str, by=by) -> float:
            return float(np.mean([getattr(p.divergence, field) for p in by[selection]]))

        cost = at[0].cost
        rows.append(
            SweepRow(
                fraction=fraction,
                recomputed=cost.recomputed,
                compute_saved=cost.compute_saved,
                kl_deviation=mean("deviation", "kl_mean"),
                kl_random=mean("random", "kl_mean"),
                top1_deviation=mean("deviation", "top1_agreement"),
                top1_random=mean("random", "top1_agreement"),
            )
        )
    return rows
