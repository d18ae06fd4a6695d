"""Start and stop a real `llama-server` on 127.0.0.1 with the default model, leaving no orphan.

The server runs in its own process group with a log file; labkit waits for `GET /health` to
answer 200 (llama.cpp answers 503 while it loads the model: `tools/server/server.cpp`, the
`/health` route). Stopping sends SIGTERM to the group, then SIGKILL. Three guards keep a server
from outliving the Python that started it: the context manager's `finally`, a
`weakref.finalize` (which also runs at interpreter exit), and on Linux `PR_SET_PDEATHSIG` with
SIGKILL, so a kernel killed with SIGKILL (a Jupyter restart) takes its server with it (SIGTERM
would not do: a busy llama-server finishes its batch first, which took minutes on a loaded CPU).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labkit.fetch import default_gguf_path
from labkit.server.build import find_server_binary

__all__ = [
    "DEFAULT_CTX",
    "LlamaServer",
    "PortInUseError",
    "ServerStartError",
    "free_port",
    "llama_server",
    "server_command",
]

HOST = "127.0.0.1"
DEFAULT_CTX = 8192  # tokens per slot: the longest bundled session request is ~7.7k tokens


class ServerStartError(RuntimeError):
    """llama-server did not start or did not become healthy in time."""


class PortInUseError(ServerStartError):
    """The port asked for is already taken by another process."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            raise PortInUseError(
                f"Port {port} on {HOST} is already in use (another server?): pick another "
                "with --port, or stop what runs there."
            ) from None


def server_command(
    binary: Path, model: Path, port: int, *, slots: int, ctx: int, threads: int | None
) -> list[str]:
    """Return the llama-server command line labkit runs (one process, `slots` slots)."""
    cmd = [str(binary), "-m", str(model), "--host", HOST, "--port", str(port)]
    # --ctx-size is the whole KV cache, shared out evenly among the slots.
    cmd += ["--parallel", str(slots), "--ctx-size", str(ctx * slots), "--no-webui"]
    if threads:
        cmd += ["--threads", str(threads), "--threads-batch", str(threads)]
    return cmd


def _child_setup_function():
    """Return what the child runs between fork and exec: its own group, and death with us."""
    prctl = None
    if sys.platform.startswith("linux"):
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork

    def setup() -> None:
        os.setsid()  # its own process group, so stopping it stops everything it started
        if prctl is not None:
            prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed when our thread dies

    return setup


def _stop_group(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class LlamaServer:
    """A running llama-server: its URL, process, log file and settings."""

    url: str
    port: int
    log_path: Path
    command: list[str]
    slots: int
    ctx: int
    process: subprocess.Popen = field(repr=False)

    def log_tail(self, n_lines: int = 20) -> str:
        """Return the last lines of the server's log."""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n_lines:])

    def alive(self) -> bool:
        """Return True while the server process runs."""
        return self.process.poll() is None

    def stop(self) -> None:
        """Stop the server and everything in its process group (idempotent)."""
        _stop_group(self.process)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):  # 503 while loading, refused before listening
        return False


def _wait_healthy(server: LlamaServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not server.alive():
            tail = server.log_tail()
            if "bind" in tail.lower() or "address already in use" in tail.lower():
                raise PortInUseError(
                    f"llama-server could not listen on port {server.port}: it is taken; pick "
                    f"another port. Log: {server.log_path}"
                )
            raise ServerStartError(
                f"llama-server exited with code {server.process.returncode} before it was "
                f"ready. Last lines of {server.log_path}:\n{tail}"
            )
        if _healthy(server.url):
            return
        time.sleep(0.2)
    raise ServerStartError(
        f"llama-server did not answer /health within {timeout_s:.0f} s (log: {server.log_path}); "
        "the machine may be busy: try a longer health timeout."
    )


@contextlib.contextmanager
def llama_server(
    model: str | Path | None = None,
    *,
    port: int | None = None,
    slots: int = 1,
    ctx: int = DEFAULT_CTX,
    threads: int | None = None,
    health_timeout_s: float = 120.0,
    log_path: str | Path | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[LlamaServer]:
    """Run llama-server on 127.0.0.1 for the `with` block; yield it once /health answers 200.

    `model` is a GGUF file (default: the one `labkit fetch` keeps), `port` a free port if None,
    `slots` the server's `--parallel`, `ctx` the context per slot in tokens. The server is
    stopped when the block ends, on error, and if this Python process dies.
    """
    gguf = Path(model).expanduser() if model else default_gguf_path()
    if not gguf.is_file():
        hint = "run `labkit fetch` (it keeps the GGUF file)" if not model else "check the path"
        raise FileNotFoundError(f"No GGUF model at {gguf}: {hint}.")
    if slots < 1 or ctx < 16:
        raise ValueError(f"Need slots >= 1 and ctx >= 16 tokens, got slots={slots}, ctx={ctx}.")
    if port is None:
        port = free_port()
    else:
        _check_port_free(port)
    binary = find_server_binary()
    if log_path is None:
        # Not "labkit": a folder of that name in the temp dir would shadow the package for any
        # script run from there.
        log_dir = Path(tempfile.gettempdir()) / "labkit-server-logs"
        log_dir.mkdir(exist_ok=True)
        log_path = log_dir / f"llama-server-{port}.log"
    log_path = Path(log_path)
    cmd = [*server_command(binary, gguf, port, slots=slots, ctx=ctx, threads=threads)]
    cmd += list(extra_args)
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup_function(),  # setsid and prctl only, nothing to import
        )
    server = LlamaServer(f"http://{HOST}:{port}", port, log_path, cmd, slots, ctx, proc)
    finalizer = weakref.finalize(server, _stop_group, proc)  # also runs at interpreter exit
    try:
        _wait_healthy(server, health_timeout_s)
        yield server
    finally:
        finalizer()
