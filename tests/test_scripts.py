"""scripts/time_notebooks.py (make test-full), scripts/stress.py (LABKIT_STRESS=1 make test) and
scripts/gpu_table.py (the GPU table, run on a lent GPU machine; here on the CPU at tiny sizes)."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import gpu_table  # noqa: E402
import stress  # noqa: E402
import time_notebooks  # noqa: E402


def test_every_numbered_notebook_is_timed_and_nothing_else(tmp_path):
    for name in ("00_setup.ipynb", "07_approx.ipynb", "06_server.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "01_solutions.ipynb").write_text("{}")
    found = [p.name for p in time_notebooks.numbered_notebooks(tmp_path)]
    assert found == ["00_setup.ipynb", "06_server.ipynb", "07_approx.ipynb"]
    lessons = time_notebooks.numbered_notebooks(time_notebooks.ROOT / "notebooks")
    assert [p.name[:2] for p in lessons][:6] == ["00", "01", "02", "03", "04", "05"]


def test_the_table_says_what_passed_and_what_ran_over_budget():
    rows = [
        {"notebook": "00_a.ipynb", "mode": "full", "passed": True, "wall_s": 61.4},
        {"notebook": "01_b.ipynb", "mode": "full", "passed": True, "wall_s": 301},
        {"notebook": "02_c.ipynb", "mode": "full", "passed": False, "wall_s": 12},
    ]
    text = time_notebooks.table(rows, budget_s=300, header="on Test CPU")
    lines = text.splitlines()
    assert lines[0] == "on Test CPU"
    assert "| `00_a.ipynb` | full | passed | 1 min 01 s | yes |" in lines
    assert "| `01_b.ipynb` | full | passed | 5 min 01 s | no |" in lines
    assert "| `02_c.ipynb` | full | FAILED | 0 min 12 s | no |" in lines
    assert lines[-1] == "| all | | | 6 min 14 s | |"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z" if Path("/proc").exists() else True
    )


def test_busy_processes_run_inside_the_block_and_stop_after():
    with stress.busy_processes(2) as pids:
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    assert not any(_alive(pid) for pid in pids)


def test_stress_returns_the_commands_status():
    command = [sys.executable, "-c", "import sys; sys.exit(3)"]
    assert stress.main(["--busy", "1", "--", *command]) == 3
    with pytest.raises(SystemExit):
        stress.main(["--busy", "1"])  # no command: a usage error, not a hang


def test_gpu_table_runs_from_packed_files_alone(smol_tok, tmp_path, capsys):
    """What the GPU machine gets: config and tokenizer files (no weights, no install)."""
    folder = tmp_path / "SmolLM2-135M-Instruct"
    assert gpu_table.main(["--pack", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(gpu_table.PACKED)
    assert sum(p.stat().st_size for p in folder.iterdir()) < 8 * 2**20  # small enough to carry
    out = tmp_path / "table.md"
    args = ["--model-dir", str(folder), "--quick", "--repeats", "1", "--out", str(out)]
    assert gpu_table.main(args) == 0
    text = out.read_text()
    assert text == capsys.readouterr().out.split("\n", 1)[1]  # printed as written, after --pack's
    header, *rows = text.splitlines()
    assert "(CPU), float32" in header and "random weights" in header and "perf_counter" in header
    first_cells = [r.split("|")[1].strip() for r in rows if r.startswith("| ")]
    assert [c for c in first_cells if c.isdigit()] == ["32", "64"]  # a row per prefix, in order
    quick = next(r for r in rows if r.startswith("| quick |"))
    on, off = (int(n.replace(",", "")) for n in quick.split("|")[3].split("/"))
    assert on > off > 0  # the line makes every request prefill its whole prompt again


def test_gpu_table_says_what_it_needs():
    with pytest.raises(SystemExit):
        gpu_table.main([])  # neither --pack nor --model-dir: a usage error
