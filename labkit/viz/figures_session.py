"""Plot a whole agent session: tokens reused per turn, cumulative prefill, measured time, cost.

Each helper takes plain data (rows of dicts, lists, numbers) and returns a plotly Figure.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

REUSED_COLOR, COMPUTED_COLOR = "#2ca02c", "#d62728"  # green: from cache; red: prefilled
SERIES_COLORS = ("#d62728", "#2ca02c", "#1f77b4", "#ff7f0e", "#9467bd", "#8c564b")


def _unique(values) -> list:
    return list(dict.fromkeys(values))


def turns_figure(rows: list[dict], *, title: str = "Tokens per turn") -> go.Figure:
    """Return stacked bars of cached and computed tokens per turn, one panel per label × engine.

    `rows` come from `labkit.engines.session_sim.compare_engines` (keys label, engine, turn, cached,
    computed, header_end); where a row has a header_end a black tick marks it.
    """
    labels, engines = _unique(r["label"] for r in rows), _unique(r["engine"] for r in rows)
    fig = make_subplots(
        rows=len(labels),
        cols=len(engines),
        shared_xaxes=True,
        shared_yaxes=True,
        subplot_titles=[f"{engine}, {label}" for label in labels for engine in engines],
        vertical_spacing=0.12 if len(labels) > 1 else 0.1,
        horizontal_spacing=0.03,
    )
    for i, label in enumerate(labels, start=1):
        for j, engine in enumerate(engines, start=1):
            sub = [r for r in rows if r["label"] == label and r["engine"] == engine]
            turns = [r["turn"] for r in sub]
            first = i == 1 and j == 1
            for key, color in (("cached", REUSED_COLOR), ("computed", COMPUTED_COLOR)):
                fig.add_trace(
                    go.Bar(
                        x=turns,
                        y=[r[key] for r in sub],
                        name=key,
                        marker_color=color,
                        legendgroup=key,
                        showlegend=first,
                    ),
                    row=i,
                    col=j,
                )
            ends = [(r["turn"], r["header_end"]) for r in sub if r.get("header_end") is not None]
            if ends:
                fig.add_trace(
                    go.Scatter(
                        x=[t for t, _ in ends],
                        y=[e for _, e in ends],
                        mode="markers",
                        marker={"symbol": "line-ew-open", "size": 14, "color": "black"},
                        name="header ends",
                        legendgroup="header",
                        showlegend=not any(t.name == "header ends" for t in fig.data),
                    ),
                    row=i,
                    col=j,
                )
    fig.update_layout(barmode="stack", title=title, height=140 + 240 * len(labels))
    fig.update_xaxes(title_text="request", row=len(labels))
    fig.update_yaxes(title_text="tokens", col=1)
    return fig


def cumulative_figure(series: dict[str, list[int]], *, title: str) -> go.Figure:
    """Return lines of tokens prefilled so far against the request index, one per series."""
    fig = go.Figure()
    for (name, values), color in zip(series.items(), SERIES_COLORS, strict=False):
        fig.add_trace(
            go.Scatter(
                x=list(range(len(values))),
                y=values,
                name=name,
                mode="lines+markers",
                line={"color": color},
            )
        )
    fig.update_layout(
        title=title, xaxis_title="request", yaxis_title="tokens prefilled so far", height=400
    )
    return fig


def replay_figure(turns_by_label: dict[str, list], *, model: str = "") -> go.Figure:
    """Return measured prefill time per turn (median, spread as error bars), one bar per label.

    Each value of `turns_by_label` is a list of `labkit.experiments.replay.ReplayTurn`.
    """
    fig = go.Figure()
    device = next(iter(turns_by_label.values()))[0].device_name
    for (label, turns), color in zip(turns_by_label.items(), SERIES_COLORS, strict=False):
        fig.add_trace(
            go.Bar(
                x=[t.turn for t in turns],
                y=[t.prefill_s * 1e3 for t in turns],
                name=label,
                marker_color=color,
                error_y={"array": [t.spread_s * 1e3 for t in turns]},
                customdata=[[t.tokens_reused, t.tokens_computed] for t in turns],
                hovertemplate="%{y:.0f} ms: %{customdata[0]} reused, %{customdata[1]} computed",
            )
        )
    fig.update_layout(
        title=f"Measured prefill per turn, {model} on {device}",
        barmode="group",
        xaxis_title="request",
        yaxis_title="prefill (ms, median)",
        height=400,
    )
    return fig


def fit_figure(points: dict[str, tuple[list, list]], fits: dict[str, object]) -> go.Figure:
    """Return prefill seconds against tokens computed (points per label) and the fitted lines.

    `points` maps a label to (tokens_computed, times_s); `fits` maps a name to a PrefillFit,
    drawn for a prompt computed from scratch (nothing reused).
    """
    fig = go.Figure()
    top = max(max(computed) for computed, _ in points.values())
    for (label, (computed, times_s)), color in zip(points.items(), SERIES_COLORS, strict=False):
        fig.add_trace(
            go.Scatter(
                x=list(computed),
                y=list(times_s),
                mode="markers",
                name=label,
                marker={"color": color, "size": 9},
            )
        )
    xs = [top * i / 20 for i in range(21)]
    device = ""
    for name, fit in fits.items():
        device = fit.device_name
        fig.add_trace(go.Scatter(x=xs, y=[fit.predict_s(x) for x in xs], mode="lines", name=name))
    fig.update_layout(
        title=f"Prefill time against tokens computed, on {device}",
        xaxis_title="tokens computed",
        yaxis_title="seconds",
        height=400,
    )
    return fig


def projection_figure(rows: list[dict], *, context_tokens: int, device_name: str) -> go.Figure:
    """Return one turn's prefill seconds at `context_tokens`, header on vs off, per setting.

    `rows` have keys setting (e.g. "this machine, line fit"), header ("header on"/"header off")
    and seconds; the y axis is logarithmic so both bars stay readable.
    """
    fig = go.Figure()
    for header, color in (("header on", COMPUTED_COLOR), ("header off", REUSED_COLOR)):
        sub = [r for r in rows if r["header"] == header]
        fig.add_trace(
            go.Bar(
                x=[r["setting"] for r in sub],
                y=[r["seconds"] for r in sub],
                name=header,
                marker_color=color,
                text=[f"{r['seconds']:.3g} s" for r in sub],
                textposition="outside",
            )
        )
    fig.update_layout(
        title=f"One turn's prefill at {context_tokens:,} tokens of context, "
        f"projected from {device_name}",
        barmode="group",
        yaxis_type="log",
        yaxis_title="seconds (log scale)",
        height=440,
    )
    return fig


def bar_figure(
    rows: list[dict], *, x: str, y: str, color: str, title: str, y_title: str
) -> go.Figure:
    """Return grouped bars of rows[y] against rows[x], one series per value of rows[color]."""
    fig = go.Figure()
    for name, series_color in zip(_unique(r[color] for r in rows), SERIES_COLORS, strict=False):
        sub = [r for r in rows if r[color] == name]
        fig.add_trace(
            go.Bar(
                x=[r[x] for r in sub],
                y=[r[y] for r in sub],
                name=str(name),
                marker_color=series_color,
            )
        )
    fig.update_layout(title=title, barmode="group", yaxis_title=y_title, height=400)
    return fig
