"""Tests for labkit.sessions: loading, checking and rendering coding-agent sessions."""

import copy
import json
import re
from itertools import pairwise
from pathlib import Path

import pytest

from labkit.sessions import (
    HEADER_LINE,
    SessionFormatError,
    load_requests,
    render_request,
    render_session,
    validate_request,
    with_attribution,
)
from labkit.sessions.header import billing_header

SESSIONS = sorted((Path(__file__).parents[1] / "data" / "sessions").glob("*.jsonl"))
EPHEMERAL = {"type": "ephemeral"}
READ_FILE = {
    "name": "read_file",
    "description": "Read a file.",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
}


def small_session() -> list[dict]:
    """Return three requests of a tiny_tok agent session, each extending the one before."""
    system = [{"type": "text", "text": "You are a coding agent.", "cache_control": EPHEMERAL}]
    turns = [
        {"role": "user", "content": [{"type": "text", "text": "Why does test_a fail?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading the test."},
                {"type": "tool_use", "id": "t1", "name": "read_file", "input": {"path": "a.py"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "x is undefined."}]},
        {"role": "user", "content": [{"type": "text", "text": "Fix it."}]},
    ]
    requests = []
    for end in (1, 3, 5):
        messages = copy.deepcopy(turns[:end])
        messages[-1]["content"][-1]["cache_control"] = EPHEMERAL
        requests.append(
            {"model": "m", "max_tokens": 64, "system": system, "tools": [READ_FILE],
             "messages": messages}
        )  # fmt: skip
    return copy.deepcopy(requests)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# Loading and checking


def test_load_json_and_jsonl_give_the_same_requests(tmp_path):
    requests = small_session()
    lines = [json.dumps(r) for r in requests]
    jsonl = write_jsonl(tmp_path / "s.jsonl", [lines[0], "", lines[1], "   ", lines[2]])
    as_list = tmp_path / "s.json"
    as_list.write_text(json.dumps(requests, indent=2))
    one = tmp_path / "one.json"
    one.write_text(json.dumps(requests[0], indent=2))
    assert load_requests(jsonl) == requests
    assert load_requests(as_list) == requests
    assert load_requests(one) == requests[:1]


def test_load_names_the_line_of_invalid_json(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [json.dumps(small_session()[0]), "", "{not json"])
    with pytest.raises(SessionFormatError, match=r"bad\.jsonl: line 3: not valid JSON"):
        load_requests(path)


def test_load_names_request_line_and_field(tmp_path):
    bad = small_session()[1]
    bad["messages"][2]["content"][0] = {"image_url": {"url": "x"}}  # a block without a type
    path = write_jsonl(tmp_path / "s.jsonl", ["", json.dumps(small_session()[0]), json.dumps(bad)])
    with pytest.raises(SessionFormatError) as err:
        load_requests(path)
    assert str(err.value) == (
        f"{path}: request 1 (line 3): messages[2].content[0].type: missing or not a string"
    )


def test_load_json_list_names_the_request(tmp_path):
    requests = small_session()
    requests[2]["messages"][0]["role"] = "robot"
    path = tmp_path / "s.json"
    path.write_text(json.dumps(requests))
    with pytest.raises(SessionFormatError, match=r"s\.json: request 2: messages\[0\]\.role"):
        load_requests(path)


def test_load_missing_or_empty_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No session file"):
        load_requests(tmp_path / "missing.jsonl")
    with pytest.raises(SessionFormatError, match="no requests found"):
        load_requests(write_jsonl(tmp_path / "empty.jsonl", [""]))


def _broken(edit) -> dict:
    request = small_session()[1]
    edit(request)
    return request


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ([], "request: must be an object"),
        ({"model": "m"}, "messages: missing"),
        (_broken(lambda r: r.update(system=[{"type": "image"}])), "system[0]: expected a text"),
        (_broken(lambda r: r["tools"][0].pop("input_schema")), "tools[0].input_schema: missing"),
        (_broken(lambda r: r["tools"].append("grep")), "tools[1]: must be an object"),
        (_broken(lambda r: r["messages"][1]["content"][1].update(input="a.py")),
         "messages[1].content[1].input: missing or wrong type"),
        (_broken(lambda r: r["messages"][1]["content"].append(r["messages"][2]["content"][0])),
         "messages[1].content[2]: a tool_result block does not belong in a assistant message"),
        (_broken(lambda r: r["messages"][2]["content"][0].update(content=[{"type": "text"}])),
         "messages[2].content[0].content[0].text: missing or not a string"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None,
          "tool_calls": [{"id": "c1", "type": "function", "function": {"arguments": "{}"}}]}]},
         "messages[1].tool_calls[0].function.name: missing"),
        ({"prompt": 42}, "prompt: must be a string"),
    ],
)  # fmt: skip
def test_validate_names_the_field(request_, field):
    with pytest.raises(SessionFormatError) as err:
        validate_request(request_)
    assert str(err.value).startswith(field)
    assert isinstance(err.value, ValueError)


