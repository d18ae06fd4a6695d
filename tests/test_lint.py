"""`labkit lint`: the divergence point, its cause and fix, redaction, unreadable lines, the CLI."""

import copy
import json
import os
import re
import subprocess
import sys

import pytest

from labkit.cli import main
from labkit.lint import format_report, lint_file, lint_requests, read_captured, report_json
from labkit.lint.causes import CAUSES
from labkit.models import default_model_ready, tiny_random_tokenizer
from labkit.redact import REDACTED, redact, redacted_window
from labkit.sessions import render_request, with_attribution

SESSION = "data/sessions/fix_failing_test.jsonl"
CLOCK_SESSION = "data/sessions/cache_busters/clock_and_tools.jsonl"

# Fake credentials, built from parts so that no secret scanner mistakes this file for a leak.
ANTHROPIC_KEY = "sk-ant-" + "api03-" + "Zq7" * 12
OPENAI_KEY = "sk-" + "proj-" + "Vb4" * 10
AWS_KEY = "AKIA" + "QX7RZ2" + "LM4PK9TW"
GITHUB_TOKEN = "ghp_" + "R2d2C3po" * 5
BEARER = "eyJhbGciOi" + "Jfake.payload.sig" * 2
URL_KEY = "q9" + "w8e7r6t5y4"
PASSWORD = "hunter2" + "-correct-horse"
SECRETS = [ANTHROPIC_KEY, OPENAI_KEY, AWS_KEY, GITHUB_TOKEN, BEARER, URL_KEY, PASSWORD]
# what a redaction must not leave behind either: the part after a recognisable prefix
SECRET_TAILS = [s[10:] for s in SECRETS]

SYSTEM = (
    "You are a coding agent. Work in the repository and keep changes small.\n\n"
    "# Environment\n"
    "Working directory: /src/app\n"
    "Current time: 2026-03-03 09:14:07\n\n"
    "Git status:\n"
    "## main...origin/main\n"
    "(working tree clean)\n\n"
    "# Style\n"
    "Be concise. Cite files as path:line."
)
SCHEMA = {
    "type": "object",
    "properties": {"path": {"type": "string"}, "start_line": {"type": "integer"}},
    "required": ["path"],
}
TOOLS = [
    {"name": "read_file", "description": "Read a file.", "input_schema": SCHEMA},
    {"name": "edit_file", "description": "Edit a file.", "input_schema": {"type": "object"}},
    {"name": "run_command", "description": "Run a command.", "input_schema": {"type": "object"}},
]


def base_request() -> dict:
    """Return a small Anthropic request: system, three tools, a user turn, a tool call, a result."""
    return {
        "model": "test-model",
        "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
        "tools": copy.deepcopy(TOOLS),
        "messages": [
            {"role": "user", "content": "The test for parse_amount fails. Please fix it."},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Read the parser before anything else."},
                    {"type": "text", "text": "I'll read the parser first."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "read_file",
                        "input": {"path": "src/app/money.py", "start_line": 1},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01",
                        "content": "1\tdef parse_amount(text):\n2\t    return float(text)",
                    }
                ],
            },
        ],
    }


def next_request(request: dict) -> dict:
    """Return the request the client sends next: the same, plus a reply and a new user turn."""
    request = copy.deepcopy(request)
    request["messages"] += [
        {"role": "assistant", "content": [{"type": "text", "text": "It ignores the comma."}]},
        {"role": "user", "content": "Go ahead and fix it."},
    ]
    return request


@pytest.fixture(scope="module")
def tok():
    return tiny_random_tokenizer()


def lint_pair(prev, cur, tok, **kwargs):
    report = lint_requests([prev, cur], tok, **kwargs)
    return report, report.requests[1]


def assert_span_inside(cur, row, changed: str, tok) -> None:
    """Assert the divergence's char span starts in (and stays in) `changed` in cur's text."""
    text = render_request(cur, tok).text
    start = text.index(changed)
    assert start <= row.char_span[0] < start + len(changed), (row.char_span, changed)
    assert row.char_span[1] <= start + len(changed)


def test_append_only_requests_lose_nothing(tok):
    prev = base_request()
    report, row = lint_pair(prev, next_request(prev), tok)
    assert row.cause == "append-only" and row.token is None
    assert row.reused_tokens == report.requests[0].n_tokens
    assert row.lost_tokens == row.not_reused_tokens == 0
    assert report.loss_fraction == 0.0


