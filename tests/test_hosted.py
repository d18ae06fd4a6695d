"""Hosted Jupyter: the guard cell (first in every notebook, and what it says when labkit is
missing), and the repo2docker files (postBuild prepares the model where `start` points labkit)."""

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("guard_cell", REPO / "scripts" / "guard_cell.py")
guard_cell = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(guard_cell)

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
FETCH_LINE = f"!{sys.executable} -m labkit fetch"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_opens_with_the_guard_cell(path):
    nb = nbformat.read(path, as_version=4)
    assert guard_cell.problems(nb) == [], "run `python scripts/guard_cell.py notebooks`"


def run_guard(cwd: Path, *, hide_labkit: bool, wheel: str | None = None) -> str:
    """Run the guard cell in an IPython shell (labkit hidden or not); return what it printed."""
    code = textwrap.dedent(
        f"""
        import sys
        if {hide_labkit}:
            sys.modules["labkit"] = None  # as in a kernel where labkit is not installed
        from IPython.core.interactiveshell import InteractiveShell
        result = InteractiveShell.instance().run_cell({guard_cell.SOURCE!r})
        print("STOPPED" if result.error_in_exec is not None else "WENT ON")
        """
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    if wheel:
        env["LABKIT_WHEEL"] = wheel
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_missing_labkit_prints_the_instructors_wheel(tmp_path):
    url = "https://example.org/class/labkit-0.1.0-py3-none-any.whl"
    out = run_guard(tmp_path, hide_labkit=True, wheel=url)
    assert f'%pip install "{url}"' in out and FETCH_LINE in out
    assert "Traceback" not in out and "ModuleNotFoundError" not in out
    assert out.rstrip().endswith("STOPPED")  # "Run all" stops at the guard


def test_missing_labkit_finds_a_wheel_beside_the_notebook(tmp_path):
    wheel = tmp_path / "labkit-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    out = run_guard(lessons, hide_labkit=True)  # the wheel is one folder up
    assert f'%pip install "{wheel}"' in out and out.rstrip().endswith("STOPPED")


def test_missing_labkit_without_a_wheel_says_whom_to_ask(tmp_path):
    out = run_guard(tmp_path, hide_labkit=True)
    assert "ask your instructor" in out and FETCH_LINE in out
    assert "Traceback" not in out and out.rstrip().endswith("STOPPED")


def test_installed_labkit_goes_on(tmp_path):
    out = run_guard(tmp_path, hide_labkit=False)
    assert "labkit is installed:" in out and out.rstrip().endswith("WENT ON")


def test_repo2docker_postbuild_and_start_agree_on_the_model_folder(tmp_path):
    prefix = tmp_path / "notebook-env"
    cache = prefix / "share" / "labkit"
    from labkit.models import default_model_dir, default_model_ready

    if not default_model_ready():
        pytest.skip("needs the default model: run `labkit fetch`")
    # The image's model folder, prepared here by linking this machine's (no download, no convert).
    (cache / "models").mkdir(parents=True)
    (cache / "models" / default_model_dir().name).symlink_to(default_model_dir())
    env = {**os.environ, "NB_PYTHON_PREFIX": str(prefix)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env.pop("LABKIT_CACHE", None)
    built = subprocess.run(
        [str(REPO / "postBuild")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stderr
    assert f"is ready in {cache}" in built.stdout
    echo = [str(REPO / "start"), "sh", "-c", "echo $LABKIT_CACHE"]
    started = subprocess.run(echo, env=env, capture_output=True, text=True)
    assert started.stdout.strip() == str(cache)
