"""`labkit proxy`: a small HTTP proxy on 127.0.0.1 that forwards to a server and logs each request.

Point an agent at it (`ANTHROPIC_BASE_URL=http://127.0.0.1:PORT`, or an OpenAI base URL
`http://127.0.0.1:PORT/v1`) and it forwards every request to `--upstream` and every response
back unchanged — the body's bytes as they are, streamed chunk by chunk as the upstream sends
them (server-sent events stay live), the status and the headers except the hop-by-hop ones
(RFC 9110 §7.6.1: Connection, Keep-Alive, Transfer-Encoding, ...; `Host` names the upstream).
A chunked response is sent on chunked: the chunk boundaries may differ, the bytes do not.

For each chat request it appends a line to the log (`labkit.proxy.capture`: body redacted,
headers never written) with the upstream's own cached-token counters
(`labkit.proxy.counters`), and prints a live line: tokens, cached, computed, and the cause when
reuse broke. Standard library only (`http.server.ThreadingHTTPServer`, `http.client`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from labkit.lint.params import conversation_key
from labkit.proxy.capture import chat_request, live_line, log_record, reuse_cause
from labkit.proxy.counters import decode_body, response_counters
from labkit.redact import redact

__all__ = ["HOP_BY_HOP", "ProxyServer", "running_proxy", "serve_proxy"]

HOP_BY_HOP = frozenset(
    "connection keep-alive proxy-authenticate proxy-authorization proxy-connection te trailer "
    "trailers transfer-encoding upgrade expect".split()
)
CAPTURE_LIMIT_BYTES = 64 * 2**20  # responses beyond this are forwarded but not parsed
UPSTREAM_TIMEOUT_S = 900.0  # a long prefill on a CPU can take minutes


class ProxyServer(ThreadingHTTPServer):
    """The proxy: where it forwards, where it logs, and what it remembers between requests."""

    daemon_threads = True

    def __init__(self, upstream: str, port: int = 0, log=None, echo=None):
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"--upstream {redact(upstream)!r} is not an http(s) URL: give the server's base "
                "URL, e.g. http://127.0.0.1:8080"
            )
        self.upstream = parts
        self.log_path = Path(log) if log else None
        if self.log_path is not None:
            try:
                self.log_path.open("a", encoding="utf-8").close()
            except OSError as err:
                raise OSError(
                    f"cannot write the log {self.log_path} ({err.strerror}): give --log a path "
                    "in a folder you can write to"
                ) from None
        self.echo = echo or (lambda line: print(line, flush=True))
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.logged = 0
        self.previous: dict | None = None  # the last logged request
        self.by_conversation: dict[str, tuple[dict, dict | None]] = {}  # -> (request, counters)
        try:
            super().__init__(("127.0.0.1", port), _Handler)
        except OSError as err:
            raise OSError(
                f"cannot listen on 127.0.0.1:{port} ({err.strerror}): the port is taken; "
                "choose another with --port (0 picks a free one)"
            ) from None

    @property
    def url(self) -> str:
        """Return the proxy's base URL."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, request: dict, meta: dict, t_s: float, counters: dict | None) -> None:
        """Log one chat request and print its live line (in the order requests finish)."""
        with self.lock:
            index = self.logged
            # an agent's side requests (a title, a subagent) come in between: compare with the
            # last request of the same conversation (labkit.lint.params.conversation_key)
            key = conversation_key(request)
            same = self.by_conversation.get(key) if key is not None else None
            cause = reuse_cause(same[0] if same else self.previous, request)
            meta = {"index": index, **meta, "counters": counters}
            if self.log_path is not None:
                line = json.dumps(log_record(request, meta, t_s), ensure_ascii=False)
                with self.log_path.open("a", encoding="utf-8") as out:
                    out.write(line + "\n")
            self.logged, self.previous = index + 1, request
            if key is not None:
                self.by_conversation[key] = (request, counters)
            before = same[1] if same else None
            self.echo(live_line(index, meta, counters, cause, before))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ProxyServer

    def log_message(self, format, *args):  # noqa: A002 - the live line replaces the access log
        return

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self) -> None:
        arrived, t_s = time.monotonic(), time.monotonic() - self.server.started
        body = self._read_body()
        up = self.server.upstream
        https = up.scheme == "https"
        connect = http.client.HTTPSConnection if https else http.client.HTTPConnection
        conn = connect(up.hostname, up.port, timeout=UPSTREAM_TIMEOUT_S)
        path = up.path.rstrip("/") + self.path
        try:
            conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() == "host":
                    conn.putheader("Host", up.netloc)
                elif name.lower() not in HOP_BY_HOP:
                    conn.putheader(name, value)
            chunked_request = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            if chunked_request:
                conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            if chunked_request:
                conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n")
            elif body:
                conn.send(body)
            response = conn.getresponse()
        except OSError as err:
            conn.close()
            self._upstream_error(err)
            return
        try:
            captured = self._relay(response)
        finally:
            conn.close()
        request = chat_request(self.command, self.path, body)
        if request is not None:
            decoded = decode_body(captured, response.getheader("Content-Encoding"))
            kind = response.getheader("Content-Type")
            counters = response_counters(decoded, kind) if decoded else None
            meta = {
                "method": self.command,
                "path": self.path,
                "status": response.status,
                "ms": round((time.monotonic() - arrived) * 1000, 1),
                "captured_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            }
            self.server.record(request, meta, t_s, counters)

    def _relay(self, response: http.client.HTTPResponse) -> bytes:
        """Send the upstream's response on as it arrives; return its body (up to the limit)."""
        self.send_response_only(response.status, response.reason)
        no_body = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
        framed = response.chunked or response.getheader("Content-Length") is None
        chunked = framed and not no_body and self.request_version != "HTTP/1.0"
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif framed and not no_body:
            self.close_connection = True  # an HTTP/1.0 client: the end of the body is the close
        self.end_headers()
        captured, keep = [], 0
        while not no_body:
            data = response.read1(65536)
            if not data:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            self.wfile.flush()
            if keep + len(data) <= CAPTURE_LIMIT_BYTES:
                captured.append(data)
                keep += len(data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return b"".join(captured)

    def _upstream_error(self, err: OSError) -> None:
        message = (
            f"labkit proxy: the upstream {self.server.upstream.geturl()} did not answer "
            f"({type(err).__name__}: {err}): start the server, or check --upstream"
        )
        self.server.echo(redact(message))
        payload = json.dumps({"error": {"type": "proxy_error", "message": redact(message)}})
        self.send_response_only(502, "Bad Gateway")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload.encode())))
        self.end_headers()
        self.wfile.write(payload.encode())

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _forward


@contextlib.contextmanager
def running_proxy(upstream: str, *, port: int = 0, log=None, echo=None):
    """Run a proxy in a background thread for the `with` block; yield the ProxyServer."""
    server = ProxyServer(upstream, port, log, echo)
    thread = threading.Thread(target=server.serve_forever, name="labkit-proxy", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def serve_proxy(upstream: str, *, port: int = 8081, log=None) -> None:
    """Run the proxy in the foreground until Ctrl-C."""
    server = ProxyServer(upstream, port, log)
    where = f"logging to {server.log_path}" if server.log_path else "not logging (no --log)"
    print(
        f"labkit proxy: {server.url} → {redact(upstream)}, {where}. Point the agent at "
        f"{server.url} (e.g. ANTHROPIC_BASE_URL={server.url}); Ctrl-C stops.",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print(f"labkit proxy: stopped after {server.logged} logged request(s).", file=sys.stderr)
    finally:
        server.server_close()
