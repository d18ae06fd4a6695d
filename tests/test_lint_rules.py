"""`labkit lint`, second version: content blocks, parameter busters, hosted-API rules, --fail-on.

Each rule is checked on a request pair written for it, with the tiny model's byte-level
tokenizer (no files needed).
"""

import base64
import copy
import json

import pytest

from labkit.cli import main
from labkit.engines.hosted_api import load_prompt_caching_apis
from labkit.lint import format_report, lint_file, lint_requests, read_captured
from labkit.lint.hosted import hosted_segments, lint_hosted
from labkit.resources import data_path
from labkit.sessions import block_digest, render_request

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(64))).decode()
PNG_AGAIN = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(64)) + b"\x00").decode()
EPHEMERAL = {"type": "ephemeral"}
LONG = data_path("long_system_prompt.txt").read_text(encoding="utf-8")


def image(data: str = PNG) -> dict:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


def request(**changes) -> dict:
    """Return an Anthropic request: system, one tool, a user turn with an image, a reply, a turn."""
    base = {
        "model": "claude-sonnet-4-5",
        "system": [{"type": "text", "text": "You are a careful coding agent."}],
        "tools": [
            {
                "name": "read_file",
                "description": "Read a file from the repository.",
                "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
            }
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is in this screenshot?"},
                                         image()]},
            {"role": "assistant", "content": "A failing test run: test_parse_amount fails."},
            {"role": "user", "content": "Fix it, please."},
        ],
    }  # fmt: skip
    base.update(copy.deepcopy(changes))
    return base


def grown(req: dict) -> dict:
    """Return `req` with one more assistant turn and user turn (append-only)."""
    out = copy.deepcopy(req)
    out["messages"] += [
        {"role": "assistant", "content": "I'll read the parser."},
        {"role": "user", "content": "Go on."},
    ]
    return out


def lint_pair(tok, prev, cur, **kwargs):
    return lint_requests([prev, cur], tok, api=kwargs.pop("api", None), **kwargs)


def write_jsonl(path, requests):
    path.write_text("".join(json.dumps(r) + "\n" for r in requests))
    return path


# -- content blocks --------------------------------------------------------------------------------


def test_image_blocks_are_read_and_rendered_by_their_digest(tiny_tok, tmp_path):
    first, second = request(), grown(request())
    requests, errors = read_captured(write_jsonl(tmp_path / "img.jsonl", [first, second]))
    assert errors == [] and len(requests) == 2
    text = render_request(first, tiny_tok).text
    assert f"<image sha256={block_digest(image())}>" in text and PNG not in text
    report = lint_pair(tiny_tok, first, second)
    assert report.requests[1].cause == "append-only" and report.lost_tokens == 0


def test_a_re_encoded_image_is_history_edited_inside_an_image(tiny_tok):
    prev = grown(request())
    cur = copy.deepcopy(prev)
    cur["messages"][0]["content"][1] = image(PNG_AGAIN)
    row = lint_pair(tiny_tok, prev, cur).requests[1]
    assert row.cause == "edited-image"
    assert row.where == "messages[0].content[1]"
    assert block_digest(image()) in row.detail and block_digest(image(PNG_AGAIN)) in row.detail
    assert 0 < row.reused_tokens < render_request(prev, tiny_tok).n_tokens
    assert row.lost_tokens > 0


def test_documents_openai_images_and_unknown_blocks_never_fail_the_file(tiny_tok, tmp_path):
    document = {"type": "document", "source": {"type": "text", "data": "Release notes"}}
    anthropic = request()
    anthropic["messages"][0]["content"] += [document, {"type": "some_future_block", "x": 1}]
    openai = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": [
                {"type": "text", "text": "Describe it."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            ]},
        ],
    }  # fmt: skip
    path = write_jsonl(tmp_path / "mixed.jsonl", [anthropic, openai])
    requests, errors = read_captured(path)
    assert errors == [] and len(requests) == 2
    text = render_request(openai, tiny_tok).text
    assert "<image_url sha256=" in text and "<input_audio sha256=" in text
    assert "<some_future_block sha256=" in render_request(anthropic, tiny_tok).text


