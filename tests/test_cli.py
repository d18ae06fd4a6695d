"""The `labkit` command: info and fetch, run as a user would."""

import json
import subprocess
import sys

from labkit.cli import main
from labkit.models import default_model_ready


def run_labkit(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args], capture_output=True, text=True, env=env
    )


def test_info_json_reports_versions_device_and_model():
    result = run_labkit("info", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["versions"]["transformers"] != "not installed"
    assert report["device"] in {"cpu", "cuda", "mps"}
    assert report["default_model_ready"] == default_model_ready()


def test_info_text_names_the_cache(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "default model" in out and "cache" in out


def test_bad_device_gives_an_error_not_a_traceback(monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_DEVICE", "tpu")
    assert main(["info"]) == 2
    assert "one of cuda, mps, cpu" in capsys.readouterr().err