# Rendering


def test_render_maps_blocks_to_chat_template_messages(tiny_tok):
    request = small_session()[1]
    rendered = render_request(request, tiny_tok)
    tool_call = '<tool_call id=t1>{"name": "read_file", "input": {"path": "a.py"}}</tool_call>'
    tools = json.dumps(READ_FILE["input_schema"])
    system = rendered.text[: rendered.text.index("<|im_end|>")]
    assert system.startswith("<|im_start|>system\nYou are a coding agent.\n\n# Tools\n\n")
    assert system.endswith(f"## read_file\nRead a file.\nInput schema: {tools}")
    expected = [
        {"role": "system", "content": system.removeprefix("<|im_start|>system\n")},
        {"role": "user", "content": "Why does test_a fail?"},
        {"role": "assistant", "content": "Reading the test.\n" + tool_call},
        {"role": "user", "content": "<tool_result id=t1>x</tool_result>"},
    ]
    by_template = tiny_tok.apply_chat_template(expected, add_generation_prompt=True, tokenize=True)
    assert rendered.text == tiny_tok.apply_chat_template(expected, add_generation_prompt=True,
                                                     tokenize=False)  # fmt: skip
    assert rendered.tokens == list(by_template["input_ids"])
    assert rendered.n_tokens == len(rendered.tokens)
    assert rendered.shape == "anthropic" and rendered.t_s is None


def test_render_is_deterministic_and_keeps_key_order(tiny_tok):
    request = small_session()[1]
    first, again = (
        render_request(request, tiny_tok),
        render_request(copy.deepcopy(request), tiny_tok),
    )
    assert first.tokens == again.tokens and first.text == again.text
    swapped = copy.deepcopy(request)
    swapped["messages"][1]["content"][1]["input"] = {"mode": "r", "path": "a.py"}
    reordered = copy.deepcopy(swapped)
    reordered["messages"][1]["content"][1]["input"] = {"path": "a.py", "mode": "r"}
    a, b = render_request(swapped, tiny_tok), render_request(reordered, tiny_tok)
    assert '{"mode": "r", "path": "a.py"}' in a.text and '{"path": "a.py", "mode": "r"}' in b.text
    assert a.tokens != b.tokens and a.n_tokens == b.n_tokens


def test_breakpoints_end_where_cached_blocks_end(tiny_tok):
    rendered = render_request(small_session()[1], tiny_tok)
    assert len(rendered.breakpoints) == 2
    system_end, last_end = rendered.breakpoints
    assert tiny_tok.decode(rendered.tokens[:system_end]).endswith("You are a coding agent.")
    assert tiny_tok.decode(rendered.tokens[system_end : system_end + 1]) == "\n"
    assert tiny_tok.decode(rendered.tokens[:last_end]).endswith("x</tool_result>")
    assert rendered.tokens[last_end] == tiny_tok.convert_tokens_to_ids("<|im_end|>")
    start, end = rendered.system_span
    assert tiny_tok.decode(rendered.tokens[start:end]).startswith("You are a coding agent.")
    assert rendered.tokens[end] == tiny_tok.convert_tokens_to_ids("<|im_end|>")


