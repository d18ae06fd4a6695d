"""Plot what one changed token costs: a token strip, a layer × position heatmap, time vs position.

Each helper takes plain data (lists, arrays, numbers) and returns a plotly Figure.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

REUSED_COLOR = "#9ecae1"  # light blue: served from the cache
RECOMPUTED_COLOR = "#fdae6b"  # orange: computed again
CHANGED_COLOR = "#d62728"  # red: the first token that differs
DIFF_FLOOR = 1e-8  # relative differences below this (exact zeros included) show as the floor
_STRIP_COLORS = [  # z = 0, 1, 2: reused, first changed, recomputed
    [f, c]
    for i, c in enumerate((REUSED_COLOR, CHANGED_COLOR, RECOMPUTED_COLOR))
    for f in (i / 3, (i + 1) / 3)
]


def fit_line(x, y) -> tuple[float, float]:
    """Return (slope, intercept) of the least-squares line through the points."""
    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(slope), float(intercept)


def token_strip_figure(
    tokens: list[str],
    reused_len: int,
    *,
    start: int = 0,
    stop: int | None = None,
    per_row: int = 12,
    max_chars: int = 8,
    title: str | None = None,
) -> go.Figure:
    """Return tokens start..stop-1 as a wrapped strip: reused, first changed, recomputed.

    Positions below reused_len are reused from the cache, position reused_len is the first that
    differs, the rest are recomputed. Hover shows each token's position and full text.
    """
    stop = len(tokens) if stop is None else min(stop, len(tokens))
    num_rows = max(1, math.ceil((stop - start) / per_row))
    z = np.full((num_rows, per_row), np.nan)
    text = np.full((num_rows, per_row), "", dtype=object)
    hover = np.full((num_rows, per_row), "", dtype=object)
    for pos in range(start, stop):
        row, col = divmod(pos - start, per_row)
        z[row, col] = 0 if pos < reused_len else (1 if pos == reused_len else 2)
        label = tokens[pos]
        text[row, col] = label if len(label) <= max_chars else label[: max_chars - 1] + "…"
        state = "reused" if pos < reused_len else "recomputed"
        hover[row, col] = f"position {pos}: {label!r} ({state})"
    fig = go.Figure(
        go.Heatmap(
            z=z,
            text=text,
            texttemplate="%{text}",
            textfont={"size": 10},
            customdata=hover,
            hovertemplate="%{customdata}<extra></extra>",
            colorscale=_STRIP_COLORS,
            zmin=0,
            zmax=2,
            showscale=False,
            xgap=2,
            ygap=2,
        )
    )
    for name, color in (
        ("reused from the cache", REUSED_COLOR),
        ("first changed token", CHANGED_COLOR),
        ("recomputed", RECOMPUTED_COLOR),
    ):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=name,
                marker={"color": color, "size": 12, "symbol": "square"},
            )
        )
    computed = len(tokens) - min(reused_len, len(tokens))
    fig.update_layout(
        title=title
        or f"{min(reused_len, len(tokens))} tokens reused, {computed} recomputed "
        f"(showing positions {start}–{stop - 1} of {len(tokens)})",
        height=120 + 26 * num_rows,
        width=80 + 62 * per_row,  # room for about max_chars characters per token
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        legend={"orientation": "h", "y": -0.02, "yanchor": "top"},
        plot_bgcolor="white",
    )
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(
        autorange="reversed",
        showgrid=False,
        zeroline=False,
        tickvals=list(range(num_rows)),
        ticktext=[str(start + r * per_row) for r in range(num_rows)],
    )
    return fig


def kv_difference_heatmap(
    rel_diff,
    *,
    edit_position: int | None = None,
    layer: int | None = None,
    title: str | None = None,
) -> go.Figure:
    """Return a layer × position heatmap of relative K/V difference on a log colour scale.

    rel_diff: (num_layers, seq_len). Exact zeros show at DIFF_FLOOR; the edit position is a
    dashed vertical line, and `layer` (if given) a horizontal one.
    """
    rel = np.asarray(rel_diff, float)
    z = np.log10(np.maximum(rel, DIFF_FLOOR))
    ticks = list(range(int(math.log10(DIFF_FLOOR)), 1))
    fig = go.Figure(
        go.Heatmap(
            z=z,
            customdata=rel,
            colorscale="Viridis",
            zmin=ticks[0],
            zmax=0,
            colorbar={
                "title": "‖ΔKV‖/‖KV‖",
                "tickvals": ticks,
                "ticktext": ["0" if t == ticks[0] else f"1e{t}" for t in ticks],
            },
            hovertemplate="layer %{y}, position %{x}: %{customdata:.2e}<extra></extra>",
        )
    )
    if edit_position is not None:
        fig.add_vline(
            x=edit_position - 0.5,
            line={"color": "red", "dash": "dash"},
            annotation_text=f"edit at {edit_position}",
            annotation_position="top",
        )
    if layer is not None:
        fig.add_hline(y=layer, line={"color": "white", "width": 1})
    fig.update_layout(
        title=title or "Relative difference of keys and values (max of K, V)",
        xaxis_title="token position",
        yaxis_title="layer",
        height=380,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
    )
    return fig


def layer_profile_figure(rel_diff, layer: int, *, edit_position: int | None = None) -> go.Figure:
    """Return one layer's relative K/V difference along the positions (log y axis)."""
    rel = np.asarray(rel_diff, float)[layer]
    fig = go.Figure(
        go.Scatter(
            x=np.arange(len(rel)),
            y=np.maximum(rel, DIFF_FLOOR),
            mode="lines",
            name=f"layer {layer}",
        )
    )
    if edit_position is not None:
        fig.add_vline(x=edit_position, line={"color": "red", "dash": "dash"})
    fig.update_layout(
        title=f"Layer {layer}: relative K/V difference ({DIFF_FLOOR:g} = identical)",
        xaxis_title="token position",
        yaxis_title="‖ΔKV‖/‖KV‖",
        height=260,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
    )
    fig.update_yaxes(type="log", range=[math.log10(DIFF_FLOOR) - 0.5, 0.5])
    return fig


