"""Plot what a real server reported per turn beside the engine model's prediction.

Each helper takes plain data (rows of dicts, numbers) and returns a plotly Figure. Colours are
Okabe-Ito (colour-blind safe), and each series has a second cue: the server's counts are solid
lines with filled markers, the model's predictions dashed lines with open markers.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit.viz.palette import OKABE_ITO

RUN_COLORS = tuple(OKABE_ITO[c] for c in ("orange", "blue", "bluish_green", "reddish_purple"))
RUN_SYMBOLS = ("circle", "square", "diamond", "triangle-up")


def server_turns_figure(
    runs: dict[str, list[dict]], *, title: str = "The real server, turn by turn"
) -> go.Figure:
    """Return two panels per turn: cached tokens (server vs model) and the server's prompt time.

    `runs` maps a label ("line on") to rows with keys turn, cached, predicted_cached, prompt_ms
    (e.g. `labkit.server.rows_json` rows with their index as turn).
    """
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=(
            "tokens reused from the cache: server (solid) vs llama.cpp model (dashed)",
            "the server's prompt (prefill) time",
        ),
    )
    for i, (label, rows) in enumerate(runs.items()):
        color, symbol = RUN_COLORS[i % len(RUN_COLORS)], RUN_SYMBOLS[i % len(RUN_SYMBOLS)]
        turns = [r["turn"] for r in rows]
        # (row key, legend name, panel, dash, marker): the server solid and filled, the model
        # dashed and open, so the two read apart without colour.
        series = (
            ("cached", "server cache_n", 1, "solid", (symbol, 9)),
            ("predicted_cached", "model prediction", 1, "dash", (f"{symbol}-open", 14)),
            ("prompt_ms", "server prompt_ms", 2, "solid", (symbol, 9)),
        )
        for key, name, row, dash, (marker, size) in series:
            fig.add_trace(
                go.Scatter(
                    x=turns,
                    y=[r[key] for r in rows],
                    name=f"{label}: {name}",
                    mode="lines+markers",
                    line={"color": color, "dash": dash},
                    marker={"symbol": marker, "size": size, "color": color},
                ),
                row=row,
                col=1,
            )
    fig.update_yaxes(title_text="tokens", row=1, col=1)
    fig.update_yaxes(title_text="ms", row=2, col=1)
    fig.update_xaxes(title_text="request (turn)", row=2, col=1)
    fig.update_layout(title=title, height=620, legend={"orientation": "h", "y": -0.15})
    return fig


def ms_per_token_figure(
    ms_per_token: dict[str, float], *, title: str = "Prefill time per prompt token"
) -> go.Figure:
    """Return bars of milliseconds per prefilled token, one per system, labelled with values."""
    names = list(ms_per_token)
    fig = go.Figure(
        go.Bar(
            x=names,
            y=[ms_per_token[n] for n in names],
            marker={
                "color": [RUN_COLORS[i % len(RUN_COLORS)] for i in range(len(names))],
                "pattern": {"shape": ["", "/", "x", "."][: len(names)]},
            },
            text=[f"{ms_per_token[n]:.3f} ms" for n in names],
            textposition="outside",
        )
    )
    fig.update_layout(title=title, yaxis_title="ms per token", height=380)
    return fig