def test_attribution_cch_is_named_and_spanned(tok):
    prev = with_attribution(base_request(), True, cch="56445")
    cur = with_attribution(next_request(base_request()), True, cch="8e1c2")
    report, row = lint_pair(prev, cur, tok)
    assert row.cause == "attribution-header" and row.where == "system[0]"
    assert row.detail == "cch=56445 → cch=8e1c2"
    assert_span_inside(cur, row, "8e1c2", tok)
    prev_tokens = report.requests[0].n_tokens
    assert row.not_reused_tokens == prev_tokens - row.reused_tokens
    assert row.lost_tokens == row.not_reused_tokens  # the request is longer than the previous
    assert row.recomputed_tokens == row.n_tokens - row.reused_tokens
    assert "CLAUDE_CODE_ATTRIBUTION_HEADER" in CAUSES["attribution-header"].fix
    assert "settings.json" in CAUSES["attribution-header"].fix


def test_timestamp_in_the_system_prompt(tok):
    prev = base_request()
    cur = next_request(prev)
    cur["system"][0]["text"] = SYSTEM.replace("09:14:07", "09:15:12")
    _, row = lint_pair(prev, cur, tok)
    assert row.cause == "timestamp" and row.where == "system[0]"
    assert "09:14:07" in row.detail and "09:15:12" in row.detail
    assert_span_inside(cur, row, "09:15:12", tok)
    assert "end" in CAUSES["timestamp"].fix


def test_git_status_in_the_system_prompt(tok):
    prev = base_request()
    cur = next_request(prev)
    cur["system"][0]["text"] = SYSTEM.replace("(working tree clean)", " M src/app/money.py")
    _, row = lint_pair(prev, cur, tok)
    assert row.cause == "git-status"
    assert_span_inside(cur, row, " M src/app/money.py", tok)
    assert "freeze" in CAUSES["git-status"].fix.lower()


def test_changing_id_in_the_system_prompt(tok):
    prev = base_request()
    prev["system"][0]["text"] = SYSTEM + "\nRequest id: 3f2a9c1e77"
    cur = next_request(prev)
    cur["system"][0]["text"] = SYSTEM + "\nRequest id: b81d0e4412"
    _, row = lint_pair(prev, cur, tok)
    assert row.cause == "changing-id" and "3f2a9c1e77" in row.detail
    assert_span_inside(cur, row, "b81d0e4412", tok)


def test_reordered_tools(tok):
    prev = base_request()
    cur = next_request(prev)
    cur["tools"] = [cur["tools"][i] for i in (1, 0, 2)]
    _, row = lint_pair(prev, cur, tok)
    assert row.cause == "reordered-tools" and row.where == "tools"
    assert row.detail == "read_file, edit_file, run_command → edit_file, read_file, run_command"
    text = render_request(cur, tok).text
    tools_start = text.index("# Tools")
    assert tools_start < row.char_span[0] < text.index("## run_command")
    assert "sort" in CAUSES["reordered-tools"].fix.lower()


def test_a_changed_tool_list_is_not_called_reordered(tok):
    prev = base_request()
    cur = next_request(prev)
    cur["tools"] = cur["tools"][:2]
    _, row = lint_pair(prev, cur, tok)
    assert row.cause == "tools-changed" and row.detail == "removed run_command"


def test_reordered_json_keys_in_a_tool_schema(tok):
    prev = base_request()
    cur = next_request(prev)
    schema = cur["tools"][0]["input_schema"]
    schema["properties"] = {k: schema["properties"][k] for k in ("start_line", "path")}
    _, row = lint_pair(prev, cur, tok)
    assert row.cause == "reordered-json-keys"
    assert row.where == "tools[0].input_schema.properties"
    assert row.detail == "keys (path, start_line) → (start_line, path)"
    assert_span_inside(cur, row, json.dumps(schema["properties"]), tok)


def test_reordered_json_keys_in_a_tool_use_input(tok):
    prev = base_request()
    cur = next_request(prev)
    block = cur["messages"][1]["content"][2]
    block["input"] = {"start_line": 1, "path": "src/app/money.py"}
    _, row = lint_pair(prev, cur, tok)
    assert row.cause == "reordered-json-keys"
    assert row.where == "messages[1].content[2].input"
    assert_span_inside(cur, row, json.dumps(block["input"]), tok)
    assert "sort_keys" in CAUSES["reordered-json-keys"].fix


