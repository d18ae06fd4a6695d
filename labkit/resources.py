"""Find what ships with labkit — data files, bundled sessions, lesson notebooks — in a clone,
an editable install or an installed wheel, with `importlib.resources` (never a source-tree path).

In the repository the files live in the top-level `data/` and `notebooks/` folders; the build maps
them into the wheel as the packages `labkit.data` and `labkit.notebooks` (see pyproject.toml).
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

__all__ = [
    "bundled_sessions",
    "copy_notebooks",
    "data_path",
    "notebooks_path",
    "resolve_session",
]

SESSION_SUFFIXES = (".jsonl", ".json")


def _package_dir(package: str, what: str) -> Path:
    try:
        path = Path(str(resources.files(package)))
    except ModuleNotFoundError:
        path = None
    if path is not None and path.is_dir():
        return path
    raise FileNotFoundError(
        f"labkit's {what} are missing from this install ({package}): reinstall labkit "
        "(`pip install --force-reinstall labkit-*.whl`, or `make setup` in a clone)."
    )


def data_path(*parts: str) -> Path:
    """Return the path of a file or folder in labkit's bundled data (e.g. "sessions")."""
    path = _package_dir("labkit.data", "data files").joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"{'/'.join(parts)} is missing from labkit's data ({path.parent}); it ships with "
            "labkit: reinstall it, or in a clone `git checkout data/`."
        )
    return path


def notebooks_path() -> Path:
    """Return the folder of the lesson notebooks that ship with labkit."""
    return _package_dir("labkit.notebooks", "lesson notebooks")


def bundled_sessions() -> dict[str, Path]:
    """Return the bundled agent sessions by short name ("fix_failing_test", ...)."""
    folder = data_path("sessions")
    return {
        p.stem: p for p in sorted(folder.iterdir()) if p.suffix in SESSION_SUFFIXES and p.is_file()
    }


def resolve_session(name_or_path: str | Path) -> Path:
    """Return a session file: an existing path, else a bundled session's short name."""
    path = Path(name_or_path)
    if path.exists():
        return path
    bundled = bundled_sessions()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    raise FileNotFoundError(
        f"No session file at {name_or_path}, and no bundled session of that name: give a path, "
        f"or one of {', '.join(bundled)}."
    )


def copy_notebooks(dest: str | Path = "labkit-notebooks", *, force: bool = False) -> list[Path]:
    """Copy the lesson notebooks (and their solutions) into `dest`; return the files written.

    A notebook already in `dest` that differs from the bundled one (a learner's edits) is kept,
    and the copy refuses, unless `force` is set; identical files are left as they are.
    """
    source, dest = notebooks_path(), Path(dest)
    files = [
        p
        for p in sorted(source.rglob("*"))
        if p.is_file() and p.suffix in (".ipynb", ".md") and ".ipynb_checkpoints" not in p.parts
    ]
    edited = [
        dest / p.relative_to(source)
        for p in files
        if (dest / p.relative_to(source)).exists()
        and (dest / p.relative_to(source)).read_bytes() != p.read_bytes()
    ]
    if edited and not force:
        names = ", ".join(str(p) for p in edited[:5]) + (" …" if len(edited) > 5 else "")
        raise FileExistsError(
            f"{len(edited)} notebook(s) in {dest} differ from the bundled ones ({names}): they may "
            "hold your work. Copy elsewhere (labkit notebooks OTHER_FOLDER) or pass --force."
        )
    written = []
    for p in files:
        target = dest / p.relative_to(source)
        if target.exists() and target.read_bytes() == p.read_bytes():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, target)
        written.append(target)
    return written
