"""labkit.viz.palette: every figure and widget draws with the colour-blind-safe palette, and
cached vs computed (and any two series a reader must tell apart) differ by more than colour."""

import re

import numpy as np
import plotly.colors
import pytest
import torch

from labkit.experiments.bench import BenchRow, DecodeRun
from labkit.experiments.replay import PrefillFit, ReplayTurn
from labkit.viz import (
    bar_figure,
    cumulative_figure,
    decode_figure,
    fit_figure,
    header_on_off_figure,
    kv_difference_heatmap,
    kv_heatmap_figure,
    kv_memory_figure,
    kv_models_figure,
    kv_size_rows,
    layer_profile_figure,
    load_model_configs,
    prefix_sweep_figure,
    projection_figure,
    recompute_time_figure,
    replay_figure,
    token_strip_figure,
    turns_figure,
)
from labkit.viz.figures_breakage import fit_label
from labkit.viz.figures_session import duration_label
from labkit.viz.palette import ALLOWED_COLORS, CACHED, COLORSCALES, COMPUTED, series_style
from labkit.viz.widgets_cache import reuse_summary_html
from labkit.viz.widgets_session import capacity_problem

ROWS = [
    BenchRow(p, 16, cold, warm, cold / warm, 0.01, 0.001, cold, warm, 3, "Test CPU")
    for p, cold, warm in [(100, 0.2, 0.05), (200, 0.4, 0.06), (400, 0.8, 0.08)]
]
CACHED_RUN = DecodeRun([1, 2, 3], [0.1, 0.01, 0.01], [5, 1, 1], True, "Test CPU")
UNCACHED_RUN = DecodeRun([1, 2, 3], [0.1, 0.05, 0.06], [5, 6, 7], False, "Test CPU")
TURNS = {
    label: [
        ReplayTurn(k, 100 * (k + 1), r, 100 * (k + 1) - r, 0.1, 0.01, 0.09, "Test CPU")
        for k, r in enumerate(reused)
    ]
    for label, reused in (("header on", (0, 38, 38)), ("header off", (0, 100, 200)))
}
FIT = PrefillFit(0.01, 0.002, 0.99, 6, "Test CPU")
ENGINE_ROWS = [
    {"label": label, "engine": engine, "turn": t, "cached": c, "computed": 10, "header_end": 40}
    for label in ("header on", "header off")
    for engine in ("llamacpp", "vllm")
    for t, c in ((0, 0), (1, 30))
]
REL = np.zeros((3, 10))
REL[1:, 4:] = 0.1


def all_figures():
    """Return every figure helper's output on small plain data."""
    projection_rows = [
        {"setting": s, "header": h, "seconds": v}
        for s in ("this machine", "GPU")
        for h, v in (("header on", 5470.0), ("header off", 0.0895))
    ]
    return {
        "turns": turns_figure(ENGINE_ROWS),
        "cumulative": cumulative_figure({"a": [1, 3], "b": [1, 2], "c": [2, 4]}, title="t"),
        "replay": replay_figure(TURNS, model="m"),
        "fit": fit_figure({k: ([1, 2, 3], [0.1, 0.2, 0.3]) for k in TURNS}, {"line fit": FIT}),
        "projection": projection_figure(projection_rows, context_tokens=60000, device_name="cpu"),
        "bar": bar_figure(
            [{"x": "a", "y": 1, "s": s} for s in ("one", "two", "three")],
            x="x",
            y="y",
            color="s",
            title="t",
            y_title="y",
        ),
        "decode": decode_figure(CACHED_RUN, UNCACHED_RUN),
        "sweep": prefix_sweep_figure(ROWS),
        "memory": kv_memory_figure([10, 20], [1000, 2000], 100, "model"),
        "models": kv_models_figure(kv_size_rows(load_model_configs())),
        "keys": kv_heatmap_figure(torch.zeros(7, 4), layer=1, kv_head=0),
        "strip": token_strip_figure([f"t{i}" for i in range(20)], 6, per_row=8),
        "heatmap": kv_difference_heatmap(REL, edit_position=4, layer=1),
        "profile": layer_profile_figure(REL, 1, edit_position=4),
        "recompute": recompute_time_figure([0, 5, 10], [0.3, 0.2, 0.1], spread_s=[0.01] * 3),
        "on_off": header_on_off_figure(["on", "off"], [400, 30], [1.0, 0.1], spread_s=[0.1] * 2),
    }


