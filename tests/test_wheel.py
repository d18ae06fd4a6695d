"""A wheel built from the repository works outside it: data, sessions, notebooks, subpackages."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import labkit
from labkit.models import default_model_ready

REPO = Path(__file__).resolve().parent.parent
IGNORED = (".git", ".venv", "build", "dist", "*.egg-info", ".*_cache", "__pycache__", ".labkit-*")
SUBPACKAGES = sorted(p.parent.name for p in Path(labkit.__file__).parent.glob("*/__init__.py"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build labkit's wheel, install it with --no-deps into a scratch target; return the paths."""
    if not (REPO / "pyproject.toml").exists():
        pytest.skip("not a checkout of the repository: there is nothing to build a wheel from")
    # Build from a copy, so that no build/ folder is left in (or reused from) the checkout.
    source = tmp_path_factory.mktemp("source") / "labkit"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*IGNORED))
    dist = tmp_path_factory.mktemp("dist")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*build, "-w", str(dist), str(source)], check=True, cwd=dist)
    (wheel,) = dist.glob("labkit-*.whl")
    target = tmp_path_factory.mktemp("site")
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q"]
    subprocess.run([*install, "--target", str(target), str(wheel)], check=True, cwd=dist)
    return wheel, target, tmp_path_factory.mktemp("work")


def _run(installed, *args):
    """Run python with only the installed wheel's labkit importable, in a scratch folder."""
    _, target, work = installed
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONSAFEPATH": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=600
    )


def test_wheel_carries_data_and_notebooks(installed):
    wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert "labkit/data/prompt_caching_apis.json" in names
    assert "labkit/data/sessions/fix_failing_test.jsonl" in names
    lessons = [n for n in names if n.startswith("labkit/notebooks/") and n.endswith(".ipynb")]
    folder = REPO / "notebooks"  # the lessons and their solutions/
    repo_lessons = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.ipynb"))
    assert sorted(n.removeprefix("labkit/notebooks/") for n in lessons) == repo_lessons
    assert any(n.startswith("labkit/notebooks/solutions/") for n in lessons)
    assert "labkit/data/conversations/fix_parser.json" in names
    assert "labkit/data/capture_proxy.py" in names


def test_every_subpackage_imports_from_the_wheel(installed):
    _, target, _ = installed
    code = (
        "import importlib, labkit; print(labkit.__file__); "
        + "; ".join(f"importlib.import_module('labkit.{name}')" for name in SUBPACKAGES)
        + "; from labkit.resources import bundled_sessions; print(sorted(bundled_sessions()))"
    )
    result = _run(installed, "-c", code)
    assert result.returncode == 0, result.stderr
    where, sessions = result.stdout.splitlines()
    assert Path(where).is_relative_to(target), f"imported labkit from {where}, not the wheel"
    assert "fix_failing_test" in sessions


@pytest.mark.skipif(not default_model_ready(), reason="needs the default model: run labkit fetch")
def test_simulate_a_bundled_session_by_name(installed):
    result = _run(
        installed, "-m", "labkit", "simulate", "fix_failing_test", "--engine", "llamacpp", "--json"
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) > 1 and all(r["cached"] + r["computed"] == r["n_tokens"] for r in rows)


def test_notebooks_are_copied_and_edits_kept(installed):
    _, _, work = installed
    result = _run(installed, "-m", "labkit", "notebooks", "lessons")
    assert result.returncode == 0, result.stderr
    copied = sorted(p.name for p in (work / "lessons").glob("*.ipynb"))
    assert copied == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    edited = work / "lessons" / copied[0]
    edited.write_text(edited.read_text(encoding="utf-8") + " ", encoding="utf-8")
    again = _run(installed, "-m", "labkit", "notebooks", "lessons")
    assert again.returncode == 2 and "--force" in again.stderr
    assert edited.read_text(encoding="utf-8").endswith(" ")  # the learner's edit survives
    forced = _run(installed, "-m", "labkit", "notebooks", "lessons", "--force")
    assert forced.returncode == 0, forced.stderr
    assert not edited.read_text(encoding="utf-8").endswith(" ")