def test_t_s_is_read_when_present(tiny_tok):
    request = {**small_session()[0], "t_s": 12.5}
    assert render_request(request, tiny_tok).t_s == 12.5


def test_template_without_chat_template_fails_clearly(tiny_tok):
    plain = copy.copy(tiny_tok)
    plain.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        render_request(small_session()[0], plain)


# Attribution


def test_header_on_changes_tokens_inside_the_header_line(tiny_tok):
    rendered = render_session(small_session(), tiny_tok, attribution=True, seed=0)
    cchs = [re.search(r"cch=([0-9a-f]{5});", r.text)[1] for r in rendered]
    assert len(set(cchs)) == len(cchs)
    for before, after in pairwise(rendered):
        start, end = before.header_span
        assert tiny_tok.decode(before.tokens[start:end]).startswith("x-anthropic-billing-header:")
        assert start < common_prefix(before.tokens, after.tokens) < end
    again = render_session(small_session(), tiny_tok, attribution="on", seed=0)
    assert [r.tokens for r in again] == [r.tokens for r in rendered]
    other = render_session(small_session(), tiny_tok, seed=1)
    assert other[0].tokens != rendered[0].tokens


def test_header_off_renders_append_only(tiny_tok):
    rendered = render_session(small_session(), tiny_tok, attribution="0")
    for before, after in pairwise(rendered):
        assert before.header_span is None
        assert after.tokens[: before.n_tokens] == before.tokens


def test_attribution_off_removes_a_captured_header():
    captured = with_attribution(small_session()[0], True, cch="abcde")
    assert captured["system"][0] == {"type": "text", "text": billing_header("abcde")}
    assert len(captured["system"]) == 2
    replaced = with_attribution(captured, "on", cch="12345")
    assert [b["text"] for b in replaced["system"]][:2] == [
        billing_header("12345"),
        "You are a coding agent.",
    ]
    for setting in (False, "0", "off", "false", "no"):
        assert with_attribution(captured, setting) == small_session()[0]
    as_string = {**small_session()[0], "system": billing_header("abcde") + "\nYou are X."}
    assert with_attribution(as_string, False)["system"] == "You are X."


# Other shapes


def openai_request() -> dict:
    return {
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": "Why does test_a fail?"},
            {
                "role": "assistant",
                "content": "Reading the test.",
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": '{"path": "a.py"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "x"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "read_file",
                    "description": "Read a file.",
                    "parameters": READ_FILE["input_schema"],
                },
            }
        ],
    }


def test_openai_shape_renders_like_the_anthropic_shape(tiny_tok):
    rendered = render_request(openai_request(), tiny_tok)
    assert rendered.shape == "openai"
    assert rendered.text == render_request(small_session()[1], tiny_tok).text
    off = render_session([openai_request()], tiny_tok, attribution=False)[0]
    assert off.tokens == rendered.tokens


def test_openai_attribution_is_the_first_line_of_the_system_message(tiny_tok):
    on = with_attribution(openai_request(), True, cch="abcde")
    assert on["messages"][0]["content"] == billing_header("abcde") + "\nYou are a coding agent."
    assert with_attribution(on, False) == openai_request()
    no_system = {"messages": [{"role": "user", "content": "hi"}, {"role": "tool",
                 "tool_call_id": "t", "content": "x"}]}  # fmt: skip
    added = with_attribution(no_system, True, cch="abcde")
    assert added["messages"][0] == {"role": "system", "content": billing_header("abcde")}
    rendered = render_request(added, tiny_tok)
    start, end = rendered.header_span
    assert tiny_tok.decode(rendered.tokens[:start]) == "<|im_start|>system\n"
    assert tiny_tok.decode(rendered.tokens[start:end]) == billing_header("abcde")


