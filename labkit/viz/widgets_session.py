"""A widget to serve a tokenized session on any engine model and see each turn's reuse at once."""

from __future__ import annotations

import html

import ipywidgets as widgets
from IPython.display import display

from labkit.engines.registry import ENGINE_NAMES
from labkit.engines.session_sim import engine_options, hit_rate, simulate_session, turn_rows
from labkit.viz.figures_session import turns_figure

BLOCK_SIZES = (1, 4, 8, 16, 32, 64, 128)


def run_summary(results, engine: str) -> str:
    """Return one HTML line: tokens prefilled, tokens reused and the hit rate after request 0."""
    computed = sum(r.computed for r in results)
    total = sum(r.n_tokens for r in results)
    return (
        f"<b>{html.escape(engine)}</b>: {computed:,} of {total:,} prompt tokens prefilled; "
        f"hit rate after the first request <b>{hit_rate(results):.1%}</b>"
    )


def session_explorer(rendered: dict[str, dict[str, list]], *, block_size: int = 16) -> widgets.VBox:
    """Return a widget: pick session, variant, engine, block size and capacity; the figure follows.

    `rendered[session][variant]` is a session already rendered (tokenized once, e.g. with
    `labkit.engines.session_sim.render_variant`); a change only re-runs the cheap engine simulation.
    Block size applies to vLLM (block) and SGLang (page); capacity 0 means unbounded.
    """
    sessions = list(rendered)
    longest = max(
        r.n_tokens for by_variant in rendered.values() for s in by_variant.values() for r in s
    )
    style = {"description_width": "80px"}
    session = widgets.Dropdown(options=sessions, description="session", style=style)
    variant = widgets.Dropdown(
        options=list(rendered[sessions[0]]), description="variant", style=style
    )
    engine = widgets.Dropdown(options=ENGINE_NAMES, description="engine", style=style)
    block = widgets.Dropdown(
        options=BLOCK_SIZES, value=block_size, description="block size", style=style
    )
    capacity = widgets.IntSlider(
        value=0,
        min=0,
        max=4 * longest,
        step=256,
        description="capacity",
        continuous_update=False,
        style=style,
        layout=widgets.Layout(width="480px"),
    )
    summary = widgets.HTML()

    def update(session, variant, engine, block, capacity) -> None:
        try:
            options = engine_options(
                engine,
                block_size=block if engine in ("vllm", "sglang") else None,
                capacity_tokens=capacity if capacity and engine != "anthropic" else None,
            )
            runs = rendered[session][variant]
            results = simulate_session(runs, engine, **options)
        except ValueError as err:  # e.g. a vLLM pool smaller than one prompt
            summary.value = f"<span style='color:#d62728'>{html.escape(str(err))}</span>"
            return
        summary.value = run_summary(results, engine)
        rows = [{"label": variant, "engine": engine, **row} for row in turn_rows(runs, results)]
        display(turns_figure(rows, title=f"{session}: {engine}, {variant}"))

    controls = {
        "session": session,
        "variant": variant,
        "engine": engine,
        "block": block,
        "capacity": capacity,
    }
    output = widgets.interactive_output(update, controls)
    return widgets.VBox(
        [widgets.HBox([session, variant, engine]), widgets.HBox([block, capacity]), summary, output]
    )
