"""Tables and plotly figures for lessons 1-2: a cache's anatomy, its size, and prefix reuse."""

from __future__ import annotations

import json
from itertools import accumulate
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit.cache import kv_cache_bytes, kv_dims
from labkit.resources import data_path
from labkit.viz.palette import (
    CACHED_STYLE,
    COMPUTED_STYLE,
    DIVERGING_SCALE,
    MARK,
    OKABE_ITO,
    line_style,
)

GIB = 2**30
COLD, WARM = COMPUTED_STYLE["color"], CACHED_STYLE["color"]  # computed vs reused, as everywhere


def load_model_configs(path: Path | str | None = None) -> list[dict]:
    """Return the published configs of well-known models (data/model_configs.json)."""
    path = data_path("model_configs.json") if path is None else Path(path)
    return json.loads(path.read_text(encoding="utf-8"))["models"]


def kv_size_rows(
    configs: list[dict], seq_lens=(4096, 32768, 131072), dtype="bfloat16"
) -> list[dict]:
    """Return one row per model: its KV dims, bytes per token and GiB at each seq_len."""
    rows = []
    for config in configs:
        dims = kv_dims(config)
        row = {
            "model": config["name"],
            "num_layers": dims.num_layers,
            "num_attention_heads": dims.num_attention_heads,
            "num_kv_heads": dims.num_kv_heads,
            "head_dim": dims.head_dim,
            "kib_per_token": kv_cache_bytes(config, 1, dtype) / 1024,
            "dtype": str(dtype).removeprefix("torch."),
        }
        for seq_len in seq_lens:
            row[f"gib_at_{seq_len // 1024}k"] = kv_cache_bytes(config, seq_len, dtype) / GIB
        rows.append(row)
    return rows


def kv_heatmap_figure(keys, layer: int, kv_head: int) -> go.Figure:
    """Return a heatmap of one KV head's keys: token position down, head_dim across."""
    fig = go.Figure(
        go.Heatmap(
            z=keys.float().cpu().numpy(),
            colorscale=DIVERGING_SCALE,
            zmid=0,
            colorbar={"title": {"text": "value", "side": "top"}},
        )
    )
    fig.update_layout(
        title=f"Keys of layer {layer}, KV head {kv_head}: one row per token",
        xaxis_title="head_dim index",
        yaxis_title="token position",
        yaxis_autorange="reversed",
        height=420,
    )
    return fig


def decode_figure(cached, uncached) -> go.Figure:
    """Return work and time per new token, with and without the cache, from two DecodeRuns."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Positions computed so far (total work)", "Milliseconds per new token"),
    )
    for run, name, style in (
        (uncached, "without cache", COMPUTED_STYLE),
        (cached, "with cache", CACHED_STYLE),
    ):
        steps = list(range(1, len(run.step_s) + 1))
        fig.add_trace(
            go.Scatter(
                x=steps, y=list(accumulate(run.tokens_computed)), name=name, line=line_style(style)
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=steps[1:],
                y=[s * 1e3 for s in run.step_s[1:]],
                name=name,
                mode="lines+markers",
                line=line_style(style, width=1),
                marker={"symbol": style["symbol"], "size": 4, "color": style["color"]},
                showlegend=False,
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="new tokens generated")
    fig.update_layout(
        title=f"Greedy decoding with and without the KV cache on {cached.device_name}", height=420
    )
    return fig


def prefix_sweep_figure(rows) -> go.Figure:
    """Return cold and warm TTFT (ms, median with spread) against prefix length."""
    fig = go.Figure()
    prefix_lens = [r.prefix_len for r in rows]
    for name, style, times, spreads in (
        (
            "cold: compute prefix + suffix",
            COMPUTED_STYLE,
            [r.cold_ttft_s for r in rows],
            [r.cold_spread_s for r in rows],
        ),
        (
            "warm: reuse the prefix, compute the suffix",
            CACHED_STYLE,
            [r.warm_ttft_s for r in rows],
            [r.warm_spread_s for r in rows],
        ),
    ):
        fig.add_trace(
            go.Scatter(
                x=prefix_lens,
                y=[t * 1e3 for t in times],
                name=name,
                mode="lines+markers",
                line=line_style(style),
                marker={"symbol": style["symbol"], "size": 9, "color": style["color"]},
                error_y={"array": [s * 1e3 for s in spreads], "color": style["color"]},
            )
        )
    fig.update_layout(
        title=f"Time to first token, {rows[0].suffix_len} new tokens, on {rows[0].device_name}",
        xaxis_title="prefix_len (tokens reused when warm)",
        yaxis_title="TTFT (ms, median)",
        height=420,
    )
    return fig


def kv_memory_figure(seq_lens, measured_bytes, bytes_per_token: int, model: str) -> go.Figure:
    """Return measured cache bytes (MiB) against seq_len, over the formula's straight line."""
    top = max(seq_lens)
    fig = go.Figure(
        [
            go.Scatter(
                x=[0, top],
                y=[0, bytes_per_token * top / 2**20],
                mode="lines",
                name=f"formula: {bytes_per_token:,} bytes per token",
                line={"color": MARK, "dash": "dash", "width": 2},
            ),
            go.Scatter(
                x=list(seq_lens),
                y=[b / 2**20 for b in measured_bytes],
                mode="markers",
                name="measured: sum of the cache's tensors",
                marker={"size": 11, "color": OKABE_ITO["vermillion"], "symbol": "x"},
            ),
        ]
    )
    fig.update_layout(
        title=f"KV cache size of {model}",
        xaxis_title="seq_len (tokens)",
        yaxis_title="MiB",
        height=380,
    )
    return fig


def kv_models_figure(rows: list[dict], column: str = "gib_at_32k") -> go.Figure:
    """Return a bar chart of one kv_size_rows column (GiB) across models, titled with its dtype."""
    fig = go.Figure(
        go.Bar(
            x=[r[column] for r in rows],
            y=[r["model"] for r in rows],
            orientation="h",
            marker={"color": OKABE_ITO["blue"]},
            text=[f"{r[column]:.2f} GiB" for r in rows],
        )
    )
    seq = column.removeprefix("gib_at_")
    dtypes = ", ".join(dict.fromkeys(r.get("dtype", "dtype not given") for r in rows))
    fig.update_layout(
        title=f"KV cache for one {seq}-token sequence ({dtypes})",
        xaxis_title="GiB",
        yaxis_autorange="reversed",
        height=380,
    )
    return fig
