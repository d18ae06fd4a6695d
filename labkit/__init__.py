"""labkit: measure how LLM inference reuses its KV cache, and what one changing token costs.

The model-side library sits at the top (models, fetch, device, timing, cache, prefix_cache); the
subpackages below it hold one concern each: `labkit.sessions` (agent requests as data),
`labkit.engines` (serving-engine models), `labkit.experiments` (measurements on the model),
`labkit.lint` (diagnose captured traffic), `labkit.server` (a real llama.cpp server and probes of
any server) and `labkit.viz` (figures and widgets). The names below
are the ones the notebooks use most. Importing labkit loads no model and changes no setting.
"""

from labkit.cache import (
    CacheMismatchError,
    cache_bytes,
    cache_len,
    common_prefix_len,
    copy_cache,
    crop_cache,
    extend,
    extend_checked,
    kv_cache_bytes,
    prefill,
)
from labkit.device import default_dtype, device_name, pick_device
from labkit.engines import ENGINE_NAMES, ServeResult, make_engine
from labkit.env import environment_report, small_mode
from labkit.experiments import prefix_reuse_sweep
from labkit.lint import lint_file, lint_requests
from labkit.models import (
    DEFAULT_MODEL,
    ModelNotAvailableError,
    default_model_ready,
    load_model,
    load_tokenizer,
)
from labkit.prefix_cache import PrefixCache
from labkit.sessions import (
    RenderedRequest,
    SessionFormatError,
    attribution_enabled,
    billing_header,
    load_requests,
    render_request,
    render_session,
    with_attribution,
)
from labkit.timing import Timing, measure

__all__ = [
    "DEFAULT_MODEL",
    "ENGINE_NAMES",
    "CacheMismatchError",
    "ModelNotAvailableError",
    "PrefixCache",
    "RenderedRequest",
    "ServeResult",
    "SessionFormatError",
    "Timing",
    "attribution_enabled",
    "billing_header",
    "cache_bytes",
    "cache_len",
    "common_prefix_len",
    "copy_cache",
    "crop_cache",
    "default_dtype",
    "default_model_ready",
    "device_name",
    "environment_report",
    "extend",
    "extend_checked",
    "kv_cache_bytes",
    "lint_file",
    "lint_requests",
    "load_model",
    "load_requests",
    "load_tokenizer",
    "make_engine",
    "measure",
    "pick_device",
    "prefill",
    "prefix_reuse_sweep",
    "render_request",
    "render_session",
    "small_mode",
    "with_attribution",
]
