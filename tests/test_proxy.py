"""`labkit proxy`: byte-identical forwarding (JSON and live streams), the redacted log as a
session file, the server's counters, the live line, and a real llama-server when one is built."""

import gzip
import http.client
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labkit.cli import main
from labkit.lint import lint_requests, read_captured
from labkit.proxy import HOP_BY_HOP, live_line, response_counters, running_proxy
from labkit.resources import data_path
from labkit.server import llama_server
from labkit.sessions import load_requests

API_KEY = "sk-ant-" + "api03-" + "Qx9" * 12  # fake, built from parts
BODY_SECRET = "password=" + "tr0ub4dor" + "-and-3"
SSE_EVENTS = [
    b'event: message_start\ndata: {"type": "message_start", "message": {"usage": '
    b'{"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 300}}}\n\n',
    b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": '
    b'{"type": "text_delta", "text": "Hel"}}\n\n',
    b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": '
    b'{"type": "text_delta", "text": "lo"}}\n\n',
    b'event: message_stop\ndata: {"type": "message_stop"}\n\n',
]


class FakeUpstream(BaseHTTPRequestHandler):
    """A deterministic server: JSON with llama.cpp timings, an SSE stream, a health check.

    Its answers depend only on the request, so direct and proxied answers can be compared.
    """

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        return

    def _send(self, status: int, body: bytes, kind: str, extra=()) -> None:
        self.send_response_only(status)
        for name, value in [("Content-Type", kind), ("Content-Length", str(len(body))), *extra]:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.server.seen.append((self.command, self.path, self.headers.items(), b""))
        self._send(200, b'{"status": "ok"}', "application/json", [("X-Upstream", "fake")])

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.command, self.path, self.headers.items(), body))
        if self.path.endswith("/stream"):
            self.send_response_only(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Upstream", "fake")
            self.end_headers()
            for i, event in enumerate(SSE_EVENTS):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
                if i == 0:
                    self.server.gate.wait(10)  # the rest only once the test has seen event 0
            self.wfile.write(b"0\r\n\r\n")
            return
        n_tokens = len(body) // 4  # deterministic counters: a function of the body only
        cached = body.find(b"cch=") // 4 if b"cch=" in body else n_tokens - 7  # stops at cch=
        reply = {
            "id": "fake-1",
            "content": [{"type": "text", "text": "ok"}],
            "timings": {"cache_n": cached, "prompt_n": n_tokens - cached, "prompt_ms": 1.5},
        }
        payload = json.dumps(reply).encode()
        if "gzip" in (self.headers.get("Accept-Encoding") or ""):
            payload = gzip.compress(payload, mtime=0)
            self._send(200, payload, "application/json", [("Content-Encoding", "gzip")])
        else:
            self._send(200, payload, "application/json", [("X-Upstream", "fake")])


@pytest.fixture
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeUpstream)
    server.seen, server.gate = [], threading.Event()
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.gate.set()
    server.shutdown()
    server.server_close()


