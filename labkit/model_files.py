"""Where the default model lives on disk, and whether its files are whole.

`labkit fetch` converts the default model into `default_model_dir()` and writes a manifest
(`labkit-manifest.json`: bytes and sha256 of each file); `verify_model_dir` checks the sizes and
each safetensors header against its file (and the hashes with hashes=True, `labkit info
--verify`). Nothing here loads a model: `labkit.models` does, after these checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

__all__ = [
    "CACHE_ENV",
    "DEFAULT_MODEL",
    "MANIFEST",
    "cache_dir",
    "default_model_dir",
    "default_model_ready",
    "sha256_file",
    "verify_model_dir",
    "write_manifest",
]

CACHE_ENV = "LABKIT_CACHE"
DEFAULT_MODEL = "SmolLM2-135M-Instruct"
MANIFEST = "labkit-manifest.json"


def cache_dir() -> Path:
    """Return labkit's cache folder: $LABKIT_CACHE, else ~/.cache/labkit."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "labkit").expanduser()


def default_model_dir() -> Path:
    """Return the folder the default model is converted into by `labkit fetch`."""
    return cache_dir() / "models" / DEFAULT_MODEL


def default_model_ready() -> bool:
    """Return True when the default model is fetched, converted and passes the size checks."""
    folder = default_model_dir()
    if not ((folder / "model.safetensors").is_file() and (folder / "labkit-source.json").is_file()):
        return False
    return not verify_model_dir(folder)


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path) -> dict:
    """Write `labkit-manifest.json` in a model folder: bytes and sha256 of every other file."""
    folder = Path(folder)
    files = {
        p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _safetensors_problem(path: Path) -> str | None:
    """Return what is wrong with a safetensors file's header and size, None if they agree."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > size - 8:
                return f"{path.name}: header longer than the file"
            header = json.loads(f.read(header_len))
        end = max(
            (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"),
            default=0,
        )
    except (struct.error, ValueError, KeyError, TypeError, IndexError):
        return f"{path.name}: not a readable safetensors file"
    if 8 + header_len + end != size:
        return f"{path.name}: {size:,} bytes, its header says {8 + header_len + end:,}"
    return None


def verify_model_dir(folder: Path, *, hashes: bool = False) -> list[str]:
    """Return the problems of a model folder (empty when it is whole): every file its manifest
    lists must exist with its size (and its sha256 with hashes=True); safetensors files must
    match their own headers. A folder without a manifest (fetched by an older labkit) is checked
    by its headers only."""
    folder = Path(folder)
    problems = [p for f in sorted(folder.glob("*.safetensors")) if (p := _safetensors_problem(f))]
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return problems + (["no manifest (run `labkit fetch` to add one)"] if hashes else [])
    try:
        files = json.loads(manifest_path.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return problems + [f"{MANIFEST}: unreadable"]
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != entry["bytes"]:
            problems.append(f"{name}: {path.stat().st_size:,} bytes, expected {entry['bytes']:,}")
        elif hashes and sha256_file(path) != entry["sha256"]:
            problems.append(f"{name}: sha256 differs from the manifest (the file changed)")
    return problems
