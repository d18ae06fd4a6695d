"""labkit: measure how LLM inference reuses its KV cache, and what one changing token costs.

The model-side library sits at the top (models, fetch, device, timing, cache, prefix_cache); the
subpackages below it hold one concern each: `labkit.sessions` (agent requests as data),
`labkit.engines` (serving-engine models), `labkit.experiments` (measurements on the model),
`labkit.lint` (diagnose captured traffic), `labkit.server` (a real llama.cpp server and probes of
any server) and `labkit.viz` (figures and widgets). The names below
are the ones the notebooks use most. Importing labkit loads no model and changes no setting, and
imports only what a name asked for needs (PEP 562): `labkit lint` and `labkit proxy` start
without torch.
"""

from importlib import import_module
from importlib.util import find_spec

_HOMES = {  # public name -> the module that defines it, imported on first use
    "labkit.cache": [
        "CacheMismatchError",
        "cache_bytes",
        "cache_len",
        "common_prefix_len",
        "copy_cache",
        "crop_cache",
        "extend",
        "extend_checked",
        "kv_cache_bytes",
        "prefill",
    ],
    "labkit.device": ["default_dtype", "device_name", "pick_device"],
    "labkit.engines": ["ENGINE_NAMES", "ServeResult", "make_engine"],
    "labkit.env": ["environment_report", "small_mode"],
    "labkit.experiments": ["prefix_reuse_sweep"],
    "labkit.lint": ["lint_file", "lint_requests"],
    "labkit.models": [
        "DEFAULT_MODEL",
        "ModelNotAvailableError",
        "default_model_ready",
        "load_model",
        "load_tokenizer",
    ],
    "labkit.prefix_cache": ["PrefixCache"],
    "labkit.sessions": [
        "RenderedRequest",
        "SessionFormatError",
        "attribution_enabled",
        "billing_header",
        "load_requests",
        "render_request",
        "render_session",
        "with_attribution",
    ],
    "labkit.timing": ["Timing", "measure"],
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str):
    """Import a public name's module (or a submodule, `labkit.cache`) when first used (PEP 562)."""
    if name in _HOME_OF:
        value = getattr(import_module(_HOME_OF[name]), name)
    elif not name.startswith("_") and find_spec(f"labkit.{name}") is not None:
        value = import_module(f"labkit.{name}")  # what `import labkit` used to load with it
    else:
        raise AttributeError(f"module 'labkit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = sorted(_HOME_OF)  # the public names are the ones `_HOMES` places
