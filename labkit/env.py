"""Facts about the run: the small-mode switch, and the report notebooks and `labkit info` show."""

from __future__ import annotations

import os
import platform
from importlib import metadata

from labkit.device import DEVICE_ENV, device_name, pick_device
from labkit.models import (
    MODEL_ENV,
    cache_dir,
    default_model_dir,
    default_model_ready,
    resolve_model_name,
)

SMALL_ENV = "LABKIT_SMALL"
_PACKAGES = ("labkit", "torch", "transformers", "accelerate", "gguf", "plotly", "ipywidgets")


def small_mode() -> bool:
    """Return True when $LABKIT_SMALL asks notebooks for their small, fast run (tests set it)."""
    return os.environ.get(SMALL_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def environment_report() -> dict:
    """Return versions, device, model and cache facts as a dict."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    device = pick_device()
    return {
        "versions": versions,
        "device": device.type,
        "device_name": device_name(device),
        "model": resolve_model_name(),
        "cache_dir": str(cache_dir()),
        "default_model_dir": str(default_model_dir()),
        "default_model_ready": default_model_ready(),
        "small_mode": small_mode(),
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE", ""),
        "overrides": {k: os.environ.get(k, "") for k in (MODEL_ENV, DEVICE_ENV, SMALL_ENV)},
    }