# -- request-parameter busters -------------------------------------------------------------------


def test_a_model_switch_loses_the_whole_cache(tiny_tok):
    prev, cur = request(), grown(request(model="claude-haiku-4-5"))
    row = lint_pair(tiny_tok, prev, cur).requests[1]
    assert row.cause == "model-switch" and row.reused_tokens == 0
    assert row.detail == "claude-sonnet-4-5 → claude-haiku-4-5"
    assert row.lost_tokens == render_request(prev, tiny_tok).n_tokens


@pytest.mark.parametrize(
    ("changes", "cause"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking-changed"),
        ({"tool_choice": {"type": "tool", "name": "read_file"}}, "tool-choice-changed"),
    ],
)
def test_thinking_and_tool_choice_lose_the_messages_but_keep_system_and_tools(
    tiny_tok, changes, cause
):
    prev, cur = request(), grown(request(**changes))
    row = lint_pair(tiny_tok, prev, cur).requests[1]
    rendered = render_request(cur, tiny_tok)
    assert row.cause == cause
    assert row.reused_tokens == rendered.system_span[1]  # the system text and tools, no more
    assert 0 < row.reused_tokens < render_request(prev, tiny_tok).n_tokens
    assert row.lost_tokens > 0
    same = lint_pair(tiny_tok, request(**changes), grown(request(**changes))).requests[1]
    assert same.cause == "append-only"  # set once for the session: no loss


def test_a_tool_schema_change_is_named(tiny_tok):
    prev = request()
    cur = grown(request())
    cur["tools"][0]["input_schema"]["properties"]["start_line"] = {"type": "integer"}
    row = lint_pair(tiny_tok, prev, cur).requests[1]
    assert row.cause == "tool-schema-changed"
    assert row.where == "tools[0].input_schema" and "read_file" in row.detail
    renamed = grown(request())
    renamed["tools"][0]["name"] = "open_file"
    assert lint_pair(tiny_tok, prev, renamed).requests[1].cause == "tools-changed"


def test_only_the_final_user_message_differing_is_expected(tiny_tok):
    prev = request()
    cur = request()
    cur["messages"][-1]["content"] = "Explain the failure instead."
    report = lint_pair(tiny_tok, prev, cur)
    row = report.requests[1]
    assert row.cause == "final-message-only" and row.lost_tokens == 0
    assert 0 < row.reused_tokens < row.n_tokens and report.lost_tokens == 0
    edited = request()
    edited["messages"][1]["content"] = "Something else."  # an earlier turn: a real buster
    assert lint_pair(tiny_tok, prev, edited).requests[1].cause == "edited-history"


def test_side_requests_are_skipped_each_request_extends_its_own_conversation(tiny_tok):
    title = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "Title?"}]}
    subagent = request(messages=[{"role": "user", "content": "Search the code for parse_amount."}])
    main_1, main_2 = request(), grown(request())
    report = lint_requests([main_1, title, subagent, main_2, grown(subagent)], tiny_tok, api=None)
    rows = report.requests
    assert [r.previous for r in rows] == [None, 0, 1, 0, 2]
    assert rows[1].cause == "model-switch"  # a new conversation: compared with what came before
    assert rows[3].cause == "append-only" and rows[4].cause == "append-only"
    assert "(vs #0) —" in format_report(report) and "(vs #2) —" in format_report(report)


# -- hosted-API rules ------------------------------------------------------------------------------


def long_request(**changes) -> dict:
    """Return a request whose tools and system prompt are each above 1,024 tokens (byte-level)."""
    req = request(**changes)
    req["tools"][0]["description"] = LONG[:2000]
    req["tools"][0]["cache_control"] = EPHEMERAL
    req["system"] = [{"type": "text", "text": LONG[2000:4500], "cache_control": EPHEMERAL}]
    req["messages"][-1]["content"] = [
        {"type": "text", "text": "Fix it, please.", "cache_control": EPHEMERAL}
    ]
    return req


