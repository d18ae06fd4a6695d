"""Tests for lesson 6: response parsers, the llama_server context manager, probe, a real server.

The real-server tests need the llama-server binary (`make server` builds it into labkit's cache);
without it they are skipped, saying so.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from labkit.cli import main
from labkit.server import (
    PortInUseError,
    ProbeError,
    ServerNotBuiltError,
    ServerStartError,
    chat_messages,
    detect_api,
    find_server_binary,
    free_port,
    llama_server,
    parse_llamacpp,
    parse_response,
    parse_sglang,
    parse_usage,
    probe_request,
)

# ---- response bodies in their documented shapes

# llama.cpp tools/server/README.md, POST /completion: `timings` as `result_timings::to_json`.
LLAMACPP_COMPLETION = {
    "content": " The",
    "tokens": [],
    "id_slot": 0,
    "stop": True,
    "model": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "tokens_predicted": 1,
    "tokens_evaluated": 3318,
    "tokens_cached": 3317,
    "timings": {
        "cache_n": 2959,
        "prompt_n": 359,
        "prompt_ms": 412.5,
        "prompt_per_token_ms": 1.149,
        "prompt_per_second": 870.3,
        "predicted_n": 1,
        "predicted_ms": 0.01,
        "predicted_per_token_ms": 0.01,
        "predicted_per_second": 100000.0,
    },
}
# OpenAI prompt-caching guide: chat completion usage with cached tokens.
OPENAI_CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}],
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}
# vLLM /v1/completions with --enable-prompt-tokens-details ...
VLLM_DETAILS = {
    "id": "cmpl-1",
    "object": "text_completion",
    "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "choices": [{"index": 0, "text": " The", "finish_reason": "length"}],
    "usage": {
        "prompt_tokens": 3318,
        "total_tokens": 3319,
        "completion_tokens": 1,
        "prompt_tokens_details": {"cached_tokens": 2944},
    },
}
# ... and without it: the details are null.
VLLM_PLAIN = {
    **VLLM_DETAILS,
    "usage": {
        "prompt_tokens": 3318,
        "total_tokens": 3319,
        "completion_tokens": 1,
        "prompt_tokens_details": None,
    },
}
# SGLang native POST /generate: counts in meta_info (cached_tokens with the radix cache on).
SGLANG_GENERATE = {
    "text": " The",
    "meta_info": {
        "id": "abc",
        "finish_reason": {"type": "length", "length": 1},
        "prompt_tokens": 3318,
        "completion_tokens": 1,
        "cached_tokens": 2958,
    },
}


def test_llamacpp_timings_give_cached_prompt_and_time():
    report = parse_llamacpp(LLAMACPP_COMPLETION)
    assert (report.n_prompt, report.cached, report.computed) == (3318, 2959, 359)
    assert report.prompt_ms == 412.5
    assert parse_response(LLAMACPP_COMPLETION) == report


def test_openai_usage_shapes_vllm_sglang_openai():
    chat = parse_usage(OPENAI_CHAT)
    assert (chat.n_prompt, chat.cached, chat.computed, chat.prompt_ms) == (2006, 1920, 86, None)
    vllm = parse_response(VLLM_DETAILS)
    assert (vllm.n_prompt, vllm.cached, vllm.computed) == (3318, 2944, 374)
    plain = parse_response(VLLM_PLAIN)  # no --enable-prompt-tokens-details: no cached count
    assert (plain.n_prompt, plain.cached, plain.computed) == (3318, None, None)
    sglang = parse_sglang(SGLANG_GENERATE)
    assert (sglang.n_prompt, sglang.cached) == (3318, 2958)
    assert parse_response([SGLANG_GENERATE]) == sglang  # a batch answers a list


def test_llamacpp_openai_endpoint_keeps_its_timings():
    body = {**OPENAI_CHAT, "timings": LLAMACPP_COMPLETION["timings"]}
    assert parse_response(body).cached == 2959  # llama.cpp's own count wins
    assert parse_usage(body).prompt_ms == 412.5


def test_unknown_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="none of llama.cpp"):
        parse_response({"result": "ok"})


def test_chat_messages_flatten_an_anthropic_request():
    request = {
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "ls", "input": {"path": "."}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t", "content": "a.py"}],
            },
        ],
    }
    messages = chat_messages(request)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == "Be brief." and messages[3]["content"] == "a.py"
    assert json.loads(messages[2]["content"]) == {"name": "ls", "input": {"path": "."}}


# ---- a fake HTTP server for the error paths


class _FakeServer:
    """A tiny HTTP server whose routes answer (status, body) from a dict."""

    def __init__(self, routes):
        routes_ = routes

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                status, body = routes_.get(self.path, (404, {"error": "not found"}))
                if callable(body):
                    status, body = body()
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    servers = []

    def make(routes):
        servers.append(_FakeServer(routes))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_probe_errors_name_the_fix(fake):
    with pytest.raises(ProbeError, match="No server answers .*start one .*labkit server run"):
        detect_api(f"http://127.0.0.1:{free_port()}", timeout_s=5)
    odd = fake({})
    with pytest.raises(ProbeError, match="neither llama.cpp's /props nor /v1/models"):
        detect_api(odd.url, timeout_s=5)
    vllm = fake({"/v1/models": (200, {"data": [{"id": "smol", "owned_by": "vllm"}]})})
    assert detect_api(vllm.url) == ("completions", {"model": "smol", "engine": "vllm"})
    picky = fake({"/v1/completions": (400, {"error": "prompt must be a string"})})
    with pytest.raises(ProbeError, match="refused a token-id prompt .* --api chat"):
        probe_request(picky.url, "completions", [1, 2, 3], model="smol")
    with pytest.raises(ProbeError, match="does not exist"):
        probe_request(picky.url, "llamacpp", [1, 2, 3])


def test_probe_cli_writes_nothing_when_a_request_fails(fake, capsys, smol_tok):
    calls = []

    def completion():
        calls.append(1)
        if len(calls) == 1:
            return 200, LLAMACPP_COMPLETION | {
                "timings": {"cache_n": 0, "prompt_n": 2959, "prompt_ms": 1.0}
            }
        return 500, {"error": "boom"}

    server = fake(
        {
            "/props": (200, {"default_generation_settings": {}, "total_slots": 1}),
            "/completion": (200, completion),
        }
    )
    code = main(["probe", "fix_failing_test", "--url", server.url, "--attribution", "on", "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "HTTP 500" in err
    assert len(calls) == 2


# ---- the context manager, without a real server


def _script(tmp_path, body: str):
    path = tmp_path / "fake-llama-server"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


def test_binary_lookup_honours_the_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_LLAMA_SERVER", str(tmp_path / "missing"))
    with pytest.raises(ServerNotBuiltError, match="not an executable"):
        find_server_binary()
    script = _script(tmp_path, "exit 0")
    monkeypatch.setenv("LABKIT_LLAMA_SERVER", str(script))
    assert find_server_binary() == script


def test_taken_port_and_missing_model_are_clear_errors(tmp_path, gguf):
    with pytest.raises(FileNotFoundError, match="No GGUF model"), llama_server(tmp_path / "x.gguf"):
        pass
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"Port {port} .* already in use"):
            with llama_server(gguf, port=port):
                pass


def test_a_server_that_exits_shows_its_log(tmp_path, gguf, monkeypatch):
    monkeypatch.setenv("LABKIT_LLAMA_SERVER", str(_script(tmp_path, "echo 'model is bad'; exit 3")))
    with pytest.raises(ServerStartError, match="(?s)exited with code 3.*model is bad"):
        with llama_server(gguf, health_timeout_s=20):
            pass


def test_a_server_that_never_gets_healthy_is_killed(tmp_path, gguf, monkeypatch):
    pid_file = tmp_path / "pid"
    script = _script(tmp_path, f"echo $$ > {pid_file}; exec sleep 600")
    monkeypatch.setenv("LABKIT_LLAMA_SERVER", str(script))
    with pytest.raises(ServerStartError, match="did not answer /health within 2 s"):
        with llama_server(gguf, health_timeout_s=2):
            pass
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # gone, not orphaned
        os.kill(pid, 0)


FAKE_HEALTHY_SERVER = """
import http.server, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in state  # a zombie waiting for its new parent to reap it is dead too


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_no_orphan_when_the_python_that_started_it_is_killed(tmp_path, gguf):
    fake = tmp_path / "fake_server.py"
    fake.write_text(FAKE_HEALTHY_SERVER)
    binary = _script(tmp_path, f'exec {sys.executable} {fake} "$@"')
    child = (
        "import os, signal\n"
        "from labkit.server import llama_server\n"
        f"with llama_server({str(gguf)!r}, health_timeout_s=60) as server:\n"
        "    print(server.process.pid, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)  # as a Jupyter kernel restart does\n"
    )
    env = {**os.environ, "LABKIT_LLAMA_SERVER": str(binary)}
    result = subprocess.run(
        [sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    pid = int(result.stdout.split()[0])
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(pid), f"llama-server stand-in {pid} outlived the Python that started it"


# ---- against the real llama-server


# The session made short (same structure, fewer tokens), and one server thread: CI machines and
# shared lab machines are busy, and llama.cpp's threads spin-wait for each other there.
SHORT = {"system_tokens": 300, "n_requests": 4, "block_tokens": 24}


@pytest.fixture(scope="module")
def real_server(llama_server_ready):
    with llama_server(slots=1, ctx=4096, threads=1) as server:
        yield server


@pytest.mark.slow  # a real llama-server: minutes on a busy CPU
def test_real_server_cache_n_matches_the_model_line_on_and_off(real_server, smol_tok):
    from labkit.engines import make_engine
    from labkit.server import probe_session
    from labkit.server.cli import render_probe_session

    engine = make_engine("llamacpp", n_slots=1)  # one model follows the server across both runs
    totals = {}
    for attribution in ("on", "off"):
        _, rendered = render_probe_session("fix_failing_test", attribution, shorten=SHORT)
        rows = probe_session(rendered, real_server.url, engine=engine)
        assert [r.cached for r in rows] == [r.predicted_cached for r in rows]
        assert all(r.cached + r.computed == r.n_tokens for r in rows)
        totals[attribution] = sum(r.prompt_ms for r in rows[1:])
        if attribution == "off":
            assert all(r.cached == rendered[k - 1].n_tokens for k, r in enumerate(rows) if k)
        else:
            assert all(r.cached < r.header_end for r in rows[1:])
    assert totals["off"] * 3 < totals["on"], totals


@pytest.mark.slow  # a real llama-server: minutes on a busy CPU
def test_probe_cli_on_a_fresh_server_matches_simulate(
    tmp_path, capsys, smol_tok, llama_server_ready
):
    from labkit.experiments.replay import shorten_session
    from labkit.resources import resolve_session
    from labkit.sessions import load_requests

    session = tmp_path / "short.jsonl"
    short = shorten_session(load_requests(resolve_session("fix_failing_test")), smol_tok, **SHORT)
    session.write_text("".join(json.dumps(r) + "\n" for r in short))
    with llama_server(slots=1, ctx=4096, threads=1) as server:
        code = main(
            [
                "probe",
                str(session),
                "--url",
                server.url,
                "--attribution",
                "on",
                "--json",
                "--requests",
                "3",
            ]
        )
    out, _ = capsys.readouterr()
    rows = json.loads(out)
    assert code == 0 and len(rows) == 3
    assert set(rows[0]) == {"n_tokens", "cached", "computed", "prompt_ms", "predicted_cached"}
    assert [r["cached"] for r in rows] == [r["predicted_cached"] for r in rows]
    assert (
        main(
            [
                "simulate",
                str(session),
                "--engine",
                "llamacpp",
                "--attribution",
                "on",
                "--replies",
                "ignored",
                "--json",
            ]
        )
        == 0
    )
    simulated = json.loads(capsys.readouterr().out)[:3]
    assert [r["cached"] for r in rows] == [r["cached"] for r in simulated]
    assert all(r["prompt_ms"] > 0 for r in rows)


# ---- scripts/probe_table.py: the README's table from two `labkit probe --json` runs


def test_probe_table_totals_ratio_and_mismatches():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import probe_table

    on = [
        {"n_tokens": 100, "cached": 0, "computed": 100, "prompt_ms": 1000.0, "predicted_cached": 0},
        {
            "n_tokens": 150,
            "cached": 38,
            "computed": 112,
            "prompt_ms": 1500.0,
            "predicted_cached": 38,
        },
    ]
    off = [
        {"n_tokens": 60, "cached": 0, "computed": 60, "prompt_ms": 600.0, "predicted_cached": 0},
        {"n_tokens": 110, "cached": 60, "computed": 50, "prompt_ms": 400.0, "predicted_cached": 60},
    ]
    lines = probe_table.probe_table(on, off).splitlines()
    assert lines[2] == "| 0 | 100 | 0 (0) | 1,000 | 60 | 0 (0) | 600 |"
    assert lines[4] == "| all 2 | 250 | 38 | **2,500** | 170 | 60 | **1,000 (2.5× less)** |"
    assert "212 tokens with the line, 110 without (1.9× fewer)" in lines[-1]
    assert probe_table.mismatches(on, [{"cached": 0}, {"cached": 38}]) == []
    bad = [{**off[0]}, {**off[1], "cached": 59}]
    assert probe_table.mismatches(bad) == ["request 1: cache_n 59 != predicted 60"]
    assert probe_table.mismatches(off, [{"cached": 0}]) == [
        "request 1: cache_n 60 != simulate's missing"
    ]
    from labkit.device import cpu_model_name

    assert probe_table.hardware_line().startswith(f"{cpu_model_name()}, ")
