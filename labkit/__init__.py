"""labkit: measure how LLM inference reuses its KV cache, and what one changing token costs."""

from labkit.device import default_dtype, device_name, pick_device
from labkit.models import (
    DEFAULT_MODEL,
    ModelNotAvailableError,
    default_model_ready,
    load_model,
    load_tokenizer,
)
from labkit.timing import Timing, measure

__all__ = [
    "DEFAULT_MODEL",
    "ModelNotAvailableError",
    "Timing",
    "default_dtype",
    "default_model_ready",
    "device_name",
    "load_model",
    "load_tokenizer",
    "measure",
    "pick_device",
]
