"""Lesson 4's session explorer and its figure: the replies toggle, no stale figure after an error,
one title per panel, and the attribution line's end in the order each engine is served."""

import ipywidgets
import plotly.graph_objects as go
import pytest
from test_simulate import session

from labkit.engines.session_sim import (
    compare_engines,
    header_end,
    render_variant,
    simulate_session,
    turn_rows,
)
from labkit.sessions.edits import HEADER_LINE
from labkit.viz import widgets_session
from labkit.viz.figures_session import turns_figure
from labkit.viz.widgets_session import REPLY_CHOICES, session_explorer


@pytest.fixture(scope="module")
def rendered(tiny_tok):
    return {"s": {v: render_variant(session(4), tiny_tok, v) for v in ("header on", "header off")}}


@pytest.fixture
def shown(monkeypatch):
    """Record what the explorer displays in its output, one list per update (the last is shown)."""
    calls = []
    monkeypatch.setattr(widgets_session, "display", lambda obj: calls.append(obj))
    return calls


def controls(widget):
    """Return the explorer's controls by name, found by their descriptions (not by position)."""
    found = {}
    stack = [widget]
    while stack:
        w = stack.pop()
        stack.extend(getattr(w, "children", ()))
        if getattr(w, "description", ""):
            found[w.description] = w
    return found


def summary_of(widget) -> str:
    return next(w for w in widget.children if type(w).__name__ == "HTML").value


def test_replies_toggle_switches_between_best_case_and_lower_bound(rendered, shown, tiny_tok):
    widget = session_explorer(rendered)
    c = controls(widget)
    c["variant"].value, c["engine"].value = "header off", "llamacpp"
    assert c["engine"].label == "llama.cpp server"  # the engine read by name, not by key
    toggle = c["replies"]
    assert toggle.value == "cached" and toggle.label == REPLY_CHOICES[0][0]  # read, not a key
    runs = rendered["s"]["header off"]
    best = sum(r.computed for r in simulate_session(runs, "llamacpp", replies="cached"))
    low = sum(r.computed for r in simulate_session(runs, "llamacpp", replies="ignored"))
    assert best < low  # the session has replies, so the toggle matters
    assert f"{best:,} of" in summary_of(widget) and "best case" in summary_of(widget)
    figure = shown[-1]
    toggle.value = "ignored"
    assert f"{low:,} of" in summary_of(widget) and "lower bound" in summary_of(widget)
    assert isinstance(shown[-1], go.Figure) and shown[-1] is not figure
    assert "prompts only" in shown[-1].layout.title.text
    assert "llama.cpp server" in shown[-1].layout.title.text
    cached = [t.y for t in figure.data if t.name == "cached"][0]
    assert list(cached) != list([t.y for t in shown[-1].data if t.name == "cached"][0])


def test_an_error_replaces_the_figure_and_names_no_internal_option(rendered, shown):
    widget = session_explorer(rendered)
    c = controls(widget)
    assert isinstance(shown[-1], go.Figure)
    before = len(shown)
    c["engine"].value, c["capacity"].value = "vllm", c["capacity"].step  # too small for a prompt
    this_update = shown[before:]
    # Each update displays one thing into an output cleared first: the last is what is shown.
    # After the error it is the message alone, not the figure of the earlier setting.
    assert this_update and isinstance(this_update[-1], ipywidgets.HTML)
    message = this_update[-1].value
    assert "Cannot show this setting" in message and "capacity_blocks" not in message
    assert "Cannot show this setting" in summary_of(widget)
    c["capacity"].value = 0  # unbounded: the figure comes back
    assert isinstance(shown[-1], go.Figure) and "hit rate" in summary_of(widget)


def test_a_single_panel_is_titled_once(rendered):
    rows = compare_engines({"header on": rendered["s"]["header on"]}, engines=("vllm",))
    one = turns_figure(rows, title="s: vllm, header on")
    assert not one.layout.annotations  # the panel's name is the figure's title, not repeated
    several = turns_figure(compare_engines({"on": rendered["s"]["header on"]}, ("vllm", "sglang")))
    assert [a.text for a in several.layout.annotations] == ["vLLM, on", "SGLang, on"]


def test_header_end_is_in_the_order_each_engine_is_served(rendered, tiny_tok):
    runs = rendered["s"]["header on"]
    line = HEADER_LINE.search(runs[0].text)[0].rstrip("\n")
    for engine, tokens_of in (("llamacpp", "tokens"), ("anthropic", "api_tokens")):
        results = simulate_session(runs, engine)
        rows = turn_rows(runs, results, engine=engine)
        for request, row in zip(runs, rows, strict=True):
            end = row["header_end"]
            assert end == header_end(request, engine)
            # Worked out on the text: the tokens up to header_end end with the attribution line.
            text = tiny_tok.decode(getattr(request, tokens_of)[:end])
            assert text.endswith(HEADER_LINE.search(request.text)[0].rstrip("\n"))
    api, template = header_end(runs[0], "anthropic"), header_end(runs[0], "llamacpp")
    assert api > template  # the API puts the tools before the system prompt and its line
    assert line.startswith("x-anthropic-billing-header")
    # A request without the tools has one order only; without the line, no header_end at all.
    assert header_end(rendered["s"]["header off"][0], "anthropic") is None