def test_prompt_lines_are_tokenized_with_special_tokens(tiny_tok, tmp_path):
    header = billing_header("abcde")
    text = f"<|im_start|>system\n{header}\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
    path = write_jsonl(tmp_path / "p.jsonl", [json.dumps({"prompt": text})])
    [request] = load_requests(path)
    rendered = render_request(request, tiny_tok)
    im_start = tiny_tok.convert_tokens_to_ids("<|im_start|>")
    assert rendered.shape == "prompt" and rendered.tokens[0] == im_start
    assert rendered.tokens == tiny_tok(text, add_special_tokens=False)["input_ids"]
    assert rendered.tokens.count(im_start) == 2
    assert tiny_tok.decode(rendered.tokens[slice(*rendered.header_span)]) == header
    [on] = render_session([request], tiny_tok, attribution=True)
    [off] = render_session([request], tiny_tok, attribution=False)
    assert on.text == text
    assert off.text == text.replace(header + "\n", "") and off.header_span is None


# The bundled sessions


def _without_cache_control(messages: list[dict]) -> list[dict]:
    messages = copy.deepcopy(messages)
    for message in messages:
        for block in message["content"]:
            block.pop("cache_control", None)
    return messages


@pytest.mark.parametrize("path", SESSIONS, ids=lambda p: p.stem)
def test_bundled_session_is_a_growing_agent_session(path):
    requests = load_requests(path)
    assert len(requests) >= 12
    first = requests[0]
    for before, after in pairwise(requests):
        assert after["system"] == first["system"] and after["tools"] == first["tools"]
        old, new = _without_cache_control(before["messages"]), after["messages"]
        assert _without_cache_control(new[: len(old)]) == old  # append-only
        assert new[len(old)]["role"] == "assistant" and new[-1]["role"] == "user"
    for request in requests:
        assert not any(HEADER_LINE.search(block["text"]) for block in request["system"])
        assert request["system"][-1]["cache_control"] == EPHEMERAL
        cached = [b for m in request["messages"] for b in m["content"] if "cache_control" in b]
        assert cached == [request["messages"][-1]["content"][-1]]
    blocks = [b for m in requests[-1]["messages"] for b in m["content"]]
    uses = {b["id"] for b in blocks if b["type"] == "tool_use"}
    results = {b["tool_use_id"] for b in blocks if b["type"] == "tool_result"}
    assert len(uses) >= 8 and uses == results


@pytest.mark.parametrize("path", SESSIONS, ids=lambda p: p.stem)
def test_bundled_session_renders_with_the_default_model(path, smol_tok):
    requests = load_requests(path)
    system_text = "\n".join(block["text"] for block in requests[0]["system"])
    assert len(smol_tok(system_text, add_special_tokens=False)["input_ids"]) >= 2000
    on = render_session(requests, smol_tok, attribution=True)
    off = render_session(requests, smol_tok, attribution=False)
    assert on[-1].n_tokens <= 8192 - 256  # fits SmolLM2's context, with room to answer
    for before, after in pairwise(on):
        assert before.header_span[0] < common_prefix(before.tokens, after.tokens)
        assert common_prefix(before.tokens, after.tokens) < before.header_span[1]
    for before, after in pairwise(off):
        assert after.tokens[: before.n_tokens] == before.tokens  # exactly append-only
    for rendered in off:
        system_end, last_end = rendered.breakpoints
        assert smol_tok.decode(rendered.tokens[:system_end]).endswith(system_text[-40:])
        assert rendered.tokens[last_end] == smol_tok.convert_tokens_to_ids("<|im_end|>")


def test_template_without_system_role_gets_the_system_text_in_the_first_user_turn(tiny_tok):
    no_system = copy.copy(tiny_tok)
    no_system.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    rendered = render_request(small_session()[0], no_system)
    assert rendered.text.startswith("<|im_start|>user\nYou are a coding agent.\n\n# Tools")
    assert rendered.text.endswith("\n\nWhy does test_a fail?<|im_end|>\n<|im_start|>assistant\n")
