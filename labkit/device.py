"""Pick the device and dtype to run on, and name the hardware every figure ran on."""

from __future__ import annotations

import os
import platform
from functools import cache

import torch

DEVICE_ENV = "LABKIT_DEVICE"
_VALID_DEVICES = ("cuda", "mps", "cpu")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """Return the device to use: the argument, else $LABKIT_DEVICE, else cuda, mps, cpu."""
    wanted = device if device is not None else os.environ.get(DEVICE_ENV) or None
    if wanted is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(wanted)
    except RuntimeError:
        chosen = None
    if chosen is None or chosen.type not in _VALID_DEVICES:
        raise ValueError(
            f"Unknown device {str(wanted)!r}: use one of {', '.join(_VALID_DEVICES)} "
            f"(or unset {DEVICE_ENV} to pick automatically)."
        )
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"Device {str(wanted)!r} was asked for but torch sees no CUDA GPU "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda is not None}). "
            f"Unset {DEVICE_ENV} to run on the CPU, or install a CUDA build of torch."
        )
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(
            f"Device 'mps' was asked for but this machine has no Apple GPU; unset {DEVICE_ENV}."
        )
    return chosen


def default_dtype(device: str | torch.device) -> torch.dtype:
    """Return a sensible dtype: bf16 on recent CUDA, fp16 on older CUDA and MPS, fp32 on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


@cache
def cpu_model_name() -> str:
    """Return the CPU's model name (/proc/cpuinfo, else what platform knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: str | torch.device | None = None) -> str:
    """Return a human name for the hardware: GPU model, or CPU model and torch's thread count."""
    device = pick_device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"{torch.cuda.get_device_name(index)} (CUDA {torch.version.cuda})"
    if device.type == "mps":
        return f"Apple GPU (MPS) on {platform.machine()}"
    return f"{cpu_model_name()}, {torch.get_num_threads()} threads (CPU)"


def synchronize(device: str | torch.device) -> None:
    """Wait until queued work on the device has finished (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
