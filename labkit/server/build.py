"""Build a pinned llama.cpp `llama-server` once into labkit's cache, and find the binary to run.

The source is the `llama-cpp-python` source distribution on PyPI, pinned by version and sha256:
it vendors llama.cpp (MIT license) under `vendor/llama.cpp`, a PyPI download works wherever
`pip` does (classrooms often reach only the package index), and its version names one exact
llama.cpp tree, whose server reports `timings.cache_n`. Only the `llama-server` target is built,
with cmake + ninja in Release: native CPU flags (`GGML_NATIVE`), CUDA where `nvidia-smi` and
`nvcc` both work, no tests, no web UI (it would be downloaded), no OpenSSL, static libraries so
the binary moves as one file. cmake and ninja come from PyPI (`pip install cmake ninja` into this
Python's environment) when they are not on PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from labkit.fetch import sha256_file
from labkit.model_files import cache_dir

__all__ = [
    "BINARY_ENV",
    "LLAMA_CPP_PYTHON_VERSION",
    "SDIST_SHA256",
    "ServerBuildError",
    "ServerNotBuiltError",
    "build_dir",
    "build_server",
    "built_binary",
    "find_server_binary",
]

BINARY_ENV = "LABKIT_LLAMA_SERVER"
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SDIST_NAME = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
_VENDORED = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp"
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",  # tools/server lives under tools/
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",  # the web UI needs npm ...
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # ... or a download at build time; the API works without it
    "-DLLAMA_OPENSSL=OFF",  # labkit talks to 127.0.0.1 over plain HTTP
)
# (LLAMA_CURL, once the switch that kept the server from downloading models, is deprecated in
# this llama.cpp; labkit always passes a local GGUF with -m.)


class ServerBuildError(RuntimeError):
    """llama-server could not be downloaded, verified or compiled."""


class ServerNotBuiltError(RuntimeError):
    """No llama-server binary was found to run."""


def build_dir() -> Path:
    """Return the folder the pinned llama.cpp is downloaded and built in."""
    return cache_dir() / "llama.cpp" / LLAMA_CPP_PYTHON_VERSION


def built_binary() -> Path:
    """Return where `labkit server build` puts llama-server (it may not exist yet)."""
    return build_dir() / "build" / "bin" / "llama-server"


def _stamp() -> Path:
    return build_dir() / "labkit-build.json"


def find_server_binary() -> Path:
    """Return llama-server: $LABKIT_LLAMA_SERVER, else `llama-server` on PATH, else labkit's."""
    given = os.environ.get(BINARY_ENV)
    if given:
        path = Path(given).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ServerNotBuiltError(
                f"{BINARY_ENV}={given} is not an executable file: fix the path or unset it."
            )
        return path
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    if built_binary().is_file() and _stamp().is_file():
        return built_binary()
    raise ServerNotBuiltError(
        "No llama-server found: run `labkit server build` (about 15 minutes on 2 cores, once; "
        f"it goes to {build_dir()}), or put llama-server on PATH, or set {BINARY_ENV}."
    )


def _say(message: str) -> None:
    print(f"labkit server build: {message}", flush=True)


def _tool(name: str, log) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    _say(f"{name} is not on PATH: installing it from PyPI into {sys.prefix}")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", name]
    result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if result.returncode != 0 or not found:
        raise ServerBuildError(
            f"{name} is missing and `pip install {name}` failed; install {name} (apt, brew or "
            f"pip) and run `labkit server build` again. Log: {log.name}"
        )
    return found


def _compilers() -> None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    cxx = (
        os.environ.get("CXX")
        or shutil.which("c++")
        or shutil.which("g++")
        or shutil.which("clang++")
    )
    if not (cc and cxx):
        missing = " and ".join(n for n, p in (("C", cc), ("C++", cxx)) if not p)
        raise ServerBuildError(
            f"No {missing} compiler found (looked for cc/gcc/clang and c++/g++/clang++): install "
            "one (Debian/Ubuntu: `sudo apt-get install build-essential`; macOS: "
            "`xcode-select --install`) and run `labkit server build` again."
        )


