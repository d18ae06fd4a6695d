"""A widget to serve a tokenized session on any engine model and see each turn's reuse at once."""

from __future__ import annotations

import html

import ipywidgets as widgets
from IPython.display import display

from labkit.engines.registry import ENGINE_LABELS, ENGINE_NAMES
from labkit.engines.session_sim import engine_options, hit_rate, simulate_session, turn_rows
from labkit.viz.figures_session import turns_figure
from labkit.viz.palette import ERROR

BLOCK_SIZES = (1, 4, 8, 16, 32, 64, 128)
# The replies toggle: what a learner reads, and the `replies=` value of `simulate_session`.
REPLY_CHOICES = (
    ("cached replies (best case)", "cached"),
    ("prompts only (lower bound)", "ignored"),
)
_REPLY_WORDS = {value: label for label, value in REPLY_CHOICES}


def run_summary(results, engine: str, replies: str = "cached") -> str:
    """Return one HTML line: tokens prefilled, tokens reused and the hit rate after request 0."""
    computed = sum(r.computed for r in results)
    total = sum(r.n_tokens for r in results)
    name = html.escape(ENGINE_LABELS.get(engine, engine))
    return (
        f"<b>{name}</b>, {_REPLY_WORDS[replies]}: {computed:,} of {total:,} "
        f"prompt tokens prefilled; hit rate after the first request <b>{hit_rate(results):.1%}</b>"
    )


def capacity_problem(engine: str, capacity: int, block: int, longest: int) -> str | None:
    """Return why the capacity slider's value cannot serve this session, in the slider's terms.

    A vLLM pool must hold every block of one prompt at once (whole blocks of `block` tokens), an
    SGLang tree the whole prompt; llama.cpp's RAM cache and the hosted API take any value.
    Returns None when the setting works.
    """
    if not capacity or engine not in ("vllm", "sglang"):
        return None
    if engine == "vllm":
        needed = -(-longest // block) * block  # whole blocks
        what = (
            f"vLLM needs every block of a prompt at once ({longest:,} tokens take "
            f"{needed:,} in blocks of {block})"
        )
    else:
        needed = longest
        what = f"SGLang needs room for a whole prompt ({longest:,} tokens)"
    if capacity >= needed:
        return None
    return (
        f"A capacity of {capacity:,} tokens is too small for this session: {what}. "
        f"Set capacity to at least {needed:,} tokens, or to 0 for no limit."
    )


def session_explorer(rendered: dict[str, dict[str, list]], *, block_size: int = 16) -> widgets.VBox:
    """Return a widget: pick session, variant, engine, replies, block size and capacity.

    `rendered[session][variant]` is a session already rendered (tokenized once, e.g. with
    `labkit.engines.session_sim.render_variant`); a change only re-runs the cheap engine simulation.
    Replies: "cached replies" lets the engine keep the reply it generated (the best case),
    "prompts only" caches prompts alone (the lower bound). Block size applies to vLLM (block) and
    SGLang (page); capacity 0 means unbounded. A setting the engine cannot serve replaces the
    figure with a message, so no figure of an earlier setting stays on screen.
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
    engine = widgets.Dropdown(
        options=[(ENGINE_LABELS[name], name) for name in ENGINE_NAMES],
        description="engine",
        style=style,
        layout=widgets.Layout(width="380px"),  # the longest label, whole
    )
    replies = widgets.ToggleButtons(
        options=REPLY_CHOICES,
        value="cached",
        description="replies",
        tooltips=[
            "the engine keeps the reply it generated; the next request reuses it",
            "the engine caches prompts only",
        ],
        style={**style, "button_width": "230px"},  # the whole label, never cut
    )
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

    def show_problem(text: str) -> None:
        # Shown in the summary AND in place of the figure, so no figure of an earlier setting stays.
        message = f"<b style='color:{ERROR}'>Cannot show this setting.</b> {html.escape(text)}"
        summary.value = message
        display(widgets.HTML(message))

    def update(session, variant, engine, replies, block, capacity) -> None:
        runs = rendered[session][variant]
        block = block if engine in ("vllm", "sglang") else None
        problem = capacity_problem(engine, capacity, block or 1, max(r.n_tokens for r in runs))
        if problem:
            show_problem(problem)
            return
        try:
            options = engine_options(
                engine,
                block_size=block,
                capacity_tokens=capacity if capacity and engine != "anthropic" else None,
            )
            results = simulate_session(runs, engine, replies=replies, **options)
        except ValueError as err:  # anything capacity_problem does not foresee
            show_problem(f"The engine model refused it: {err}")
            return
        summary.value = run_summary(results, engine, replies)
        rows = turn_rows(runs, results, engine=engine)
        rows = [{"label": variant, "engine": engine, **row} for row in rows]
        title = f"{session}: {ENGINE_LABELS[engine]}, {variant}, {_REPLY_WORDS[replies]}"
        display(turns_figure(rows, title=title))

    controls = {
        "session": session,
        "variant": variant,
        "engine": engine,
        "replies": replies,
        "block": block,
        "capacity": capacity,
    }
    output = widgets.interactive_output(update, controls)
    return widgets.VBox(
        [
            widgets.HBox([session, variant, engine]),
            widgets.HBox([block, capacity]),
            replies,
            summary,
            output,
        ]
    )
