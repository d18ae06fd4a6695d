"""A real llama-server end to end, one server for the module (slow: a minute or two).

1. A scripted client sends a short Claude-Code-like session (the attribution line on, a fresh
   `cch` each turn) to `/v1/messages` through `labkit proxy` (the command, in its own process);
   the proxy's log is then read by `labkit lint`, `labkit simulate` and `labkit probe` against
   the same server, and the probe's cached counts equal the simulator's.
2. llama.cpp's Anthropic endpoint rewrites the line's `cch` to `fffff` before it renders the
   prompt (`normalize_anthropic_billing_header` in `tools/server/server-chat.cpp`, called by
   `server_chat_convert_anthropic_to_oai` on the `system` string or each text block that starts
   with `x-anthropic-billing-header:`; ggml-org/llama.cpp PR #21793, in the pinned
   llama-cpp-python 0.3.36 tree). Its OpenAI-compatible `/v1/chat/completions` and `/completion`
   do not: there the line is prompt text and reuse stops inside it.

Byte-identical forwarding is tested in tests/test_proxy.py (a deterministic upstream, and the
real server's deterministic routes); it is not repeated here.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from labkit.cli import main
from labkit.resources import data_path
from labkit.server import (
    cch_pair,
    free_port,
    llama_server,
)
from labkit.server.probe import http_json

pytestmark = pytest.mark.slow

LINE = "x-anthropic-billing-header: cc_version=2.1.39.c39; cc_entrypoint=cli; cch={};"
SYSTEM = data_path("long_system_prompt.txt").read_text(encoding="utf-8")[:1500]  # ~300 tokens
CCHS = ("1a2b3", "9f8e7", "4c5d6")


@pytest.fixture(scope="module")
def server(tmp_path_factory, llama_server_ready):
    slots = tmp_path_factory.mktemp("slots")  # --slot-save-path enables POST /slots?action=erase
    # one thread: on a busy machine llama.cpp's threads spin-wait for each other
    with llama_server(
        slots=1, ctx=4096, threads=1, extra_args=["--slot-save-path", str(slots)]
    ) as running:
        yield running


def erase_slot(url: str) -> None:
    """Empty slot 0, so the server starts the next request as a fresh one would."""
    status, body = http_json(f"{url}/slots/0?action=erase", {}, 60)
    assert status == 200, body


def session_request(turns: int, cch: str) -> dict:
    """Return turn `turns` of a short agent conversation: the line, a system prompt, history."""
    messages = []
    for k in range(turns):
        messages.append({"role": "user", "content": f"Step {k}: run the tests, fix one."})
        if k + 1 < turns:
            messages.append({"role": "assistant", "content": f"Step {k} done: one fixed."})
    system = [{"type": "text", "text": LINE.format(cch)}, {"type": "text", "text": SYSTEM}]
    return {"model": "local", "max_tokens": 1, "system": system, "messages": messages}


def _n_lines(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def post(url: str, path: str, body: dict) -> dict:
    status, answer = http_json(f"{url}{path}", body, 300)
    assert status == 200, answer
    return answer


def line_end(tokenizer) -> int:
    """Return the token index where the rendered line ends (the chat template's system turn)."""
    return len(tokenizer("<|im_start|>system\n" + LINE.format(CCHS[0]))["input_ids"])


def test_a_proxied_session_lints_simulates_and_probes_cleanly(server, tmp_path, capsys, smol_tok):
    log, port = tmp_path / "captured.jsonl", free_port()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "labkit", "proxy", "--upstream", server.url, "--port", str(port)]
        + ["--log", str(log)],
        stdout=subprocess.PIPE,  # the live line per request
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        banner = proxy.stderr.readline()  # "labkit proxy: URL → upstream, logging to ..."
        assert f"127.0.0.1:{port}" in banner, banner
        proxy_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the banner comes just before serve_forever
            try:
                http_json(f"{proxy_url}/health", None, 5)
                break
            except Exception:
                time.sleep(0.2)
        erase_slot(server.url)
        answers = [
            post(proxy_url, "/v1/messages", session_request(k + 1, cch))
            for k, cch in enumerate(CCHS)
        ]
        deadline = time.monotonic() + 30  # the proxy logs a request after it answered it
        while time.monotonic() < deadline and _n_lines(log) < len(CCHS):
            time.sleep(0.1)
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
    live = proxy.stdout.read()
    captured = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(captured) == len(CCHS) and all(a["type"] == "message" for a in answers)
    counters = [c["labkit_proxy"]["counters"] for c in captured]
    assert [c["source"] for c in counters] == ["anthropic usage"] * 3, live
    assert live.count("yet the server reused the previous request") == 2, live
    # on /v1/messages the server normalised cch: each turn reused all of the previous prompt
    for before, after in zip(counters, counters[1:], strict=False):
        assert after["cached"] >= before["n_tokens"] - 1, counters

    # lint reads the log cleanly: the cch changed on every turn after the first
    assert main(["lint", str(log), "--json"]) == 0
    linted = json.loads(capsys.readouterr().out)
    assert linted["errors"] == []
    assert [r["cause"] for r in linted["requests"]] == ["first"] + ["attribution-header"] * 2

    # simulate and probe: the same log as token ids on /completion, where the line is text
    assert (
        main(["simulate", str(log), "--engine", "llamacpp", "--replies", "ignored", "--json"]) == 0
    )
    simulated = json.loads(capsys.readouterr().out)
    erase_slot(server.url)
    assert main(["probe", str(log), "--url", server.url, "--json"]) == 0
    probed = json.loads(capsys.readouterr().out)
    assert len(probed) == len(simulated) == 3
    assert [r["n_tokens"] for r in probed] == [r["n_tokens"] for r in simulated]
    assert [r["cached"] for r in probed] == [r["cached"] for r in simulated]
    assert [r["cached"] for r in probed] == [r["predicted_cached"] for r in probed]
    assert probed[0]["cached"] == 0
    assert all(0 < r["cached"] < line_end(smol_tok) for r in probed[1:])  # stops in the line


def test_the_anthropic_endpoint_normalises_cch_and_the_openai_one_does_not(server, smol_tok):
    erase_slot(server.url)
    messages, chat = cch_pair(server.url, SYSTEM, cchs=CCHS[:2])
    assert (messages.endpoint, chat.endpoint) == ("/v1/messages", "/v1/chat/completions")
    # another cch, the same prompt once normalised: all but the last token reused
    assert messages.cached == messages.n_tokens - 1 and messages.n_tokens > 250, messages
    # the same text on the OpenAI endpoint: the line is prompt text, reuse stops inside it
    assert abs(chat.n_tokens - messages.n_tokens) <= 5, (chat, messages)  # fffff vs 9f8e7
    assert chat.cached < line_end(smol_tok) < 50, chat
    assert chat.computed > chat.n_tokens - line_end(smol_tok)