def url_of(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def fetch(base: str, method: str, path: str, body: bytes = b"", headers=None, timeout_s=120):
    """Return (status, headers without hop-by-hop ones, body bytes) of one request."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    conn.request(method, path, body=body or None, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
    conn.close()
    return response.status, kept, data


def anthropic_request(turns: int = 1, cch: str | None = None) -> dict:
    system = [{"type": "text", "text": "You are a coding agent. Keep changes small."}]
    if cch:
        system.insert(
            0,
            {
                "type": "text",
                "text": f"x-anthropic-billing-header: cc_version=2.1.39"
                f".c39; cc_entrypoint=cli; cch={cch};",
            },
        )
    messages = [{"role": "user", "content": f"Fix the test. My {BODY_SECRET} is in .env."}]
    for k in range(1, turns):
        messages += [
            {"role": "assistant", "content": f"Step {k} done."},
            {"role": "user", "content": f"Go on with step {k + 1}."},
        ]
    return {"model": "qwen2.5-coder", "max_tokens": 256, "system": system, "messages": messages}


LONG_SYSTEM = data_path("long_system_prompt.txt").read_text(encoding="utf-8")
HEADERS = {"Content-Type": "application/json", "x-api-key": API_KEY, "anthropic-version": "1"}


def test_forwarding_is_byte_identical_both_ways(upstream, tmp_path):
    body = json.dumps(anthropic_request(2)).encode()
    cases = [
        ("POST", "/v1/messages", body, HEADERS),
        ("POST", "/v1/messages", body, HEADERS | {"Accept-Encoding": "gzip"}),
        ("GET", "/health?x=1", b"", {"Accept": "application/json"}),
        ("POST", "/v1/messages/stream", body, HEADERS),
    ]
    upstream.gate.set()
    with running_proxy(url_of(upstream), log=tmp_path / "log.jsonl", echo=lambda _: None) as proxy:
        for method, path, data, headers in cases:
            direct = fetch(url_of(upstream), method, path, data, headers)
            seen_direct = upstream.seen[-1]
            proxied = fetch(proxy.url, method, path, data, headers)
            seen_proxied = upstream.seen[-1]
            assert proxied == direct  # status, headers (but hop-by-hop ones) and body bytes
            assert seen_proxied[:2] == seen_direct[:2] and seen_proxied[3] == seen_direct[3]
            without_host = lambda items: [(k, v) for k, v in items if k.lower() != "host"]
            assert without_host(seen_proxied[2]) == without_host(seen_direct[2])
    assert fetch(url_of(upstream), "POST", "/v1/messages/stream", body, HEADERS)[2] == b"".join(
        SSE_EVENTS
    )


def test_a_stream_is_forwarded_as_it_arrives(upstream):
    body = json.dumps(anthropic_request()).encode()
    lines = []
    with running_proxy(url_of(upstream), echo=lines.append) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.server_address[1], timeout=20)
        conn.request("POST", "/v1/messages/stream", body=body, headers=HEADERS)
        response = conn.getresponse()
        first = response.read1()  # the upstream holds the rest until the gate opens
        assert first == SSE_EVENTS[0] and not upstream.gate.is_set()
        upstream.gate.set()
        rest = response.read()
        conn.close()
    assert first + rest == b"".join(SSE_EVENTS)
    assert "312 tokens, 300 cached, 12 computed" in lines[0]  # from message_start's usage


def test_the_log_is_a_redacted_session_file_that_lint_and_simulate_read(
    upstream, tmp_path, tiny_tok, capsys
):
    log = tmp_path / "session.jsonl"
    requests = [anthropic_request(1), anthropic_request(2), anthropic_request(3, cch="1a2b3")]
    requests.append(anthropic_request(4, cch="9f8e7"))
    lines = []
    with running_proxy(url_of(upstream), log=log, echo=lines.append) as proxy:
        for request in requests:
            fetch(proxy.url, "POST", "/v1/messages", json.dumps(request).encode(), HEADERS)
        fetch(proxy.url, "GET", "/v1/models")  # forwarded, not logged
    text = log.read_text()
    assert API_KEY not in text and API_KEY[10:] not in text and "x-api-key" not in text
    assert "tr0ub4dor" not in text and "[REDACTED]" in text
    captured, errors = read_captured(log)
    assert errors == [] and len(captured) == 4
    assert len(load_requests(log)) == 4  # what `labkit simulate` and `labkit probe` read
    entries = [json.loads(line) for line in text.splitlines()]
    assert [e["labkit_proxy"]["index"] for e in entries] == [0, 1, 2, 3]
    assert all(e["labkit_proxy"]["counters"]["source"] == "llama.cpp timings" for e in entries)
    assert entries[0]["t_s"] <= entries[1]["t_s"] <= entries[3]["t_s"]
    # the live lines: the server's counters, and the cause where reuse broke
    assert len(lines) == 4 and "reuse broke" not in lines[1]
    counters = entries[1]["labkit_proxy"]["counters"]
    assert f"{counters['n_tokens']:,} tokens, {counters['cached']:,} cached" in lines[1]
    assert "(prefill 2 ms)" in lines[1]  # the fake's prompt_ms, 1.5
    assert "reuse broke at system[0]" in lines[2]  # the line appears
    assert "reuse broke at system[0]: changing id in the attribution line" in lines[3]
    assert "cch=1a2b3 → cch=9f8e7" in lines[3]
    report = lint_requests([r for r, _ in captured], tiny_tok, api=None)
    assert [r.cause for r in report.requests] == [
        "first",
        "append-only",
        "attribution-header",
        "attribution-header",
    ]
    lint = ["lint", str(log), "--model", "tiny-random"]
    assert main(lint) == 0
    assert main([*lint, "--fail-on", "attribution-header"]) == 4  # a --fail-on cause found
    assert main(["simulate", str(log), "--engine", "llamacpp", "--model", "tiny-random"]) == 0
    assert "hit rate" in capsys.readouterr().out


def test_counters_in_each_servers_documented_shape():
    llama = {"timings": {"cache_n": 90, "prompt_n": 10, "prompt_ms": 12.5}}
    assert response_counters(json.dumps(llama).encode()) == {
        "n_tokens": 100, "cached": 90, "computed": 10, "source": "llama.cpp timings",
        "prompt_ms": 12.5,
    }  # fmt: skip
    openai = {"usage": {"prompt_tokens": 2048, "prompt_tokens_details": {"cached_tokens": 1920}}}
    got = response_counters(json.dumps(openai).encode(), "application/json")
    assert (got["n_tokens"], got["cached"], got["computed"]) == (2048, 1920, 128)
    responses = {"usage": {"input_tokens": 50, "input_tokens_details": {"cached_tokens": 0}}}
    assert response_counters(json.dumps(responses).encode())["computed"] == 50
    anthropic = {"usage": {"input_tokens": 5, "cache_creation_input_tokens": 20,
                           "cache_read_input_tokens": 1000, "output_tokens": 9}}  # fmt: skip
    got = response_counters(json.dumps(anthropic).encode())
    assert (got["n_tokens"], got["cached"], got["computed"]) == (1025, 1000, 25)
    chunks = [{"choices": [{"delta": {"content": "a"}}], "usage": None},
              {"choices": [], "usage": openai["usage"]}]  # fmt: skip
    stream = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    assert response_counters(stream.encode(), "text/event-stream")["cached"] == 1920
    llama_stream = f'data: {{"content": "a"}}\n\ndata: {json.dumps(llama)}\n\n'
    assert response_counters(llama_stream.encode(), "text/event-stream")["cached"] == 90
    assert response_counters(b"not json") is None
    assert response_counters(b'{"usage": {"prompt_tokens": 7}}')["cached"] is None


def test_a_missing_upstream_answers_502_and_says_what_to_do(tmp_path):
    lines = []
    with running_proxy("http://127.0.0.1:9", echo=lines.append) as proxy:  # port 9: discard
        status, _, body = fetch(proxy.url, "POST", "/v1/messages", b"{}", HEADERS)
    assert status == 502 and b"start the server, or check --upstream" in body
    assert "did not answer" in lines[0]


def test_cli_rejects_a_bad_upstream_or_log(capsys, tmp_path):
    assert main(["proxy", "--upstream", "ftp://example"]) == 2
    assert "is not an http(s) URL" in capsys.readouterr().err
    bad_log = str(tmp_path / "no" / "such" / "folder" / "log.jsonl")
    assert main(["proxy", "--upstream", "http://127.0.0.1:9", "--log", bad_log]) == 2
    assert "cannot write the log" in capsys.readouterr().err


# -- a real llama-server, when one is built ------------------------------------------------------


@pytest.mark.slow  # a real llama-server: minutes on a busy CPU
def test_real_llama_server_through_the_proxy(tmp_path, tiny_tok, llama_server_ready):
    # a GGUF other than the default model's: LABKIT_GGUF (the binary: LABKIT_LLAMA_SERVER)
    with llama_server(os.environ.get("LABKIT_GGUF"), slots=1, ctx=4096) as server:
        base = server.url
        log, lines = tmp_path / "real.jsonl", []
        with running_proxy(base, log=log, echo=lines.append) as proxy:
            for method, path, data in (
                ("GET", "/health", b""),
                ("POST", "/tokenize", b'{"content": "The cache keeps the prefix."}'),
                ("POST", "/detokenize", b'{"tokens": [504, 3852]}'),
            ):  # deterministic answers: byte for byte the same through the proxy
                assert fetch(proxy.url, method, path, data) == fetch(base, method, path, data)
            for request in [_chat(k) for k in range(1, 4)]:
                data = json.dumps(request).encode()
                direct = fetch(base, "POST", "/v1/chat/completions", data, HEADERS)
                proxied = fetch(proxy.url, "POST", "/v1/chat/completions", data, HEADERS)
                assert proxied[0] == direct[0] == 200
                a, b = json.loads(direct[2]), json.loads(proxied[2])
                assert set(a) == set(b) and a["model"] == b["model"]  # ids and timings differ
            stream = json.dumps(_chat(4) | {"stream": True}).encode()
            status, headers, body = fetch(proxy.url, "POST", "/v1/chat/completions", stream)
            assert status == 200 and body.rstrip().endswith(b"data: [DONE]")
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        counters = [e["labkit_proxy"]["counters"] for e in entries]
        assert len(entries) == 4 and len(lines) == 4  # the chat requests, not /tokenize
        assert all(c["source"] == "llama.cpp timings" for c in counters)  # the stream's too
        assert all(c["cached"] > 0 for c in counters[:3])  # the direct request filled the cache
        assert counters[3]["cached"] > 0  # the streamed turn extends the third
        assert read_captured(log)[1] == [] and len(load_requests(log)) == 4
        report = lint_requests(load_requests(log), tiny_tok, api=None)
        assert [r.cause for r in report.requests[1:]] == ["append-only"] * 3
        # Claude Code's endpoint: Anthropic Messages, the attribution line changing every turn
        claude_log, lines = tmp_path / "claude.jsonl", []
        with running_proxy(base, log=claude_log, echo=lines.append) as proxy:
            for turns, cch in ((1, "1a2b3"), (2, "9f8e7")):
                body = json.dumps(anthropic_request(turns, cch) | {"max_tokens": 4}).encode()
                assert fetch(proxy.url, "POST", "/v1/messages", body, HEADERS)[0] == 200
        counters = [json.loads(x)["labkit_proxy"]["counters"] for x in claude_log.open()]
        assert all(c is not None and c["n_tokens"] > 0 for c in counters)
        # llama.cpp with PR #21793 normalizes cch= on /v1/messages; older servers do not: the
        # line must say which happened, from the server's own counters
        if counters[1]["cached"] >= 0.9 * counters[0]["n_tokens"]:
            said = "changing id in the attribution line (cch=) (cch=1a2b3 → cch=9f8e7), yet "
            assert said + "the server reused" in lines[1]
        else:
            assert "reuse broke at system[0]: changing id in the attribution line" in lines[1]
        # on the OpenAI endpoint the line is prompt text: reuse stops inside it
        system = anthropic_request(1, "1a2b3")["system"]
        line = system[0]["text"]
        chat_log, lines = tmp_path / "chat.jsonl", []
        with running_proxy(base, log=chat_log, echo=lines.append) as proxy:
            for k, cch in enumerate(("1a2b3", "9f8e7"), start=1):
                chat = _chat(k)
                text = line.replace("1a2b3", cch) + "\n" + LONG_SYSTEM[:1200]  # ~250 tokens
                chat["messages"][0]["content"] = text
                fetch(proxy.url, "POST", "/v1/chat/completions", json.dumps(chat).encode())
        counters = [json.loads(x)["labkit_proxy"]["counters"] for x in chat_log.open()]
        assert counters[1]["cached"] < counters[0]["n_tokens"] / 4  # it stops inside the line
        assert "reuse broke at messages[0]: changing id in the attribution line" in lines[1]


def _chat(turns: int) -> dict:
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    for k in range(turns):
        messages += [{"role": "user", "content": f"Say the number {k}."}]
        if k + 1 < turns:
            messages += [{"role": "assistant", "content": f"{k}"}]
    return {"model": "local", "messages": messages, "max_tokens": 4, "temperature": 0, "seed": 1}


def test_side_requests_of_another_model_do_not_hide_the_main_conversation(upstream):
    title = [{"role": "user", "content": "Title?"}]
    side = {"model": "small-model", "max_tokens": 8, "messages": title}
    lines = []
    with running_proxy(url_of(upstream), echo=lines.append) as proxy:
        for request in (anthropic_request(1), side, anthropic_request(2)):
            fetch(proxy.url, "POST", "/v1/messages", json.dumps(request).encode(), HEADERS)
    assert "reuse broke at model: another model" in lines[1]  # the side request itself
    assert "reuse broke" not in lines[2]  # compared with the last request of its own model


def test_the_live_line_says_when_the_server_lost_a_cache_the_request_could_use():
    meta = {"method": "POST", "path": "/v1/messages", "status": 200, "ms": 12.0}
    lost = live_line(3, meta, {"n_tokens": 500, "cached": 10, "computed": 490}, ("", "", ""),
                     {"n_tokens": 400, "cached": 390, "computed": 10})  # fmt: skip
    assert "500 tokens, 10 cached, 490 computed" in lost and "server reused less than half" in lost
    kept = live_line(3, meta, {"n_tokens": 500, "cached": 399, "computed": 101}, ("", "", ""),
                     {"n_tokens": 400, "cached": 390, "computed": 10})  # fmt: skip
    assert "less than half" not in kept and "—" not in kept
    cause = ("attribution-header", "system[0]", "cch=1a2b3 → cch=9f8e7")
    before = {"n_tokens": 400, "cached": 390, "computed": 10}
    full = {"n_tokens": 500, "cached": 399, "computed": 101}
    normalized = live_line(4, meta, full, cause, before)
    assert "changed at system[0]" in normalized and "yet the server reused" in normalized
    broke = live_line(4, meta, {"n_tokens": 500, "cached": 3, "computed": 497}, cause, before)
    assert "reuse broke at system[0]" in broke and "yet" not in broke