def test_hosted_prefix_is_tools_then_system_then_messages(tiny_tok):
    where = [w for w, _, _ in hosted_segments(long_request())]
    assert where[:3] == ["tools[0]", "system[0]", "messages[0].content[0]"]
    # A system edit: the hosted API still reads the tools; a local template (system first) less.
    prev, cur = long_request(), grown(long_request())
    cur["system"][0]["text"] = "Edited. " + cur["system"][0]["text"]
    report = lint_pair(tiny_tok, prev, cur, api="anthropic")
    tools_tokens = len(tiny_tok(hosted_segments(cur)[0][1], add_special_tokens=False)["input_ids"])
    assert report.hosted.requests[1].cached_tokens == tools_tokens
    # Thinking turned on: the API keeps tools and system, and re-reads the messages.
    thinking = grown(long_request(thinking={"type": "enabled", "budget_tokens": 1024}))
    system_end = sum(
        len(tiny_tok(text, add_special_tokens=False)["input_ids"])
        for where, text, _ in hosted_segments(thinking)[:2]
    )
    report = lint_pair(tiny_tok, prev, thinking, api="anthropic")
    assert report.hosted.requests[1].cached_tokens == system_end
    assert system_end < report.hosted.requests[0].n_tokens
    # Another model: its own cache, nothing read.
    other = lint_pair(tiny_tok, prev, grown(long_request(model="claude-opus-4-1")), api="anthropic")
    assert other.hosted.requests[1].cached_tokens == 0
    # A tool edit: nothing is read on the hosted API, while locally the system text is reused.
    cur = grown(long_request())
    cur["tools"][0]["description"] += " Also images."
    report = lint_pair(tiny_tok, prev, cur, api="anthropic")
    assert report.hosted.requests[1].cached_tokens == 0
    assert report.requests[1].reused_tokens > 1024


def test_hosted_minimum_ttl_and_cost(tiny_tok):
    figures = load_prompt_caching_apis()["anthropic"]
    price = figures["example_prices_usd_per_mtok"]["claude-sonnet-4-5"]
    prev, cur = long_request(t_s=0), grown(long_request(t_s=60))
    hosted = lint_hosted([prev, cur], tiny_tok, api="anthropic")
    first, second = hosted.requests
    assert first.cached_tokens == 0 and first.written_tokens == first.n_tokens
    assert second.cached_tokens == first.n_tokens and second.cause == ""
    expected = (
        second.cached_tokens * price["cache_read"]
        + second.written_tokens * price["cache_write_5m"]
        + second.uncached_tokens * price["base_input"]
    ) / 1e6
    assert second.cost_usd == pytest.approx(expected)
    assert second.cost_usd < second.n_tokens * price["base_input"] / 1e6  # reads are cheaper
    late = grown(long_request(t_s=60 + figures["ttl_s"]["5m"] + 1))
    hosted = lint_hosted([prev, late], tiny_tok, api="anthropic")
    assert hosted.requests[1].cause == "ttl-expired" and hosted.requests[1].cached_tokens == 0
    short = [request(model="claude-haiku-4-5"), grown(request(model="claude-haiku-4-5"))]
    for r in short:
        r["messages"][-1]["content"] = [{"type": "text", "text": "Hi", "cache_control": EPHEMERAL}]
    hosted = lint_hosted(short, tiny_tok, api="anthropic")
    assert hosted.min_cacheable_tokens == 4096  # Haiku 4.5, from the data file
    assert {r.cause for r in hosted.requests} == {"below-minimum"}
    assert all(r.cached_tokens == r.written_tokens == 0 for r in hosted.requests)