def test_reordered_json_keys_in_openai_arguments(tok):
    def openai(arguments: str) -> dict:
        call = {"id": "call_1", "type": "function"}
        call["function"] = {"name": "read_file", "arguments": arguments}
        return {
            "messages": [
                {"role": "system", "content": "You are a coding agent."},
                {"role": "user", "content": "Read money.py"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "def parse(): ..."},
            ]
        }

    prev = openai('{"path": "money.py", "start_line": 1}')
    cur = openai('{"start_line": 1, "path": "money.py"}')
    cur["messages"].append({"role": "user", "content": "Thanks."})
    _, row = lint_pair(prev, cur, tok)
    assert row.cause == "reordered-json-keys"
    assert row.where == "messages[2].tool_calls[0].function.arguments"
    assert_span_inside(cur, row, '{"start_line": 1, "path": "money.py"}', tok)


def test_openai_arguments_rewritten_with_other_spacing(tok):
    def openai(arguments: str) -> dict:
        call = {"id": "call_1", "type": "function"}
        call["function"] = {"name": "read_file", "arguments": arguments}
        return {
            "messages": [
                {"role": "user", "content": "Read money.py"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "def parse(): ..."},
            ]
        }

    prev, cur = openai('{"path": "money.py"}'), openai('{"path":"money.py"}')
    cur["messages"].append({"role": "user", "content": "Thanks."})
    _, row = lint_pair(prev, cur, tok)
    assert row.cause == "reordered-json-keys" and "written differently" in row.detail
    assert row.where == "messages[1].tool_calls[0].function.arguments"


def test_dropped_thinking_block(tok):
    prev = base_request()
    cur = next_request(prev)
    del cur["messages"][1]["content"][0]
    _, row = lint_pair(prev, cur, tok)
    assert row.cause == "dropped-reasoning" and row.where == "messages[1]"
    prev_text = render_request(prev, tok).text
    thinking = prev_text.index("<thinking>")
    assert row.previous_char_span[0] == thinking  # the previous text diverges at the dropped block
    assert row.previous_char_span[1] == prev_text.index("I'll read the parser first.")
    assert row.char_span[0] == row.char_span[1]  # nothing new: a deletion
    assert "reasoning" in CAUSES["dropped-reasoning"].fix


def test_edited_history(tok):
    prev = base_request()
    cur = next_request(prev)
    cur["messages"][0]["content"] = "The test for parse_amount fails on CI. Please fix it."
    _, row = lint_pair(prev, cur, tok)
    assert row.cause == "edited-history" and row.where.startswith("messages[0]")
    assert_span_inside(cur, row, " on CI", tok)
    assert "append-only" in CAUSES["edited-history"].fix


def test_dropped_messages_are_edited_history(tok):
    prev = next_request(base_request())
    cur = base_request()
    cur["messages"] = cur["messages"][:2]
    report, row = lint_pair(prev, cur, tok)
    assert row.cause == "edited-history" and row.detail == "3 message(s) dropped"
    assert row.not_reused_tokens > 0 and row.lost_tokens <= row.not_reused_tokens


