"""Serving-engine models (llama.cpp, vLLM, SGLang, an Anthropic-style cache), session simulation."""

from labkit.engines.base import (
    Engine,
    ServeResult,
    Tokens,
    as_tokens,
    common_prefix_len,
    token_bytes,
)
from labkit.engines.cost import api_session_cost, input_cost_usd
from labkit.engines.hosted_api import AnthropicAPI, load_prompt_caching_apis
from labkit.engines.llamacpp import LlamaCppServer
from labkit.engines.paged import SGLangRadixCache, VllmPrefixCache, block_hashes
from labkit.engines.registry import (
    ENGINE_LABELS,
    ENGINE_NAMES,
    make_engine,
    request_fields,
    simulate,
)
from labkit.engines.replies import REPLIES, api_view, generated_after
from labkit.engines.session_sim import (
    compare_engines,
    cumulative,
    engine_options,
    hit_rate,
    render_variant,
    simulate_session,
    text_table,
    turn_rows,
)

__all__ = [
    "ENGINE_LABELS",
    "ENGINE_NAMES",
    "REPLIES",
    "AnthropicAPI",
    "Engine",
    "LlamaCppServer",
    "SGLangRadixCache",
    "ServeResult",
    "Tokens",
    "VllmPrefixCache",
    "api_session_cost",
    "api_view",
    "as_tokens",
    "block_hashes",
    "common_prefix_len",
    "compare_engines",
    "cumulative",
    "engine_options",
    "generated_after",
    "hit_rate",
    "input_cost_usd",
    "load_prompt_caching_apis",
    "make_engine",
    "render_variant",
    "request_fields",
    "simulate",
    "simulate_session",
    "text_table",
    "token_bytes",
    "turn_rows",
]