def test_hosted_rules_come_from_the_model_name_and_reach_the_report(tiny_tok, tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [long_request(t_s=0), grown(long_request(t_s=900))])
    report = lint_file(path, tiny_tok)
    assert report.hosted is not None and report.hosted.api == "anthropic"
    assert "ttl-expired" in {c.cause for c in report.causes}
    assert lint_file(path, tiny_tok, api="none").hosted is None
    captures = [  # a capture with headers and a body, timed by an ISO capture time
        {"captured_at": f"2026-03-04T14:{minute:02d}:00Z", "headers": {"x-api-key": "k"},
         "body": json.dumps(body)}
        for minute, body in ((0, long_request()), (10, grown(long_request())))
    ]  # fmt: skip
    report = lint_file(write_jsonl(tmp_path / "captures.jsonl", captures), tiny_tok)
    late = report.hosted.requests[1]
    assert late.gap_s == 600 and late.cause == "ttl-expired"


# -- the command line: --fail-on and exit codes --------------------------------------------------


def test_fail_on_and_exit_codes(tmp_path, capsys, monkeypatch):
    args = ["--model", "tiny-random", "--api", "none"]
    switch = write_jsonl(tmp_path / "switch.jsonl", [request(), grown(request(model="gpt-4o"))])
    assert main(["lint", str(switch), *args]) == 0
    assert main(["lint", str(switch), *args, "--fail-on", "model-switch"]) == 4
    assert main(["lint", str(switch), *args, "--fail-on", "any"]) == 4
    assert main(["lint", str(switch), *args, "--fail-on", "timestamp,edited-image"]) == 0
    assert main(["lint", str(switch), *args, "--fail-on", "no-such-cause"]) == 2
    assert "unknown cause(s) no-such-cause" in capsys.readouterr().err
    clean = write_jsonl(tmp_path / "clean.jsonl", [request(), grown(request())])
    assert main(["lint", str(clean), *args, "--fail-on", "any"]) == 0
    final = request()
    final["messages"][-1]["content"] = "Another question."
    expected = write_jsonl(tmp_path / "eval.jsonl", [request(), final])
    assert main(["lint", str(expected), *args, "--fail-on", "any"]) == 0
    partial = tmp_path / "partial.jsonl"
    partial.write_text(clean.read_text() + "{not json\n")
    assert main(["lint", str(partial), *args]) == 1
    assert main(["lint", str(partial), *args, "--fail-on", "any"]) == 1
    unreadable = tmp_path / "none.jsonl"
    unreadable.write_text("{not json\n")
    assert main(["lint", str(unreadable), *args]) == 2
    capsys.readouterr()

    def crash(*a, **k):
        raise KeyError("boom")

    monkeypatch.setattr("labkit.lint.cli.lint_file", crash)
    assert main(["lint", str(clean), *args]) == 3
    assert "internal error" in capsys.readouterr().err


def test_openai_caches_automatically_above_its_minimum_and_prices_nothing(tiny_tok):
    def chat(system: str, turns: int) -> dict:
        messages = [{"role": "system", "content": system}]
        for k in range(turns):
            messages += [{"role": "user", "content": f"Question {k}?"},
                         {"role": "assistant", "content": f"Answer {k}."}]  # fmt: skip
        return {"model": "gpt-4o", "messages": messages[:-1]}

    minimum = load_prompt_caching_apis()["openai"]["min_cacheable_tokens"]
    hosted = lint_hosted([chat(LONG, 1), chat(LONG, 2)], tiny_tok, api="openai")
    first, second = hosted.requests
    assert first.cached_tokens == 0 and second.cached_tokens >= minimum
    assert second.cached_tokens == first.n_tokens  # the whole first prompt is a prefix
    assert hosted.cost_usd is None and second.written_tokens == 0
    short = lint_hosted([chat("Be brief.", 1), chat("Be brief.", 2)], tiny_tok, api="openai")
    assert [r.cached_tokens for r in short.requests] == [0, 0]