def test_chat_template_that_rewrites_history(tok):
    """A template that drops earlier turns' <thinking> (as some reasoning models' templates do)."""
    template = tiny_random_tokenizer()
    template.chat_template = (
        "{% for m in messages %}{% set c = m['content'] %}"
        "{% if m['role'] == 'assistant' and not loop.last and loop.index0 < messages|length - 2 %}"
        "{% set c = c.split('</thinking>\n')[-1] %}{% endif %}"
        "{{ '<|im_start|>' + m['role'] + '\n' + c + '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    prev = base_request()
    cur = next_request(prev)
    _, row = lint_pair(prev, cur, template)
    assert row.cause == "template-rewrote-history" and row.where == "messages[1]"
    assert "<thinking>" in row.previous_text and "<thinking>" not in row.new_text


def test_first_request_and_totals(tok):
    prev = with_attribution(base_request(), True, cch="11111")
    mid = with_attribution(next_request(base_request()), True, cch="22222")
    last = next_request(mid)
    report = lint_requests([prev, mid, last], tok)
    first, second, third = report.requests
    assert first.cause == "first" and first.recomputed_tokens == first.n_tokens
    assert second.cause == "attribution-header" and third.cause == "append-only"
    assert report.n_tokens == sum(r.n_tokens for r in report.requests)
    assert report.ideal_recomputed_tokens == third.n_tokens
    assert report.lost_tokens == second.lost_tokens
    assert report.loss_fraction == pytest.approx(report.lost_tokens / report.n_tokens)
    assert [c.cause for c in report.causes] == ["attribution-header", "append-only"]


# -- redaction -------------------------------------------------------------------------------


def test_redact_replaces_each_kind_of_secret():
    text = (
        f"x-api-key: {ANTHROPIC_KEY}\nOPENAI_API_KEY={OPENAI_KEY} aws {AWS_KEY} gh {GITHUB_TOKEN}\n"
        f"Authorization: Bearer {BEARER}\nGET https://api.example.com/v1?api_key={URL_KEY}&page=2\n"
        f'{{"password": "{PASSWORD}"}} cch=56445; cc_version=2.1.39.c39'
    )
    out = redact(text)
    for secret in SECRETS + SECRET_TAILS:
        assert secret not in out
    assert out.count(REDACTED) >= 7
    assert "cch=56445; cc_version=2.1.39.c39" in out and "page=2" in out  # not secrets


def test_a_window_never_shows_part_of_a_secret():
    text = f"head\nx-api-key: {ANTHROPIC_KEY}\ntail"
    cut_name = text.index(": sk-ant")  # the window starts after the name that marks the value
    cut_value = text.index(ANTHROPIC_KEY) + 12  # the window starts inside the key
    for start in (cut_name, cut_value):
        window = redacted_window(text, start, start + 40)
        assert ANTHROPIC_KEY[14:30] not in window and REDACTED in window


def planted_session(tmp_path):
    """Write a capture whose headers, system text, tool results and URLs carry secrets."""
    prev = base_request()
    prev["system"][0]["text"] += f"\nGITHUB_TOKEN={GITHUB_TOKEN}"
    prev["messages"][2]["content"][0]["content"] += (
        f"\nAWS_ACCESS_KEY_ID={AWS_KEY}\npassword={PASSWORD}\nx-api-key: {ANTHROPIC_KEY}"
    )
    prev["messages"][1]["content"][2]["input"]["url"] = f"https://api.example.com/?key={URL_KEY}"
    cur = next_request(prev)
    cur["system"][0]["text"] = cur["system"][0]["text"].replace("09:14:07", "09:15:12")
    third = next_request(cur)  # edits the tool result right before the planted credentials
    third["messages"][2]["content"][0]["content"] = third["messages"][2]["content"][0][
        "content"
    ].replace("float(text)", "float(text.replace(',', ''))")
    headers = {"x-api-key": ANTHROPIC_KEY, "authorization": f"Bearer {BEARER}"}
    lines = [
        json.dumps({"headers": headers, "body": prev}),
        json.dumps({"headers": {"Authorization": f"Bearer {OPENAI_KEY}"}, "body": json.dumps(cur)}),
        json.dumps(third | {"headers": headers}),
    ]
    path = tmp_path / "captured.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_secrets_never_appear_in_table_or_json(tmp_path, tok, capsys):
    path = planted_session(tmp_path)
    report = lint_file(path, tok)
    assert [r.cause for r in report.requests] == ["first", "timestamp", "edited-history"]
    edited = report.requests[2]
    assert "AWS_ACCESS_KEY_ID=" in edited.new_text  # the window reaches into the key
    outputs = [format_report(report), json.dumps(report_json(report))]
    assert main(["lint", str(path), "--model", "tiny-random"]) == 0
    assert main(["lint", str(path), "--model", "tiny-random", "--json"]) == 0
    captured = capsys.readouterr()
    outputs += [captured.out, captured.err]
    for output in outputs:
        for secret in SECRETS + SECRET_TAILS:
            assert secret not in output


# -- unreadable lines ------------------------------------------------------------------------


def test_malformed_lines_are_reported_and_the_rest_linted(tmp_path, tok):
    prev, cur = base_request(), next_request(base_request())
    bad_shape = {"messages": [{"role": ANTHROPIC_KEY, "content": "hi"}]}  # echoed by the error
    path = tmp_path / "broken.jsonl"
    lines = [json.dumps(prev), '{"messages": [', "", json.dumps(cur), json.dumps(bad_shape)]
    path.write_text("\n".join(lines) + "\n")
    requests, errors = read_captured(path)
    assert [line for _, line in requests] == [1, 4]
    assert [e.line for e in errors] == [2, 5]
    assert errors[0].message.startswith("line 2: not valid JSON")
    assert errors[1].message.startswith("line 5: messages[0].role")
    report = lint_file(path, tok)
    assert [r.line for r in report.requests] == [1, 4]
    assert report.requests[1].cause == "append-only"
    text = format_report(report)
    assert "line 2: not valid JSON" in text and "line 5:" in text
    assert ANTHROPIC_KEY not in text and ANTHROPIC_KEY not in json.dumps(report_json(report))


def test_a_json_file_is_read_whole(tmp_path, tok):
    prev, cur = base_request(), next_request(base_request())
    path = tmp_path / "session.json"
    path.write_text(json.dumps([{"headers": {"x-api-key": ANTHROPIC_KEY}, "body": prev}, cur]))
    report = lint_file(path, tok)
    assert [(r.line, r.cause) for r in report.requests] == [(None, "first"), (None, "append-only")]
    assert report.model == "the tokenizer given" and report.errors == []
    path.write_text(json.dumps([prev, cur], indent=1)[:-40])
    requests, errors = read_captured(path)
    assert requests == [] and len(errors) == 1
    assert errors[0].message.startswith("not valid JSON") and errors[0].line > 1


def test_cli_exits_1_and_still_reports_when_lines_are_unreadable(tmp_path, capsys):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(base_request()) + "\nnot json\n")
    assert main(["lint", str(path), "--model", "tiny-random", "--json"]) == 1
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert report["totals"]["requests"] == 1
    assert report["errors"] == [
        {"line": 2, "message": "line 2: not valid JSON: Expecting value (column 1)"}
    ]
    assert "could not be read" in out.err


