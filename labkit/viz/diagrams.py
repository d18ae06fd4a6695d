"""Concept diagrams drawn from labkit's own models: the dependency cone, vLLM's hash chain,
SGLang's radix tree and llama.cpp's slots. Plain data in, a plotly Figure out; no image files.

Reused vs recomputed is told apart by colour (Okabe–Ito blue and vermillion, safe for
colour-blind readers) and by a second cue: a marker shape, a hatch pattern or a text label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from labkit.engines import LlamaCppServer, SGLangRadixCache, block_hashes
from labkit.viz.palette import CACHED, COMPUTED, COMPUTED_STYLE, NEUTRALS

REUSED, RECOMPUTED, NEUTRAL = CACHED, COMPUTED, NEUTRALS["grey"]  # labkit.viz.palette
RECOMPUTED_PATTERN = COMPUTED_STYLE["pattern"]  # hatch on whatever must be recomputed


def dependency_cone(num_layers: int, seq_len: int, position: int) -> np.ndarray:
    """Return which cached K/V change when token `position` changes: (num_layers, seq_len) bool.

    Layer 0's keys and values at position i depend on token i alone (and its position); from
    layer 1 on they depend, through attention, on every token at or before i.
    """
    if not 0 <= position < seq_len:
        raise ValueError(f"position {position} is outside a {seq_len}-token prompt")
    changed = np.zeros((num_layers, seq_len), dtype=bool)
    changed[0, position] = True
    changed[1:, position:] = True
    return changed


def dependency_cone_figure(num_layers: int = 5, seq_len: int = 14, position: int = 4) -> go.Figure:
    """Return the cone: which positions of which layers change when one token changes."""
    changed = dependency_cone(num_layers, seq_len, position)
    fig = go.Figure()
    for flag, name, color, symbol in (
        (False, "unchanged: reusable", REUSED, "circle"),
        (True, "changed: recompute", RECOMPUTED, "x"),
    ):
        layers, positions = np.nonzero(changed == flag)
        fig.add_trace(
            go.Scatter(
                x=positions,
                y=layers,
                mode="markers",
                name=name,
                marker={"color": color, "symbol": symbol, "size": 16, "line": {"width": 1}},
            )
        )
    for layer in range(num_layers - 1):  # attention carries the change up and to the right
        for target in (position, position + 3, seq_len - 1):
            if target < seq_len:
                fig.add_annotation(
                    x=target,
                    y=layer + 1,
                    ax=position,
                    ay=layer,
                    xref="x",
                    yref="y",
                    axref="x",
                    ayref="y",
                    showarrow=True,
                    arrowhead=2,
                    arrowcolor=NEUTRAL,
                    opacity=0.6,
                    text="",
                )
    fig.update_layout(
        title=f"One token changed at position {position}: what an exact cache must recompute",
        xaxis={"title": "position (token index)", "dtick": 1},
        yaxis={"title": "layer", "dtick": 1},
        height=360,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def block_chain_figure(
    requests: Sequence[Sequence[int]],
    block_size: int,
    labels: Sequence[str] | None = None,
    max_blocks: int = 8,
) -> go.Figure:
    """Return vLLM's chained block hashes of each request: a block is reused if its hash is known.

    Each full block's hash covers its tokens and its parent's hash, so one changed token changes
    its block's hash and every hash after it (labkit.engines.block_hashes).
    """
    labels = list(labels or [f"request {k}" for k in range(len(requests))])
    known: set[bytes] = set()
    fig = go.Figure()
    for row, (tokens, label) in enumerate(zip(requests, labels, strict=True)):
        hashes = block_hashes(tokens, block_size)[:max_blocks]
        reused = [h in known for h in hashes]
        known.update(block_hashes(tokens, block_size))
        for flag, name, color in (
            (True, "hash known: reused", REUSED),
            (False, "new hash: recompute", RECOMPUTED),
        ):
            idx = [i for i, r in enumerate(reused) if r == flag]
            fig.add_trace(
                go.Bar(
                    x=[0.9] * len(idx),
                    base=idx,
                    y=[label] * len(idx),
                    orientation="h",
                    name=name,
                    legendgroup=name,
                    showlegend=row == 0,
                    marker={
                        "color": color,
                        "pattern": {"shape": "" if flag else RECOMPUTED_PATTERN},
                    },
                    text=[f"#{hashes[i].hex()[:6]}" + (" ✓" if flag else " ✗") for i in idx],
                    textposition="inside",
                    insidetextanchor="middle",
                )
            )
    fig.update_layout(
        title=f"vLLM: chained hashes of {block_size}-token blocks (first {max_blocks} shown)",
        xaxis={
            "title": f"block (each {block_size} tokens); a hash covers its parent's hash",
            "dtick": 1,
        },
        yaxis={"autorange": "reversed"},
        barmode="overlay",
        height=140 + 70 * len(requests),
        legend={"orientation": "h", "y": -0.35},
    )
    return fig


def _tree_layout(root) -> list[tuple]:
    """Return (node, depth, x, parent) for every node below `root`, leaves spread on x."""
    out, next_x = [], [0]

    def visit(node, depth, parent):
        kids = list(node.children.values())
        xs = [visit(kid, depth + 1, node) for kid in kids]
        x = sum(xs) / len(xs) if xs else next_x[0]
        if not xs:
            next_x[0] += 1
        out.append((node, depth, x, parent))
        return x

    visit(root, 0, None)
    return out


def radix_tree_figure(
    requests: Sequence[Sequence[int]], labels: Sequence[str] | None = None
) -> go.Figure:
    """Return the radix tree SGLang builds from these requests, each node labelled in tokens."""
    labels = list(labels or [f"request {k}" for k in range(len(requests))])
    cache = SGLangRadixCache()
    for tokens in requests:
        cache.serve(tokens)
    nodes = _tree_layout(cache.root)
    where = {id(node): (x, -depth) for node, depth, x, _ in nodes}
    fig = go.Figure()
    for node, _, _, parent in nodes:
        if parent is not None:
            (x0, y0), (x1, y1) = where[id(parent)], where[id(node)]
            fig.add_trace(
                go.Scatter(
                    x=[x0, x1],
                    y=[y0, y1],
                    mode="lines",
                    showlegend=False,
                    line={"color": NEUTRAL},
                    hoverinfo="skip",
                )
            )
    shared = [n for n, _, _, p in nodes if p is not None and n.children]
    leaves = [n for n, _, _, p in nodes if p is not None and not n.children]
    for group, name, color, symbol in (
        (shared, "shared prefix (reused)", REUSED, "circle"),
        (leaves, "one request's own tail", RECOMPUTED, "square"),
    ):
        fig.add_trace(
            go.Scatter(
                x=[where[id(n)][0] for n in group],
                y=[where[id(n)][1] for n in group],
                mode="markers+text",
                name=name,
                textposition="middle right",
                text=[f"{len(n.key):,} tokens" for n in group],
                marker={"color": color, "symbol": symbol, "size": 18},
            )
        )
    root_x, _ = where[id(cache.root)]
    fig.add_trace(
        go.Scatter(
            x=[root_x],
            y=[0],
            mode="markers+text",
            text=["root"],
            showlegend=False,
            textposition="top center",
            marker={"color": NEUTRAL, "size": 12},
        )
    )
    fig.update_layout(
        title=f"SGLang: the radix tree after {len(requests)} requests ({', '.join(labels)})",
        xaxis={"visible": False},
        yaxis={"title": "depth", "dtick": 1},
        height=380,
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def slots_figure(
    requests: Sequence[Sequence[int]],
    labels: Sequence[str] | None = None,
    n_slots: int = 1,
    cache_ram: bool = True,
) -> go.Figure:
    """Return how llama-server serves these requests: slot used, tokens reused and prefilled."""
    labels = list(labels or [f"request {k}" for k in range(len(requests))])
    server = LlamaCppServer(n_slots=n_slots, cache_ram=cache_ram)
    results = [server.serve(tokens) for tokens in requests]
    fig = go.Figure()
    for key, name, color, pattern in (
        ("cached", "cache_n: reused", REUSED, ""),
        ("computed", "prompt_n: prefilled", RECOMPUTED, RECOMPUTED_PATTERN),
    ):
        fig.add_trace(
            go.Bar(
                x=[getattr(r, key) for r in results],
                y=labels,
                orientation="h",
                name=name,
                marker={"color": color, "pattern": {"shape": pattern}},
            )
        )
    for label, r in zip(labels, results, strict=True):
        ram = f", RAM cache restored {r.detail['n_restored']:,}" if r.detail["n_restored"] else ""
        fig.add_annotation(
            x=r.n_tokens,
            y=label,
            text=f" slot {r.detail['slot']}{ram}",
            showarrow=False,
            xanchor="left",
        )
    ram_note = "with" if cache_ram else "without"
    fig.update_layout(
        title=f"llama.cpp: {n_slots} slot(s), {ram_note} the RAM prompt cache",
        xaxis={"title": "prompt tokens"},
        yaxis={"autorange": "reversed"},
        barmode="stack",
        height=140 + 40 * len(requests),
        legend={"orientation": "h", "y": -0.3},
    )
    return fig
