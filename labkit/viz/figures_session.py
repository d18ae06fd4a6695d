"""Plot a whole agent session: tokens reused per turn, cumulative prefill, measured time, cost.

Each helper takes plain data (rows of dicts, lists, numbers) and returns a plotly Figure.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit.engines.registry import ENGINE_LABELS
from labkit.viz.palette import (
    CACHED_STYLE,
    COMPUTED_STYLE,
    MARK,
    bar_marker,
    line_style,
    series_style,
)

HEADER_STYLES = {"header on": COMPUTED_STYLE, "header off": CACHED_STYLE}  # on: all prefilled


def _unique(values) -> list:
    return list(dict.fromkeys(values))


def duration_label(seconds: float) -> str:
    """Return a duration in the unit a person reads at a glance: ms, s, min or h."""
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def turns_figure(rows: list[dict], *, title: str = "Tokens per turn") -> go.Figure:
    """Return stacked bars of cached and computed tokens per turn, one panel per label × engine.

    `rows` come from `labkit.engines.session_sim.compare_engines` (keys label, engine, turn, cached,
    computed, header_end); where a row has a header_end a thick black bar marks it. Cached bars
    are plain blue, computed bars hatched vermillion: they differ by pattern as well as colour.
    Several panels are titled "engine, label" (the engine by its name in
    `labkit.engines.registry.ENGINE_LABELS`); a single panel has only `title`, which names it.
    """
    labels, engines = _unique(r["label"] for r in rows), _unique(r["engine"] for r in rows)
    panels = [f"{ENGINE_LABELS.get(e, e)}, {label}" for label in labels for e in engines]
    fig = make_subplots(
        rows=len(labels),
        cols=len(engines),
        shared_xaxes=True,
        shared_yaxes=True,
        subplot_titles=panels if len(panels) > 1 else None,  # one panel: the title names it
        vertical_spacing=0.12 if len(labels) > 1 else 0.1,
        horizontal_spacing=0.03,
    )
    for i, label in enumerate(labels, start=1):
        for j, engine in enumerate(engines, start=1):
            sub = [r for r in rows if r["label"] == label and r["engine"] == engine]
            turns = [r["turn"] for r in sub]
            first = i == 1 and j == 1
            for key, style in (("cached", CACHED_STYLE), ("computed", COMPUTED_STYLE)):
                fig.add_trace(
                    go.Bar(
                        x=turns,
                        y=[r[key] for r in sub],
                        name=key,
                        marker=bar_marker(style),
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
                        marker={
                            "symbol": "line-ew-open",
                            "size": 22,
                            "color": MARK,
                            "line": {"width": 4, "color": MARK},
                        },
                        name="header ends",
                        hovertemplate="request %{x}: the header line ends at token %{y:,}"
                        "<extra></extra>",
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
    for i, (name, values) in enumerate(series.items()):
        style = series_style(i)
        fig.add_trace(
            go.Scatter(
                x=list(range(len(values))),
                y=values,
                name=name,
                mode="lines+markers",
                line=line_style(style),
                marker={"symbol": style["symbol"], "size": 8, "color": style["color"]},
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
    for i, (label, turns) in enumerate(turns_by_label.items()):
        fig.add_trace(
            go.Bar(
                x=[t.turn for t in turns],
                y=[t.prefill_s * 1e3 for t in turns],
                name=label,
                marker=bar_marker(HEADER_STYLES.get(label, series_style(i))),
                error_y={"array": [t.spread_s * 1e3 for t in turns], "color": MARK},
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
    for i, (label, (computed, times_s)) in enumerate(points.items()):
        style = HEADER_STYLES.get(label, series_style(i))
        fig.add_trace(
            go.Scatter(
                x=list(computed),
                y=list(times_s),
                mode="markers",
                name=label,
                marker={"color": style["color"], "symbol": style["symbol"], "size": 9},
            )
        )
    xs = [top * i / 20 for i in range(21)]
    device = ""
    for i, (name, fit) in enumerate(fits.items()):
        device = fit.device_name
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[fit.predict_s(x) for x in xs],
                mode="lines",
                name=f"{name}: {fit.s_per_token * 1e3:.2f} ms per token",
                line={"color": MARK, "dash": ("dot", "longdash", "solid")[i % 3], "width": 2},
            )
        )
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
    for header, style in HEADER_STYLES.items():
        sub = [r for r in rows if r["header"] == header]
        fig.add_trace(
            go.Bar(
                x=[r["setting"] for r in sub],
                y=[r["seconds"] for r in sub],
                name=header,
                marker=bar_marker(style),
                text=[duration_label(r["seconds"]) for r in sub],
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
    for i, name in enumerate(_unique(r[color] for r in rows)):
        sub = [r for r in rows if r[color] == name]
        fig.add_trace(
            go.Bar(
                x=[r[x] for r in sub],
                y=[r[y] for r in sub],
                name=str(name),
                marker=bar_marker(series_style(i)),
            )
        )
    fig.update_layout(title=title, barmode="group", yaxis_title=y_title, height=400)
    return fig
