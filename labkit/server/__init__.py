"""A real llama.cpp server: build it, run it, replay sessions on any server and read its counts."""

from labkit.server.bench import PrefillRow, format_prefill_table, prefill_compare, server_prefill_ms
from labkit.server.build import (
    BINARY_ENV,
    ServerBuildError,
    ServerNotBuiltError,
    build_dir,
    build_server,
    built_binary,
    find_server_binary,
)
from labkit.server.endpoints import ENDPOINTS, EndpointReuse, cch_pair
from labkit.server.probe import (
    API_NAMES,
    ProbeError,
    ProbeRow,
    chat_messages,
    detect_api,
    probe_request,
    probe_session,
    rows_json,
)
from labkit.server.process import (
    LlamaServer,
    PortInUseError,
    ServerStartError,
    free_port,
    llama_server,
)
from labkit.server.responses import (
    ServerReport,
    parse_llamacpp,
    parse_response,
    parse_sglang,
    parse_usage,
)

__all__ = [
    "API_NAMES",
    "BINARY_ENV",
    "ENDPOINTS",
    "EndpointReuse",
    "LlamaServer",
    "PortInUseError",
    "PrefillRow",
    "ProbeError",
    "ProbeRow",
    "ServerBuildError",
    "ServerNotBuiltError",
    "ServerReport",
    "ServerStartError",
    "build_dir",
    "build_server",
    "built_binary",
    "cch_pair",
    "chat_messages",
    "detect_api",
    "find_server_binary",
    "format_prefill_table",
    "free_port",
    "llama_server",
    "parse_llamacpp",
    "parse_response",
    "parse_sglang",
    "parse_usage",
    "prefill_compare",
    "probe_request",
    "probe_session",
    "rows_json",
    "server_prefill_ms",
]
