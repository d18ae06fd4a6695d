"""Malformed and hostile input: a clean error naming file, line, request and field, never a
traceback; documented exit codes; BOM and non-UTF-8 bytes; deep nesting; a property test
(Hypothesis) over generated malformed requests."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.cli import build_parser, main
from labkit.lint import lint_requests, read_captured
from labkit.models import tiny_random_tokenizer
from labkit.sessions import SessionFormatError, load_requests, render_request, validate_request

GOOD = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def tok():
    return tiny_random_tokenizer()


def with_(**fields) -> dict:
    return {**GOOD, **fields}


# Each once gave a traceback (TypeError, AttributeError, OverflowError, UnicodeEncodeError).
MALFORMED = {
    "role is a list": ({"messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
    "role is an object": ({"messages": [{"role": {"a": 1}, "content": "x"}]}, "messages[0].role"),
    "tool_calls is a number": (
        {"messages": [{"role": "assistant", "content": None, "tool_calls": 7}]},
        "messages[0].tool_calls",
    ),
    "openai tool function is a string": (
        with_(
            tools=[{"type": "function", "function": "f"}],
            messages=[{"role": "system", "content": "s"}, GOOD["messages"][0]],
        ),
        "tools[0].function",
    ),
    "t_s too large for a float": (with_(t_s=10**400), "t_s"),
    "t_s is a string": (with_(t_s="soon"), "t_s"),
    "lone surrogate in content": (
        {"messages": [{"role": "user", "content": "a\ud800b"}]},
        "messages[0].content",
    ),
    "deep nesting": (
        with_(tools=[{"name": "t", "input_schema": json.loads("[" * 150 + "]" * 150)}]),
        "tools[0].input_schema",
    ),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_each_malformed_request_gets_an_error_naming_its_field(name):
    request, field = MALFORMED[name]
    with pytest.raises(SessionFormatError) as err:
        validate_request(request)
    assert str(err.value).startswith(field), str(err.value)


def test_a_tool_whose_function_is_a_string_is_refused_in_either_shape():
    """The renderer reads a tool's "function" in both shapes: a string once crashed it."""
    tool = {"name": "t", "input_schema": {}, "function": "f"}
    with pytest.raises(SessionFormatError, match=r"^tools\[0\]\.function: must be an object"):
        validate_request({"system": "s", "tools": [tool], **GOOD})


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_utf8_bom_is_accepted(tmp_path, capsys):
    path = write(tmp_path, "bom.jsonl", b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    assert load_requests(path) == [GOOD]
    assert main(["lint", str(path), "--model", "tiny-random"]) == 0
    assert main(["simulate", str(path), "--engine", "vllm", "--model", "tiny-random"]) == 0


def test_non_utf8_bytes_are_reported_with_their_line(tmp_path, capsys):
    lines = [json.dumps(GOOD).encode(), b'{"prompt": "caf\xe9"}', json.dumps(GOOD).encode()]
    path = write(tmp_path, "latin1.jsonl", b"\n".join(lines) + b"\n")
    requests, errors = read_captured(path)
    assert [line for _, line in requests] == [1, 3]
    assert [(e.line, e.message) for e in errors] == [
        (2, "line 2: not UTF-8 text (byte 0xe9 at column 16): save the file as UTF-8")
    ]
    assert main(["lint", str(path), "--model", "tiny-random"]) == 1  # partial: the rest is linted
    assert main(["simulate", str(path), "--engine", "llamacpp", "--model", "tiny-random"]) == 2
    assert f"{path}: line 2: not UTF-8 text (byte 0xe9" in capsys.readouterr().err


def test_nesting_too_deep_to_parse_is_a_clean_error_with_its_line(tmp_path, capsys):
    deep = '{"prompt": "x", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = write(tmp_path, "deep.jsonl", (json.dumps(GOOD) + "\n" + deep + "\n").encode())
    requests, errors = read_captured(path)
    assert len(requests) == 1 and errors[0].line == 2
    assert "nested too deeply" in errors[0].message
    assert main(["simulate", str(path), "--engine", "sglang", "--model", "tiny-random"]) == 2
    assert "line 2" in capsys.readouterr().err


def test_schema_errors_name_file_line_request_and_field(tmp_path, capsys):
    bad = {"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}
    path = write(tmp_path, "s.jsonl", (json.dumps(GOOD) + "\n\n" + json.dumps(bad)).encode())
    assert main(["simulate", str(path), "--engine", "llamacpp", "--model", "tiny-random"]) == 2
    err = capsys.readouterr().err
    assert (
        f"{path}: request 1 (line 3): messages[0].content[0].text: missing or not a string" in err
    )


def test_exit_codes_partial_bad_input_and_internal_error(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, "s.jsonl", b"not json\n")
    assert main(["lint", str(path), "--model", "tiny-random"]) == 2  # nothing readable
    path = write(tmp_path, "t.jsonl", (json.dumps(GOOD) + "\nnot json\n").encode())
    assert main(["lint", str(path), "--model", "tiny-random"]) == 1  # partial

    def broken(*args, **kwargs):
        raise KeyError("sk-ant-" + "api03-" + "Xy9" * 10)

    monkeypatch.setattr("labkit.engines.session_sim.simulate_session", broken)
    assert main(["simulate", str(path), "--engine", "vllm", "--model", "tiny-random"]) == 2
    path = write(tmp_path, "u.jsonl", (json.dumps(GOOD) + "\n").encode())
    capsys.readouterr()
    assert main(["simulate", str(path), "--engine", "vllm", "--model", "tiny-random"]) == 3
    err = capsys.readouterr().err
    assert "internal error (KeyError" in err and "bug in labkit" in err and "Xy9Xy9" not in err
    with pytest.raises(SystemExit) as usage:
        main(["lint"])
    assert usage.value.code == 2
    assert "3  internal error" in build_parser().format_help()


# -- property: any malformed request gets a clean error ----------------------------------------

_WORDS = ["user", "assistant", "system", "tool", "developer", "text", "tool_use", "tool_result"]
_WORDS += ["thinking", "function", "x"]
_KEYS = ["role", "content", "type", "text", "id", "name", "input", "tool_use_id", "tool_calls"]
_KEYS += ["function", "arguments", "tool_call_id", "input_schema", "parameters", "thinking"]
_KEYS += ["cache_control", "system", "tools", "messages", "prompt", "t_s", "is_error"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(_WORDS),
    st.text(max_size=12),  # includes lone surrogates
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(_KEYS), st.text(max_size=4)), inner, max_size=5),
    ),
    max_leaves=25,
)
blocks = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(_WORDS), values)},
    optional={k: values for k in ("text", "id", "name", "input", "tool_use_id", "content")},
)
messages = st.fixed_dictionaries(
    {"role": st.one_of(st.sampled_from(_WORDS), values)},
    optional={
        "content": st.one_of(st.text(max_size=20), st.lists(blocks, max_size=3), values),
        "tool_calls": st.one_of(values, st.lists(values, max_size=2)),
        "tool_call_id": values,
        "reasoning_content": values,
    },
)
requests = st.one_of(
    values,
    st.fixed_dictionaries(
        {"messages": st.one_of(st.lists(messages, min_size=1, max_size=4), values)},
        optional={
            "system": st.one_of(st.text(max_size=20), st.lists(blocks, max_size=2), values),
            "tools": st.one_of(st.lists(values, max_size=3), values),
            "t_s": values,
        },
    ),
    st.fixed_dictionaries({"prompt": st.one_of(st.text(max_size=30), values)}),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(first=requests, second=requests)
def test_generated_requests_are_refused_cleanly_or_linted(tok, first, second):
    """validate_request raises only SessionFormatError; what it accepts renders and lints."""
    accepted = []
    for request in (first, second):
        try:
            validate_request(request)
        except SessionFormatError as err:
            assert str(err) and "Traceback" not in str(err)
            continue
        render_request(request, tok)
        accepted.append(request)
    if len(accepted) == 2:
        report = lint_requests(accepted, tok)
        assert len(report.requests) == 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.one_of(requests.map(json.dumps), st.binary(max_size=30)), max_size=4))
def test_generated_files_never_end_in_an_internal_error(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("gen") / "requests.jsonl"
    path.write_bytes(
        b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines)
    )
    assert main(["lint", str(path), "--model", "tiny-random", "--json"]) in (0, 1, 2)
    assert main(["simulate", str(path), "--engine", "llamacpp", "--model", "tiny-random"]) in (0, 2)


# The 7 MB lint benchmark and its linear scaling: tests/test_lint_speed.py.
