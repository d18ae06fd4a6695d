"""The package's architecture: layers import only downward, and no module imports in a circle."""

import ast
from pathlib import Path

import pytest

import labkit

PACKAGE_DIR = Path(labkit.__file__).parent

# Bottom to top. The root modules (models, cache, timing, ...) are the model-side library that
# everything builds on; `labkit/__init__.py` re-exports across layers and the command line sits on
# top of all of them.
LAYERS = [
    "",
    "sessions",
    "engines",
    "experiments",
    "lint",
    "server",
    "proxy",
    "exercises",
    "viz",
    "cli",
]
TOP_LEVEL = {"labkit", "labkit.cli", "labkit.__main__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _imports(path: Path, module: str, *, lazy: bool) -> set[str]:
    """Return the labkit modules `module` imports: at module level, or anywhere if `lazy`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = ast.walk(tree) if lazy else tree.body
    names = set()
    known = _modules()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("labkit")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("labkit"):
                for alias in node.names:  # `from labkit.x import y`: y may be a module
                    sub = f"{node.module}.{alias.name}"
                    names.add(sub if sub in known else node.module)
    return {n for n in names if n in known and n != module}


def layer_of(module: str) -> int:
    """Return the layer index of a labkit module."""
    if module in TOP_LEVEL:
        return len(LAYERS) - 1
    parts = module.split(".")
    if len(parts) == 2 and parts[1] not in LAYERS:  # a root module of the model-side library
        return 0
    return LAYERS.index(parts[1])


def test_every_subpackage_has_a_layer_and_an_exported_api():
    subpackages = {p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py")}
    assert subpackages <= set(LAYERS), f"give {subpackages - set(LAYERS)} a layer in LAYERS"
    assert len(subpackages) >= 3
    for name in subpackages:
        init = PACKAGE_DIR / name / "__init__.py"
        tree = ast.parse(init.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"labkit/{name}/__init__.py needs a one-line docstring"
        assert any(
            isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)
            for n in tree.body
        ), f"labkit/{name}/__init__.py needs an explicit __all__"


def test_root_stays_small():
    root_modules = [p for p in PACKAGE_DIR.glob("*.py") if p.name != "__init__.py"]
    assert len(root_modules) <= 15, sorted(p.name for p in root_modules)


@pytest.mark.parametrize("module", sorted(_modules()))
def test_imports_only_go_down(module):
    path = _modules()[module]
    if module == "labkit":  # the package's public API re-exports from every layer
        return
    upward = [m for m in _imports(path, module, lazy=True) if layer_of(m) > layer_of(module)]
    assert not upward, f"{module} (layer {layer_of(module)}) imports higher layers: {upward}"


def test_no_import_cycles():
    modules = _modules()
    graph = {m: _imports(p, m, lazy=False) for m, p in modules.items()}
    # A submodule that imports its own package's __init__, which imports it, is a cycle too:
    # `from labkit.engines import x` inside labkit/engines/ is an edge to "labkit.engines".
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n) :] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_cycle_finder_finds_a_cycle(tmp_path, monkeypatch):
    """The cycle test above can fail: two modules that import each other are caught."""
    pkg = tmp_path / "labkit"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from labkit.b import x\n")
    (pkg / "b.py").write_text("from labkit.a import y\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE_DIR", pkg)
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycles()