def colours(node, key=""):
    """Yield (key, colour) for every colour a figure's JSON sets, outside its template."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k != "template":
                yield from colours(v, k)
    elif isinstance(node, list | tuple):
        for v in node:
            yield from colours(v, key)
    elif isinstance(node, str) and "color" in key.lower():
        yield key, node


def named_scale_colours() -> set[str]:
    out = set()
    for name in COLORSCALES:
        for _, colour in plotly.colors.get_colorscale(name):
            out.add(colour.replace(" ", "").lower())
    return out


@pytest.mark.parametrize("name", list(all_figures()))
def test_every_figure_uses_only_the_palette(name):
    fig = all_figures()[name].to_plotly_json()
    allowed = ALLOWED_COLORS | named_scale_colours()
    found = list(colours(fig))  # colorscale entries included: a named scale or palette colours
    assert found, "a figure that sets no colour falls back to plotly's default palette"
    for key, colour in found:
        assert colour.replace(" ", "").lower() in allowed, (name, key, colour)


def test_an_off_palette_colour_is_caught():
    fig = all_figures()["bar"]
    fig.data[0].marker.color = "#2ca02c"  # plotly's green
    assert any(c.lower() not in ALLOWED_COLORS for _, c in colours(fig.to_plotly_json()))


def _cue(trace) -> tuple:
    """Return a trace's non-colour cues: bar pattern, line dash, marker symbol."""
    marker, line = trace.marker, getattr(trace, "line", None)
    pattern = marker.pattern.shape if getattr(marker, "pattern", None) is not None else None
    if isinstance(pattern, tuple):
        pattern = tuple(pattern)
    return (
        pattern or "",
        getattr(line, "dash", None) or "",
        getattr(marker, "symbol", None) or "",
    )


@pytest.mark.parametrize(
    "name, first, second",
    [
        ("turns", "cached", "computed"),
        ("replay", "header on", "header off"),
        ("projection", "header on", "header off"),
        ("fit", "header on", "header off"),
        ("decode", "without cache", "with cache"),
        ("sweep", "cold: compute prefix + suffix", "warm: reuse the prefix, compute the suffix"),
        ("cumulative", "a", "b"),
        ("bar", "one", "two"),
    ],
)
def test_two_series_differ_by_more_than_colour(name, first, second):
    traces = {t.name: t for t in all_figures()[name].data}
    assert _cue(traces[first]) != _cue(traces[second]), (name, _cue(traces[first]))


def test_header_on_off_bars_carry_a_pattern_each():
    bars = all_figures()["on_off"].data
    for trace in bars:
        shapes = list(trace.marker.pattern.shape)
        assert len(set(shapes)) == len(shapes) == 2  # cached and computed: different patterns
    assert bars[1].error_y.array is not None
    assert bars[1].textposition == "inside"  # the error bar starts at the top: never on a label


def test_series_styles_differ_pairwise():
    cues = [tuple(series_style(i)[k] for k in ("pattern", "dash", "symbol")) for i in range(7)]
    assert len(set(cues)) == 7
    assert series_style(7) == series_style(0)


def test_labels_read_at_a_glance():
    assert [duration_label(s) for s in (0.0895, 5.2, 510, 5470)] == [
        "90 ms",
        "5.2 s",
        "8.5 min",
        "1.5 h",
    ]
    labels = [t.text for t in all_figures()["projection"].data]
    assert labels[0] == ("1.5 h", "1.5 h") and labels[1] == ("90 ms", "90 ms")
    assert fit_label(-0.0027) == "fit: 2.70 ms per recomputed token"  # falling time: a cost
    assert "no cost" in fit_label(0.0001)
    legend = all_figures()["recompute"].data[1].name
    assert "-" not in legend and "ms per recomputed token" in legend


def test_relative_difference_has_one_number_format():
    heatmap = all_figures()["heatmap"].data[0].colorbar
    profile = all_figures()["profile"].layout.yaxis
    assert list(heatmap.ticktext) == list(profile.ticktext)
    assert all(re.fullmatch(r"≤?1e-?\d", t) for t in heatmap.ticktext)
    assert heatmap.title.side == "top"  # the title above the bar, clear of the tick labels
    assert "1e-8" in all_figures()["profile"].layout.title.text


def test_widget_html_uses_the_palette_and_a_hatch():
    html = reuse_summary_html(400, 16, 0.8, 0.08, "Test CPU")
    assert CACHED in html and COMPUTED in html and "repeating-linear-gradient" in html
    assert {c.lower() for c in re.findall(r"#[0-9A-Fa-f]{6}", html)} <= ALLOWED_COLORS


def test_capacity_problem_speaks_the_sliders_language():
    assert capacity_problem("vllm", 0, 16, 1000) is None  # 0: unbounded
    assert capacity_problem("llamacpp", 256, 16, 1000) is None
    text = capacity_problem("vllm", 256, 16, 1000)
    assert "capacity_blocks" not in text and "1,008" in text and "0 for no limit" in text
    assert capacity_problem("vllm", 1008, 16, 1000) is None
    assert "1,000" in capacity_problem("sglang", 512, 1, 1000)
