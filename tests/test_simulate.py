"""Tests for lesson 4: `labkit simulate`, request edits, the short replay session, fits and cost."""

import json
import subprocess
import sys
from itertools import pairwise

import pytest

from labkit.cli import main
from labkit.engines import AnthropicAPI, generated_after, simulate
from labkit.engines.cost import api_session_cost, input_cost_usd
from labkit.engines.session_sim import (
    compare_engines,
    cumulative,
    engine_options,
    hit_rate,
    render_variant,
    simulate_session,
    turn_rows,
)
from labkit.experiments.replay import (
    fit_prefill_time,
    prefill_flops,
    project_turn_s,
    replay_sessions,
    shorten_session,
)
from labkit.models import tiny_random_model
from labkit.resources import data_path
from labkit.sessions import load_requests, render_request, render_session
from labkit.sessions.edits import (
    HEADER_LINE,
    TIMESTAMP_START_S,
    add_timestamp,
    apply_variant,
    move_header_to_end,
    shuffle_tools,
)
from labkit.sessions.header import billing_header
from labkit.viz.figures_session import turns_figure
from labkit.viz.widgets_session import session_explorer

BUNDLED = ["fix_failing_test", "add_cli_flag"]  # the two sessions stored without cache busters
TOOL = {"name": "read_file", "description": "Read a file.", "input_schema": {"type": "object"}}


