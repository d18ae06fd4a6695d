"""`labkit proxy`: capture an agent's traffic to a server, with the server's own cache counters."""

from labkit.proxy.capture import chat_request, live_line, log_record, redact_json, reuse_cause
from labkit.proxy.counters import counters_from, decode_body, response_counters, stream_events
from labkit.proxy.server import HOP_BY_HOP, ProxyServer, running_proxy, serve_proxy

__all__ = [
    "HOP_BY_HOP",
    "ProxyServer",
    "chat_request",
    "counters_from",
    "decode_body",
    "live_line",
    "log_record",
    "redact_json",
    "response_counters",
    "reuse_cause",
    "running_proxy",
    "serve_proxy",
    "stream_events",
]