def recompute_time_figure(
    positions, times_s, *, spread_s=None, tokens_recomputed=None, device_name: str = ""
) -> go.Figure:
    """Return time to serve a request vs the position of its changed token, with a fitted line."""
    x, y = np.asarray(positions, float), np.asarray(times_s, float)
    slope, intercept = fit_line(x, y)
    hover = None
    if tokens_recomputed is not None:
        hover = [f"{n} tokens recomputed" for n in tokens_recomputed]
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=y * 1e3,
            mode="markers",
            name="measured",
            text=hover,
            marker={"size": 10},
            error_y=None if spread_s is None else {"array": np.asarray(spread_s) * 1e3},
        )
    )
    line_x = np.array([x.min(), x.max()])
    fig.add_trace(
        go.Scatter(
            x=line_x,
            y=(slope * line_x + intercept) * 1e3,
            mode="lines",
            name=f"fit: {slope * 1e6:.2f} ms per 1000 positions",
            line={"dash": "dash"},
        )
    )
    fig.update_layout(
        title=f"Time to serve vs where the changed token sits — {device_name}",
        xaxis_title="position of the changed token",
        yaxis_title="time to first token (ms)",
        height=380,
    )
    return fig


def header_on_off_figure(
    labels: list[str],
    tokens_recomputed: list[int],
    ttft_s: list[float],
    *,
    spread_s: list[float] | None = None,
    device_name: str = "",
) -> go.Figure:
    """Return side-by-side bars: tokens recomputed and time to first token per setting."""
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("tokens recomputed", "time to first token (ms)")
    )
    colors = [RECOMPUTED_COLOR, REUSED_COLOR, "#bbbbbb", "#888888"][: len(labels)]
    fig.add_trace(
        go.Bar(
            x=labels,
            y=tokens_recomputed,
            marker_color=colors,
            text=tokens_recomputed,
            showlegend=False,
        ),
        row=1,
        col=1,
    )
    errors = None if spread_s is None else {"array": [s * 1e3 for s in spread_s]}
    fig.add_trace(
        go.Bar(
            x=labels,
            y=[t * 1e3 for t in ttft_s],
            marker_color=colors,
            error_y=errors,
            text=[f"{t * 1e3:.0f}" for t in ttft_s],
            showlegend=False,
        ),
        row=1,
        col=2,
    )
    fig.update_layout(title=f"Attribution header on vs off — {device_name}", height=360)
    return fig
