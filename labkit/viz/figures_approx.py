"""Plot approximate reuse: the error of a shifted cache per layer, and quality vs recomputed share.

Each helper takes plain data (lists, arrays, numbers) and returns a plotly Figure. Colours are
the Okabe-Ito palette (safe for colour-blind readers), and every series also has its own marker
and line dash.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

BLUE, VERMILLION, ORANGE, GREEN, GREY = "#0072B2", "#D55E00", "#E69F00", "#009E73", "#595959"
ERROR_FLOOR = 1e-9  # values below this (exact zeros included) are drawn at the floor
SELECTION_STYLE = {  # selection -> (label, colour, marker, dash)
    "deviation": ("largest K/V deviation (CacheBlend)", BLUE, "circle", "solid"),
    "random": ("random positions (control)", VERMILLION, "x", "dash"),
}


def _floored(values) -> np.ndarray:
    return np.maximum(np.asarray(values, dtype=float), ERROR_FLOOR)


def shift_error_figure(
    series: dict[str, list[float]], *, title: str = "Reused keys and values vs a full recompute"
) -> go.Figure:
    """Return one line per series of per-layer errors (x: layer, y: log scale, floored).

    series: label -> the median relative error of each layer (layer 0 first).
    """
    styles = [
        (BLUE, "circle", "solid"),
        (VERMILLION, "x", "dash"),
        (GREEN, "diamond", "dot"),
        (ORANGE, "square", "dashdot"),
        (GREY, "triangle-up", "longdash"),
    ]
    fig = go.Figure()
    for (label, values), (color, marker, dash) in zip(series.items(), styles, strict=False):
        raw = np.asarray(values, dtype=float)
        fig.add_trace(
            go.Scatter(
                x=np.arange(len(raw)),
                y=_floored(raw),
                name=label,
                mode="lines+markers",
                line={"color": color, "dash": dash},
                marker={"symbol": marker, "size": 7},
                customdata=raw,
                hovertemplate="layer %{x}: %{customdata:.2e}<extra>" + label + "</extra>",
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title="layer",
        yaxis_title=f"median relative error (exact = {ERROR_FLOOR:g})",
        yaxis_type="log",
        height=400,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def fraction_labels(fractions, compute_saved) -> list[str]:
    """Return one x label per fraction: the share recomputed and the compute saved."""
    return [f"{f:.0%}<br>{s:.0%} saved" for f, s in zip(fractions, compute_saved, strict=True)]


def blend_quality_figure(
    fractions: list[float],
    kl: dict[str, list[float]],
    top1: dict[str, list[float]],
    compute_saved: list[float],
    *,
    current: float | None = None,
    title: str = "Selective recompute",
) -> go.Figure:
    """Return KL (log) and top-1 agreement vs the share of positions recomputed, per selection.

    kl, top1: selection ("deviation", "random") -> one value per fraction. The x ticks also name
    the compute saved at each fraction (evenly spaced: f = 0 has no place on a log axis);
    `current` marks one fraction with a vertical line.
    """
    labels = fraction_labels(fractions, compute_saved)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("next-token KL vs full recompute (nats)", "top-1 agreement"),
        horizontal_spacing=0.1,
    )
    for selection, (label, color, marker, dash) in SELECTION_STYLE.items():
        if selection not in kl:
            continue
        for col, values in ((1, _floored(kl[selection])), (2, top1[selection])):
            fig.add_trace(
                go.Scatter(
                    x=labels,
                    y=values,
                    name=label,
                    legendgroup=selection,
                    showlegend=col == 1,
                    mode="lines+markers",
                    line={"color": color, "dash": dash},
                    marker={"symbol": marker, "size": 8},
                    hovertemplate="f = %{x}: %{y:.3g}<extra>" + label + "</extra>",
                ),
                row=1,
                col=col,
            )
    for col in (1, 2):
        fig.update_xaxes(
            type="category", title_text="share of positions recomputed (f)", row=1, col=col
        )
        if current is not None:
            at = labels[int(np.argmin(np.abs(np.asarray(fractions) - current)))]
            fig.add_vline(x=at, line={"color": GREY, "dash": "dot"}, row=1, col=col)
    fig.update_yaxes(type="log", title_text=f"mean KL (exact = {ERROR_FLOOR:g})", row=1, col=1)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", row=1, col=2)
    fig.update_layout(title=title, height=420, legend={"orientation": "h", "y": -0.35})
    return fig
