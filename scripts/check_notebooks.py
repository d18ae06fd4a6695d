"""Check that committed notebooks carry no outputs and use the python3 kernel; --strip fixes them.

python scripts/check_notebooks.py notebooks          # exit 1 and list offenders
python scripts/check_notebooks.py --strip notebooks  # strip outputs in place
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

NOISY_METADATA = ("widgets", "execution")


def problems(nb) -> list[str]:
    """Return what keeps a notebook from being committed as it is."""
    found = []
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        found.append(f"kernelspec.name is {kernel!r}, not 'python3'")
    for key in NOISY_METADATA:
        if key in nb.metadata:
            found.append(f"notebook metadata carries {key!r}")
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {index} has outputs")
        if cell.get("execution_count") is not None:
            found.append(f"cell {index} has an execution count")
    return found


def strip(nb) -> None:
    """Remove outputs, execution counts and widget state from a notebook in place."""
    for key in NOISY_METADATA:
        nb.metadata.pop(key, None)
    nb.metadata.setdefault("kernelspec", {})["name"] = "python3"
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None


def main(argv: list[str] | None = None) -> int:
    """Check (or strip) every notebook under the given folders."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--strip", action="store_true", help="strip outputs in place")
    args = parser.parse_args(argv)
    paths = sorted(
        p
        for folder in args.folders
        for p in folder.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    )
    bad = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if args.strip:
            strip(nb)
            nbformat.write(nb, path)
            continue
        for problem in problems(nb):
            print(f"{path}: {problem}")
            bad += 1
    if bad:
        print(f"{bad} problem(s): run `make strip` (or scripts/check_notebooks.py --strip).")
        return 1
    print(f"check_notebooks: {len(paths)} notebook(s) clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
