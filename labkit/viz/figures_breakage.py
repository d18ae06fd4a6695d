"""Plot what one changed token costs: a token strip, a layer × position heatmap, time vs position.

Each helper takes plain data (lists, arrays, numbers) and returns a plotly Figure.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit.viz.palette import (
    CACHED_LIGHT,
    CACHED_STYLE,
    COMPUTED,
    COMPUTED_LIGHT,
    COMPUTED_STYLE,
    MARK,
    NEUTRALS,
    OKABE_ITO,
    SEQUENTIAL_SCALE,
    line_style,
)

REUSED_COLOR = CACHED_LIGHT  # sky blue: served from the cache
RECOMPUTED_COLOR = COMPUTED_LIGHT  # orange: computed again
CHANGED_COLOR = OKABE_ITO["yellow"]  # the first token that differs (also outlined in black)
DIFF_FLOOR = 1e-8  # relative differences below this (exact zeros included) show as the floor
_FLOOR_EXP = round(math.log10(DIFF_FLOOR))
# One number format for relative differences, in every figure: powers of ten as 1e-8 ... 1e0.
DIFF_TICKVALS = list(range(_FLOOR_EXP, 1))
DIFF_TICKTEXT = [f"≤1e{_FLOOR_EXP}" if t == _FLOOR_EXP else f"1e{t}" for t in DIFF_TICKVALS]
_STRIP_COLORS = [  # z = 0, 1, 2: reused, first changed, recomputed
    [f, c]
    for i, c in enumerate((REUSED_COLOR, CHANGED_COLOR, RECOMPUTED_COLOR))
    for f in (i / 3, (i + 1) / 3)
]


def fit_line(x, y) -> tuple[float, float]:
    """Return (slope, intercept) of the least-squares line through the points."""
    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(slope), float(intercept)


def fit_label(slope_s_per_position: float) -> str:
    """Return a legend line for a fitted time-vs-position slope, in ms per recomputed token.

    Moving the change one position later leaves one token fewer to recompute, so a falling line
    (negative slope) reads as a positive cost per recomputed token.
    """
    per_token_ms = -slope_s_per_position * 1e3
    if per_token_ms > 0:
        return f"fit: {per_token_ms:.2f} ms per recomputed token"
    return f"fit: no cost per recomputed token visible (slope {slope_s_per_position * 1e3:+.2f} ms)"


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
    if start <= reused_len < stop:  # outline the first changed token: a cue besides colour
        row, col = divmod(reused_len - start, per_row)
        fig.add_shape(
            type="rect",
            x0=col - 0.5,
            x1=col + 0.5,
            y0=row - 0.5,
            y1=row + 0.5,
            line={"color": MARK, "width": 3},
        )
    for name, color, symbol in (
        ("reused from the cache", REUSED_COLOR, "square"),
        ("first changed token (outlined)", CHANGED_COLOR, "square-open"),
        ("recomputed", RECOMPUTED_COLOR, "square"),
    ):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=name,
                marker={
                    "color": color,
                    "size": 12,
                    "symbol": symbol,
                    "line": {"color": MARK, "width": 2 if symbol == "square-open" else 0},
                },
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
        plot_bgcolor=NEUTRALS["white"],
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
    fig = go.Figure(
        go.Heatmap(
            z=z,
            customdata=rel,
            colorscale=SEQUENTIAL_SCALE,
            zmin=DIFF_TICKVALS[0],
            zmax=0,
            colorbar={
                "title": {"text": "‖ΔKV‖ / ‖KV‖<br>(log scale)", "side": "top"},
                "tickvals": DIFF_TICKVALS,
                "ticktext": DIFF_TICKTEXT,
                "ticks": "outside",
                "thickness": 14,
            },
            hovertemplate="layer %{y}, position %{x}: %{customdata:.2e}<extra></extra>",
        )
    )
    if edit_position is not None:
        fig.add_vline(
            x=edit_position - 0.5,
            line={"color": COMPUTED, "dash": "dash", "width": 2},
            annotation_text=f"edit at {edit_position}",
            annotation_position="top",
        )
    if layer is not None:  # a white-and-black frame: visible on every colour of the scale
        fig.add_shape(
            type="rect",
            xref="paper",
            x0=0,
            x1=1,
            y0=layer - 0.5,
            y1=layer + 0.5,
            line={"color": NEUTRALS["white"], "width": 3},
        )
        fig.add_annotation(
            xref="paper",
            x=1.0,
            y=layer,
            text=f"layer {layer}",
            showarrow=False,
            xanchor="right",
            font={"color": MARK},
            bgcolor=NEUTRALS["white"],
        )
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
            line=line_style(CACHED_STYLE),
        )
    )
    if edit_position is not None:
        fig.add_vline(x=edit_position, line={"color": COMPUTED, "dash": "dash", "width": 2})
    fig.update_layout(
        title=f"Layer {layer}: relative K/V difference (≤1e{_FLOOR_EXP} = identical)",
        xaxis_title="token position",
        yaxis_title="‖ΔKV‖/‖KV‖",
        height=260,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
    )
    fig.update_yaxes(
        type="log",
        range=[_FLOOR_EXP - 0.5, 0.5],
        tickvals=[10.0**t for t in DIFF_TICKVALS],
        ticktext=DIFF_TICKTEXT,
    )
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
            name="measured (median, spread)",
            text=hover,
            marker={"size": 10, "color": COMPUTED, "symbol": COMPUTED_STYLE["symbol"]},
            error_y=None
            if spread_s is None
            else {"array": np.asarray(spread_s) * 1e3, "color": COMPUTED},
        )
    )
    line_x = np.array([x.min(), x.max()])
    fig.add_trace(
        go.Scatter(
            x=line_x,
            y=(slope * line_x + intercept) * 1e3,
            mode="lines",
            name=fit_label(slope),
            line={"dash": "dash", "color": MARK, "width": 2},
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
    styles = [COMPUTED_STYLE, CACHED_STYLE]
    styles += [{"color": NEUTRALS[g], "pattern": p} for g, p in (("grey", "."), ("dark_grey", "x"))]
    styles = styles[: len(labels)]
    marker = {
        "color": [s["color"] for s in styles],
        "pattern": {"shape": [s["pattern"] for s in styles]},
    }
    fig.add_trace(
        go.Bar(
            x=labels,
            y=tokens_recomputed,
            marker=marker,
            text=[f"{n:,}" for n in tokens_recomputed],
            textposition="auto",  # no error bar here: outside a bar too short to hold it
            insidetextanchor="middle",
            textfont={"color": MARK},
            showlegend=False,
        ),
        row=1,
        col=1,
    )
    # Labels inside the bars: an error bar drawn from the top never covers them.
    errors = None if spread_s is None else {"array": [s * 1e3 for s in spread_s], "color": MARK}
    fig.add_trace(
        go.Bar(
            x=labels,
            y=[t * 1e3 for t in ttft_s],
            marker=marker,
            error_y=errors,
            text=[f"{t * 1e3:.0f} ms" for t in ttft_s],
            textposition="inside",
            insidetextanchor="middle",
            textfont={"color": MARK},
            showlegend=False,
        ),
        row=1,
        col=2,
    )
    fig.update_layout(title=f"Attribution header on vs off — {device_name}", height=360)
    return fig