def _cuda_flags() -> list[str]:
    try:
        gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        gpu = False
    if gpu and shutil.which("nvcc"):
        return ["-DGGML_CUDA=ON"]
    if gpu:
        _say("nvidia-smi sees a GPU but nvcc is missing: building for the CPU only")
    return []


def _download_sdist(folder: Path, log) -> Path:
    sdist = folder / SDIST_NAME
    if not sdist.is_file():
        _say(f"downloading llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} (source, ~77 MB) ...")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        cmd += ["--disable-pip-version-check", "-d", str(folder)]
        cmd += [f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"]
        result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
        if result.returncode != 0 or not sdist.is_file():
            raise ServerBuildError(
                f"Could not download llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} from the "
                f"package index (see {log.name}). Offline: copy {SDIST_NAME} into {folder}."
            )
    actual = sha256_file(sdist)
    if actual != SDIST_SHA256:
        raise ServerBuildError(
            f"{sdist} has sha256 {actual}, expected {SDIST_SHA256}: delete it and run "
            "`labkit server build` again."
        )
    return sdist


def _extract(sdist: Path, folder: Path) -> Path:
    source = folder / _VENDORED
    if (source / "CMakeLists.txt").is_file():
        return source
    _say("unpacking the vendored llama.cpp ...")
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(_VENDORED + "/")]
        if sys.version_info >= (3, 12):
            tar.extractall(folder, members=members, filter="data")
        else:  # the sha256 check above vouches for the archive
            tar.extractall(folder, members=members)
    return source


def _run_logged(cmd: list[str], log, *, progress: bool = False) -> int:
    log.write(f"\n$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last_shown, start = -1, time.monotonic()
    for line in proc.stdout:
        log.write(line)
        step = re.match(r"\[(\d+)/(\d+)\]", line) if progress else None
        if step:
            done, total = int(step[1]), int(step[2])
            percent = 100 * done // total
            if percent >= last_shown + 10 or done == total:
                last_shown = percent
                _say(f"compiling {done}/{total} ({percent}%, {time.monotonic() - start:.0f} s)")
    return proc.wait()


def build_server(*, force: bool = False, jobs: int | None = None) -> Path:
    """Download, verify and compile llama-server into `build_dir()` once; return the binary.

    Idempotent: a finished build with the same flags is reused. The full compiler output goes to
    `build_dir()/build.log`; progress lines go to stdout.
    """
    folder = build_dir()
    binary, stamp = built_binary(), _stamp()
    flags = [*CMAKE_FLAGS, *_cuda_flags()]
    wanted = {"llama_cpp_python": LLAMA_CPP_PYTHON_VERSION, "sdist_sha256": SDIST_SHA256}
    wanted["cmake_flags"] = flags
    if not force and binary.is_file() and stamp.is_file():
        if json.loads(stamp.read_text()) == wanted:
            _say(f"llama-server is already built: {binary}")
            return binary
    folder.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    log_path = folder / "build.log"
    start = time.monotonic()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n=== labkit server build, {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n")
        _compilers()
        cmake, ninja = _tool("cmake", log), _tool("ninja", log)
        source = _extract(_download_sdist(folder, log), folder)
        configure = [cmake, "-S", str(source), "-B", str(folder / "build"), "-G", "Ninja"]
        configure += [f"-DCMAKE_MAKE_PROGRAM={ninja}", *flags]  # cmake reads $CC and $CXX
        _say(f"configuring (log: {log_path}) ...")
        if _run_logged(configure, log) != 0:
            raise ServerBuildError(f"cmake could not configure llama.cpp; see {log_path}.")
        jobs = jobs or os.cpu_count() or 2
        _say(f"compiling llama-server with {jobs} jobs (about 15 minutes on 2 cores, once) ...")
        compile_cmd = [cmake, "--build", str(folder / "build"), "--target", "llama-server"]
        if _run_logged([*compile_cmd, "-j", str(jobs)], log, progress=True) != 0:
            raise ServerBuildError(
                f"Compiling llama-server failed; the compiler's messages are in {log_path}."
            )
    if not binary.is_file():
        raise ServerBuildError(f"The build finished but {binary} is missing; see {log_path}.")
    stamp.write_text(json.dumps(wanted, indent=2) + "\n")
    _say(f"done in {time.monotonic() - start:.0f} s: {binary}")
    return binary