def test_cli_missing_file_says_what_to_do(capsys):
    assert main(["lint", "no/such/file.jsonl", "--model", "tiny-random"]) == 2
    assert "check the path" in capsys.readouterr().err


# -- the bundled sessions, through the command line -------------------------------------------


def test_cli_attribution_on_names_the_cch_span(capsys):
    assert main(["lint", SESSION, "--attribution", "on", "--json", "--model", "tiny-random"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == "labkit.lint/1" and report["attribution"] == "on"
    rows = report["requests"]
    assert rows[0]["cause"] == "first" and len(rows) == 14
    for row in rows[1:]:
        assert row["cause"] == "attribution-header" and row["where"] == "system[0]"
        old_cch, new_cch = re.findall(r"cch=(\w+)", row["detail"])
        shared = len(os.path.commonprefix([old_cch, new_cch]))
        start, end = row["divergence"]["char_span"]
        # new_text starts 40 characters before the divergence, which is inside the new cch
        assert row["divergence"]["new_text"][:40].endswith("cch=" + new_cch[:shared])
        assert 0 < end - start <= len(new_cch) - shared
    assert report["totals"]["loss_fraction"] > 0.5
    assert [c["cause"] for c in report["causes"]] == ["attribution-header"]


def test_cli_attribution_off_reports_no_loss(capsys):
    assert main(["lint", SESSION, "--attribution", "off", "--model", "tiny-random"]) == 0
    out = capsys.readouterr().out
    assert "0 lost (0.0% of the session)" in out
    assert "append-only — append-only (no loss): request(s) 1–13" in out


@pytest.mark.skipif(not default_model_ready(), reason="the default model is not prepared")
def test_python_m_labkit_lint_with_the_default_tokenizer(capsys):
    command = [sys.executable, "-m", "labkit", "lint", SESSION, "--attribution", "on", "--json"]
    on = subprocess.run(command, capture_output=True, text=True)
    assert on.returncode == 0, on.stderr
    on = json.loads(on.stdout)
    assert {r["cause"] for r in on["requests"][1:]} == {"attribution-header"}
    assert on["totals"]["loss_fraction"] > 0.5
    assert main(["lint", SESSION, "--attribution", "off", "--json"]) == 0  # the same, in-process
    off = json.loads(capsys.readouterr().out)
    assert off["model"] == on["model"] and off["totals"]["lost_tokens"] == 0
    assert {r["cause"] for r in off["requests"][1:]} == {"append-only"}


def test_clock_and_tools_session_names_both_causes(tok):
    report = lint_file(CLOCK_SESSION, tok)
    causes = {c.cause: c.requests for c in report.causes}
    assert causes["timestamp"] == [4, 8, 11, 12]
    assert causes["reordered-tools"] == [6]
    assert set(causes) == {"timestamp", "reordered-tools", "append-only"}


def test_report_lines_fit_a_notebook_and_keep_words_whole(tok):
    from labkit.lint.report import _wrap
    from labkit.resources import resolve_session

    report = lint_file(resolve_session("fix_failing_test"), tok, attribution="on", seed=0)
    lines = format_report(report).splitlines()
    assert max(len(line) for line in lines) <= 96, max(lines, key=len)
    key = "sk-ant-api03-" + "a1" * 60  # longer than the width, with hyphens
    wrapped = _wrap(f"line 3: bad request carrying {key} in its headers", 40)
    assert key in wrapped and all(len(w) <= 40 for w in wrapped if key not in w)
