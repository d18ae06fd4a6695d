"""Put the hosted-Jupyter guard cell right after the title cell of every notebook (idempotent).

python scripts/guard_cell.py notebooks           # insert or update the cell in every notebook
python scripts/guard_cell.py --check notebooks   # exit 1 and list notebooks without it

On a hosted Jupyter (JupyterHub, Binder, Colab) a learner may open a lesson in a kernel where
labkit is not installed. The guard cell then prints the exact lines to run instead of the
`ModuleNotFoundError` traceback the setup cell would raise, and stops "Run all" there. The
install line names the wheel an instructor hands out: the environment variable `LABKIT_WHEEL`
(a URL or a path), else a `labkit-*.whl` file beside the notebook or one folder up.
The cell is found again by its tag, so running this script after a merge updates it in place.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

TAG = "labkit-guard"

SOURCE = """\
# Hosted Jupyter (JupyterHub, Binder, Colab): is labkit installed in this kernel?
import importlib.util
import os
import sys
from pathlib import Path

if importlib.util.find_spec("labkit") is None:
    _found = [*Path.cwd().glob("labkit-*.whl"), *Path.cwd().parent.glob("labkit-*.whl")]
    _wheel = os.environ.get("LABKIT_WHEEL") or (str(sorted(_found)[-1]) if _found else "")
    _install = f'%pip install "{_wheel}"' if _wheel else (
        '%pip install "<the labkit wheel: URL or path>"   # ask your instructor for it'
    )

    class LabkitMissing(Exception):
        def _render_traceback_(self):  # IPython shows these lines instead of a traceback
            return list(self.args)

    raise LabkitMissing(
        "labkit is not installed in this kernel. Run these two lines in a new cell,",
        "then restart the kernel and run this notebook again:",
        "",
        f"    {_install}",
        f"    !{sys.executable} -m labkit fetch",
    )
print("labkit is installed:", Path(importlib.util.find_spec("labkit").origin).parent)"""


def guard_cell() -> nbformat.NotebookNode:
    """Return a fresh guard cell (no outputs, tagged so it can be found again)."""
    return nbformat.v4.new_code_cell(SOURCE, metadata={"tags": [TAG]})


def guard_index(nb) -> int | None:
    """Return the index of the notebook's guard cell, or None."""
    for index, cell in enumerate(nb.cells):
        if TAG in cell.get("metadata", {}).get("tags", []):
            return index
    return None


def ensure_guard(nb) -> bool:
    """Insert the guard cell after the title cell, or update it; return whether it changed."""
    index = guard_index(nb)
    if index is None:
        cell = guard_cell()
        cell.pop("id", None)  # nbformat gives the cell an id when the notebook has ids
        if nb.nbformat_minor >= 5:
            cell["id"] = "labkit-guard"
        title_first = bool(nb.cells) and nb.cells[0].cell_type == "markdown"
        nb.cells.insert(1 if title_first else 0, cell)
        return True
    if nb.cells[index].source != SOURCE:
        nb.cells[index].source = SOURCE
        return True
    return False


def problems(nb) -> list[str]:
    """Return what is wrong with the notebook's guard cell ([] when it is right)."""
    index = guard_index(nb)
    if index is None:
        return ["no guard cell"]
    found = []
    if any(c.cell_type == "code" for c in nb.cells[:index]):
        found.append(f"the guard cell is cell {index}, not the first code cell")
    if nb.cells[index].source != SOURCE:
        found.append("the guard cell differs from scripts/guard_cell.py")
    return found


def main(argv: list[str] | None = None) -> int:
    """Insert (or check) the guard cell in every notebook under the given folders."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="only report, change nothing")
    args = parser.parse_args(argv)
    paths = sorted(
        p
        for folder in args.folders
        for p in folder.glob("*.ipynb")  # the lessons, not solutions/ or checkpoints
    )
    bad = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if args.check:
            for problem in problems(nb):
                print(f"{path}: {problem}")
                bad += 1
        elif ensure_guard(nb):
            nbformat.write(nb, path)
            print(f"guard cell written into {path}")
    if bad:
        print(f"{bad} problem(s): run `python scripts/guard_cell.py notebooks`.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