def session(n: int = 3) -> list[dict]:
    """Return n requests of a small Anthropic-shape session, each extending the one before."""
    system = [{"type": "text", "text": "You are a coding agent.\nBe brief."}]
    tools = [TOOL, {**TOOL, "name": "edit_file"}, {**TOOL, "name": "run"}, {**TOOL, "name": "ls"}]
    messages, requests = [], []
    for k in range(n):
        if k:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": f"ok {k}"}]})
        messages.append({"role": "user", "content": [{"type": "text", "text": f"Step {k}."}]})
        request = {"system": system, "tools": tools, "messages": json.loads(json.dumps(messages))}
        request["messages"][-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
        requests.append(request)
    return requests


def run_cli(capsys, *args):
    code = main(["simulate", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("name", BUNDLED)
def test_cli_header_on_reuse_stops_inside_the_header(name, smol_tok, capsys):
    path = data_path("sessions") / f"{name}.jsonl"
    code, out, _ = run_cli(capsys, path, "--engine", "llamacpp", "--attribution", "on", "--json")
    assert code == 0
    rows = json.loads(out)
    rendered = render_session(load_requests(path), smol_tok, attribution=True, seed=0)
    assert [r["n_tokens"] for r in rows] == [r.n_tokens for r in rendered]
    for row, request in zip(rows, rendered, strict=True):
        assert row["cached"] < request.header_span[1]  # never past the end of the line


def reply_end(before, after, tokenizer) -> int:
    """Return the tokens of `after` up to the end-of-turn token that closes the reply to `before`.

    Worked out on the text, not with labkit's spans: `after` extends `before`'s text with the
    assistant's reply, then `<|im_end|>`; the engines keep everything before that token.
    """
    assert after.text.startswith(before.text)  # header off: append-only
    end = after.text.index("<|im_end|>", len(before.text))
    return len(tokenizer(after.text[:end], add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("name", BUNDLED)
def test_cli_header_off_reuses_the_whole_previous_request(name, smol_tok, capsys):
    path = data_path("sessions") / f"{name}.jsonl"
    args = (path, "--engine", "llamacpp", "--attribution", "off", "--json")
    code, out, _ = run_cli(capsys, *args, "--replies", "ignored")
    assert code == 0
    rows = json.loads(out)
    assert all(set(row) == {"n_tokens", "cached", "computed", "over_context"} for row in rows)
    assert not any(row["over_context"] for row in rows)  # 8,192 tokens of context are enough
    assert rows[0]["cached"] == 0
    for before, after in pairwise(rows):  # longer than before: no last-token rule applies
        assert after["n_tokens"] > before["n_tokens"]
        assert after["cached"] == before["n_tokens"]
    # The default keeps the replies too: each request reuses the previous one and its reply.
    code, out, _ = run_cli(capsys, *args)
    off = render_session(load_requests(path), smol_tok, attribution=False)
    expected = [0] + [reply_end(a, b, smol_tok) for a, b in pairwise(off)]
    assert code == 0 and [row["cached"] for row in json.loads(out)] == expected
    assert all(c > r["n_tokens"] for c, r in zip(expected[1:], rows, strict=False))


def test_engines_header_on_and_off_on_a_bundled_session(smol_tok):
    requests = load_requests(data_path("sessions") / f"{BUNDLED[0]}.jsonl")
    on = render_variant(requests, smol_tok, "header on")
    off = render_variant(requests, smol_tok, "header off")
    for replies in ("cached", "ignored"):
        rows = compare_engines({"on": on, "off": off}, replies=replies)
        for row in rows:
            if row["label"] == "on":
                assert row["cached"] < row["header_end"]
            elif row["turn"]:
                before, after = off[row["turn"] - 1], off[row["turn"]]
                held = reply_end(before, after, smol_tok) if replies == "cached" else None
                expected = {
                    "llamacpp": held or before.n_tokens,
                    "sglang": held or before.n_tokens,
                    "vllm": (held or before.n_tokens) // 16 * 16,
                    "anthropic": before.api_breakpoints[-1],  # its last cache_control block
                }[row["engine"]]
                assert row["cached"] == expected, (replies, row)


@pytest.mark.parametrize("engine", ["llamacpp", "vllm", "sglang"])
def test_cli_replies_cached_against_ignored(engine, smol_tok, capsys):
    path = data_path("sessions") / f"{BUNDLED[1]}.jsonl"
    results = {}
    for replies in ("cached", "ignored"):
        args = (path, "--engine", engine, "--attribution", "off", "--replies", replies)
        code, out, _ = run_cli(capsys, *args, "--json")
        assert code == 0
        results[replies] = json.loads(out)
        code, text, _ = run_cli(capsys, *args)
        assert f"replies {replies}" in text and "no eviction unless --capacity" in text
    computed = {k: sum(r["computed"] for r in rows) for k, rows in results.items()}
    # Every turn but the first has a reply of dozens of tokens before it: cached replies save them.
    assert computed["cached"] < computed["ignored"] - 13 * 20
    off = render_session(load_requests(path), smol_tok, attribution=False)
    assert results["cached"] == [
        {"n_tokens": r.n_tokens, "cached": r.cached, "computed": r.computed, "over_context": False}
        for r in simulate_session(off, engine, replies="cached")
    ]
    with pytest.raises(ValueError, match="cached, ignored"):
        simulate_session(off, engine, replies="sometimes")


def test_generated_after_is_the_next_requests_reply_through_end_of_turn(tiny_tok):
    rendered = [render_request(r, tiny_tok) for r in session(3)]
    generated = generated_after(rendered)
    assert [tiny_tok.decode(g) for g in generated[:2]] == ["ok 1<|im_end|>", "ok 2<|im_end|>"]
    assert generated[2] == ()  # the last request's reply is not in the session
    # Not the next turn of the same conversation (fewer messages): no reply is known.
    assert generated_after([rendered[2], rendered[0]])[0] == ()
    assert generated_after([[1, 2, 3], [1, 2, 3, 4]]) == [(), ()]  # plain token lists
    # llama.cpp keeps "ok 1" (4 tokens, one a byte) but not the end-of-turn token.
    results = simulate_session(rendered, "llamacpp")
    assert results[1].cached == rendered[0].n_tokens + 4
    ignored = simulate_session(rendered, "llamacpp", replies="ignored")
    assert ignored[1].cached == rendered[0].n_tokens


def test_api_orders_tools_first_and_a_tool_reorder_costs_everything(tiny_tok):
    requests = session(3)
    for request in requests:
        request["system"] = [{**request["system"][0], "cache_control": {"type": "ephemeral"}}]
    requests[2]["tools"] = requests[2]["tools"][::-1]  # an MCP reconnect: same tools, new order
    rendered = [render_request(r, tiny_tok) for r in requests]
    api_text = tiny_tok.decode(rendered[0].api_tokens)
    assert api_text.startswith("<|im_start|>system\n# Tools")  # tools -> system -> messages
    assert api_text.index("You are a coding agent") > api_text.index("## ls")
    assert sorted(rendered[0].api_tokens) == sorted(rendered[0].tokens)  # same text, reordered
    # Local template (system, then tools): reuse stops where the tools start differing.
    system_end = rendered[2].breakpoints[0]  # end of the system block, before the tools
    local = simulate_session(rendered, "llamacpp")[2].cached
    assert system_end < local < rendered[2].system_span[1]
    # Template order on an Anthropic-style cache: the system block's entry would still be read.
    template_order = simulate(AnthropicAPI(min_cacheable_tokens=0), rendered)[2]
    assert template_order.cached == system_end
    # The API's order: the tools come first, so the reorder invalidates every entry.
    api = simulate_session(rendered, "anthropic", min_cacheable_tokens=0)
    assert api[1].cached == rendered[0].api_breakpoints[-1] > 0  # unchanged tools: read as before
    assert api[2].cached == 0


def test_cli_reads_prompt_lines_with_special_tokens(tmp_path, capsys):
    first = "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
    second = first + "<|im_start|>assistant\n"
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": first}) + "\n" + json.dumps({"prompt": second}) + "\n")
    args = (path, "--engine", "llamacpp", "--model", "tiny-random")
    code, out, _ = run_cli(capsys, *args, "--json")
    assert code == 0
    # tiny-random is byte-level: one token a character, but each special token is one token
    specials = len("<|im_start|>") - 1, len("<|im_end|>") - 1
    n_first = len(first) - 2 * sum(specials)
    n_second = n_first + len("<|im_start|>assistant\n") - specials[0]
    assert json.loads(out) == [
        {"n_tokens": n_first, "cached": 0, "computed": n_first, "over_context": False},
        {"n_tokens": n_second, "cached": n_first, "computed": n_second - n_first}
        | {"over_context": False},
    ]
    code, out, _ = run_cli(capsys, *args)
    lines = out.strip().splitlines()
    columns = ["request", "n_tokens", "cached", "computed", "header_end", "cache_n", "prompt_n"]
    assert code == 0 and lines[1].split() == columns
    computed = n_second - n_first
    assert lines[3].split() == ["1", str(n_second), str(n_first), str(computed), "-"] + [
        str(n_first),
        str(computed),
    ]
    assert lines[4].split()[:2] == ["total", str(n_first + n_second)]


def test_missing_file_and_unknown_engine_fail_without_a_traceback(tmp_path):
    for args, message in (
        ([str(tmp_path / "nope.jsonl"), "--engine", "vllm"], "No session file"),
        (
            [str(data_path("sessions") / f"{BUNDLED[0]}.jsonl"), "--engine", "tgi"],
            "invalid choice: 'tgi'",
        ),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "labkit", "simulate", *args], capture_output=True, text=True
        )
        assert result.returncode != 0
        assert message in result.stderr and "Traceback" not in result.stderr


def test_malformed_line_is_named(tmp_path, capsys):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps({"prompt": "hello"}) + "\n{not json\n")
    code, _, err = run_cli(capsys, path, "--engine", "sglang", "--model", "tiny-random")
    assert code == 2 and "line 2" in err and "not valid JSON" in err


def test_options_that_do_not_apply_are_refused(capsys):
    path = data_path("sessions") / f"{BUNDLED[0]}.jsonl"
    code, _, err = run_cli(capsys, path, "--engine", "anthropic", "--block-size", "16")
    assert code == 2 and "--block-size" in err and "anthropic" in err
    assert engine_options("vllm", block_size=16, capacity_tokens=100) == {
        "block_size": 16,
        "capacity_blocks": 6,
    }
    assert engine_options("llamacpp", slots=2, cache_ram=False) == {
        "n_slots": 2,
        "cache_ram": False,
    }
    assert engine_options("sglang", block_size=4) == {"page_size": 4}


def test_move_header_to_end_puts_the_line_after_the_last_breakpoint(tiny_tok):
    requests = apply_variant(session(), "header at end", seed=1)
    for request in requests:
        assert not any(HEADER_LINE.search(b["text"]) for b in request["system"])
        assert HEADER_LINE.match(request["messages"][-1]["content"][-1]["text"])
    rendered = [render_request(r, tiny_tok) for r in requests]
    results = simulate_session(rendered, "llamacpp")
    for before, result in zip(rendered, results[1:], strict=False):
        assert before.breakpoints[-1] < before.header_span[0]
        # everything before the previous request's line (and the newline joining it) is reused
        assert result.cached == before.header_span[0] - 1


def test_move_header_to_end_openai_and_prompt_shapes():
    openai = {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]}
    moved = move_header_to_end(openai, cch="00000")
    assert moved["messages"][-1]["content"] == "hi\n" + billing_header("00000")
    assert openai["messages"][-1]["content"] == "hi"  # the argument is left as it was
    with pytest.raises(ValueError, match="already-rendered"):
        move_header_to_end({"prompt": "x"})
    with pytest.raises(ValueError, match="already-rendered"):
        add_timestamp({"prompt": "x"}, 0)


def test_timestamp_comes_first_and_busts_the_cache_inside_its_line(tiny_tok):
    request = session(1)[0]
    stamped = add_timestamp(request, TIMESTAMP_START_S + 7)
    assert stamped["system"][0]["text"] == "Current time (UTC): 2026-01-05 09:00:07"
    assert stamped["system"][1:] == request["system"]
    assert add_timestamp(request, 0, fmt="%Y-%m-%d")["system"][0]["text"].endswith("1970-01-01")
    rendered = render_variant(session(), tiny_tok, "timestamp")
    line_end = rendered[0].text.index("\n", rendered[0].text.index("Current time"))
    for result in simulate_session(rendered, "llamacpp")[1:]:
        assert 0 < result.cached < line_end  # tiny-random: one token a character


def test_shuffle_tools_is_a_seeded_permutation():
    request = session(1)[0]
    names = [t["name"] for t in request["tools"]]
    orders = {tuple(t["name"] for t in shuffle_tools(request, seed)["tools"]) for seed in range(8)}
    assert len(orders) > 1 and all(sorted(order) == sorted(names) for order in orders)
    assert shuffle_tools(request, 3) == shuffle_tools(request, 3)
    assert [t["name"] for t in request["tools"]] == names  # the argument is left as it was


def test_variants_header_on_matches_render_session(tiny_tok):
    requests = session()
    on = render_variant(requests, tiny_tok, "header on", seed=5)
    assert [r.tokens for r in on] == [r.tokens for r in render_session(requests, tiny_tok, seed=5)]
    with pytest.raises(ValueError, match="Unknown variant"):
        apply_variant(requests, "header sideways")


def test_shorten_session_keeps_it_append_only(tiny_tok):
    requests = load_requests(data_path("sessions") / f"{BUNDLED[0]}.jsonl")
    short = shorten_session(requests, tiny_tok, system_tokens=300, n_requests=4, block_tokens=20)
    assert len(short) == 4 and all("tools" not in r for r in short)
    system_bytes = sum(len(b["text"].encode()) for b in short[0]["system"])
    assert 150 < system_bytes <= 300  # tiny-random: one token a byte
    assert short[0]["system"][-1]["cache_control"] == {"type": "ephemeral"}
    for request in short:
        for message in request["messages"]:
            for block in message["content"]:
                text = block.get("text", block.get("content", ""))
                assert not isinstance(text, str) or len(text.encode()) <= 20
    rendered = render_session(short, tiny_tok, attribution=False)
    for before, after in pairwise(rendered):
        assert after.tokens[: before.n_tokens] == before.tokens
    assert "tools" in requests[0]  # the input is left as it was


def test_cost_arithmetic_by_hand():
    # 1,000 plain + 2,000 written at 1.25x + 3,000 read at 0.1x = 3,800 weighted tokens at $3/MTok
    assert input_cost_usd(
        1000, 2000, 3000, base_input_usd_per_mtok=3.0, write_multiplier=1.25, read_multiplier=0.1
    ) == pytest.approx(0.0114)
    first = {"tokens": list(range(2000)), "breakpoints": [2000]}
    second = {"tokens": list(range(2500)), "breakpoints": [2500]}
    cached = api_session_cost([first, second], base_input_usd_per_mtok=3.0)
    # request 1 writes 2,000 ($0.0075); request 2 reads 2,000 ($0.0006) and writes 500 ($0.001875)
    assert cached == {
        "input_tokens": 0,
        "cache_write_tokens": 2500,
        "cache_read_tokens": 2000,
        "cost_usd": pytest.approx(0.009975),
    }
    plain = api_session_cost([first, second], base_input_usd_per_mtok=3.0, caching=False)
    assert plain["input_tokens"] == 4500 and plain["cost_usd"] == pytest.approx(0.0135)


def test_fit_and_projection_by_hand():
    fit = fit_prefill_time([100, 200, 400], [0.15, 0.25, 0.45], device_name="test")
    assert fit.s_per_token == pytest.approx(0.001) and fit.intercept_s == pytest.approx(0.05)
    assert fit.r2 == pytest.approx(1.0)
    projected = project_turn_s(fit, 60_000, 400)
    assert projected == pytest.approx({"header on": 60.05, "header off": 0.45})
    with pytest.raises(ValueError, match="at least 3"):
        fit_prefill_time([1, 2], [1.0, 2.0])
    config = {"num_layers": 2, "num_attention_heads": 4, "num_kv_heads": 2, "head_dim": 16}
    # 3 tokens after 2 cached: 3 * 2 + (1 + 2 + 3) = 12 (query, key) pairs,
    # each 4 * head_dim * heads * layers = 4 * 16 * 4 * 2 FLOPs
    assert prefill_flops(config, 1000, 3, 2) == (6000, 6144)


def test_replay_reuses_what_the_prefix_cache_finds():
    model = tiny_random_model()
    base = list(range(3, 40))
    off = [base, base + [50, 51, 52], base + [50, 51, 52, 60, 61]]
    on = [[first] + request[1:] for first, request in zip((7, 8, 9), off, strict=True)]
    turns = replay_sessions(model, {"on": on, "off": off}, repeats=2)
    assert [t.tokens_reused for t in turns["off"]] == [0, len(off[0]), len(off[1])]
    assert [t.tokens_computed for t in turns["on"]] == [len(r) for r in on]
    assert all(0 < t.min_s <= t.prefill_s for t in turns["on"] + turns["off"])


def test_replay_store_is_the_engine_it_is_compared_with():
    # Request 2 shares 20 tokens with request 0 but only 10 with request 1 (the issue-17 case).
    model = tiny_random_model()
    first = list(range(3, 40))
    second = first[:10] + [90] * 20
    third = first[:20] + [91] * 15
    requests = [first, second, third]
    last = replay_sessions(model, {"s": requests}, repeats=1, keep="last")["s"]
    every = replay_sessions(model, {"s": requests}, repeats=1, keep="all")["s"]
    assert [t.tokens_reused for t in last] == [0, 10, 10]  # one slot: the previous request only
    assert [t.tokens_reused for t in every] == [0, 10, 20]  # every earlier request
    one_slot = simulate_session(requests, "llamacpp", cache_ram=False)  # one slot, no RAM cache
    assert [t.tokens_reused for t in last] == [r.cached for r in one_slot]
    assert [t.tokens_reused for t in every] == [
        r.cached for r in simulate_session(requests, "sglang")
    ]
    with pytest.raises(ValueError, match="one llama.cpp slot"):
        replay_sessions(model, {"s": requests}, keep="slot")


def test_rows_rates_figure_and_widget(tiny_tok):
    rendered = {
        "s": {v: render_variant(session(), tiny_tok, v) for v in ("header on", "header off")}
    }
    results = simulate_session(rendered["s"]["header off"], "sglang", replies="ignored")
    rows = turn_rows(rendered["s"]["header off"], results)
    assert [r["cached"] for r in rows[1:]] == [r.n_tokens for r in results[:-1]]
    reused = sum(r.cached for r in results[1:]) / sum(r.n_tokens for r in results[1:])
    assert hit_rate(results) == pytest.approx(reused) and 0 < reused < 1
    assert cumulative([3, 4, 5]) == [3, 7, 12]
    table = compare_engines({"on": rendered["s"]["header on"]}, engines=("vllm", "llamacpp"))
    assert len(turns_figure(table).data) == 2 * 3  # cached, computed, header ends per engine
    widget = session_explorer(rendered)
    summary = widget.children[3]
    assert "hit rate" in summary.value
    engine, (_, capacity) = widget.children[0].children[2], widget.children[1].children
    longest = max(r.n_tokens for r in rendered["s"]["header off"])
    assert longest > capacity.step  # a pool of one step cannot hold a whole prompt
    engine.value, capacity.value = "vllm", capacity.step
    assert "Cannot show this setting" in summary.value and "capacity_blocks" not in summary.value
    capacity.value = 0  # unbounded again: the figure and the hit rate come back
    assert "hit rate" in summary.value
