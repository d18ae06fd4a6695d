"""Every notebook in a real browser: JupyterLab and headless Chromium, in small mode; lesson 04
in full mode too (LABKIT_SMALL=0, what `make lab` gives a learner), with the same checks.

One JupyterLab server on 127.0.0.1 (this project's Python as the kernel) serves copies of the
lessons (so nothing is saved into notebooks/); Debian's `chromium`, driven by playwright through
its executable path, opens each one, runs all cells and checks what a learner would see: no cell
error; every ipywidget drawn (no "Error displaying widget", "Loading widget…", "Model not
found"); every plotly figure drawn with its traces; and, in a notebook with a widget, that one
real interaction (pick a dropdown value, or move a slider with the keyboard) changes the widget's
output within 1 second. A screenshot of each notebook goes to build/browser-screenshots/
(`NAME-full.png` for a full-mode run). The full-mode notebooks run on a second JupyterLab whose
kernels inherit LABKIT_SMALL=0, after the small-mode ones; lesson 04 takes about 5 minutes there
on 2 idle cores.

`make browser` installs what it needs (`apt-get install chromium`, `pip install playwright`);
`playwright install` (a browser download) is never run. LABKIT_CHROMIUM names another Chromium
or Chrome binary. Where neither can be had, the tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from browser_lab import (
    CELLS_JS,
    OPEN_JS,
    PAGE_JS,
    PLOTLY_MIME,
    RUN_ALL_JS,
    SLIDER_JS,
    SNAPSHOT_JS,
    TARGET_JS,
    WIDGET_FAILURES,
    WIDGET_MIME,
    shutdown_kernels,
    start_lab,
)

import labkit

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
FULL_MODE = [REPO / "notebooks" / "04_agent_session.ipynb"]  # also run as a learner runs them
SCREENSHOTS = REPO / "build" / "browser-screenshots"
RUN_TIMEOUT_S = 1800  # one notebook, all cells (small mode, or 04 in full), 2 shared cores
INTERACTION_LIMIT_S = 1.0
ATTEMPTS = 3  # interactions per widget; the fastest must change the output within the limit

pytestmark = pytest.mark.slow


def chromium_path() -> str | None:
    """Return the Chromium (or Chrome) binary to drive: $LABKIT_CHROMIUM, else one on PATH."""
    if os.environ.get("LABKIT_CHROMIUM"):
        return os.environ["LABKIT_CHROMIUM"]
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    return next((p for p in map(shutil.which, names) if p), None)


def serve(tmp_path_factory, notebooks: list[Path], *, small: bool):
    """Serve copies of the notebooks from one JupyterLab; yield (base_url, token), then stop it."""
    root = tmp_path_factory.mktemp("lab" if small else "lab-full")
    for notebook in notebooks:
        shutil.copy(notebook, root / notebook.name)
    process, base, token = start_lab(root, log=root / "jupyterlab.log", small=small)
    yield base, token
    process.terminate()
    try:
        process.wait(timeout=30)
    except Exception:
        process.kill()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab whose kernels run the lessons in small mode: (base_url, token)."""
    yield from serve(tmp_path_factory, NOTEBOOKS, small=True)


@pytest.fixture(scope="module")
def full_lab(tmp_path_factory):
    """A JupyterLab whose kernels run the lessons in full mode (LABKIT_SMALL=0)."""
    yield from serve(tmp_path_factory, FULL_MODE, small=False)


@pytest.fixture(scope="module")
def page():
    """Yield one headless Chromium page; `open_lab` points it at a JupyterLab."""
    executable = chromium_path()
    if executable is None:
        pytest.skip(
            "no Chromium here: the browser test needs Debian's `chromium` package "
            "(`make browser` runs `apt-get install -y chromium`), or LABKIT_CHROMIUM=/path/to/it"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="needs playwright: `make browser` (pip install playwright)"
    )
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def open_lab(page, lab) -> None:
    """Load JupyterLab from the server `lab` (base_url, token), unless the page shows it already."""
    base, token = lab
    if not page.url.startswith(base + "/"):
        page.goto(f"{base}/lab?reset&token={token}")
        page.wait_for_function("window.jupyterapp !== undefined", timeout=120_000)


def run_all(page, name: str) -> tuple[list[dict], float]:
    """Open a notebook, run all its cells; return its cells (as CELLS_JS reads them) and seconds."""
    kernel = page.evaluate(OPEN_JS, name)
    assert kernel == "python3", f"{name} opened with kernel {kernel!r}, not python3"
    start = time.perf_counter()
    page.evaluate(RUN_ALL_JS)
    page.wait_for_function("window.__lkDone === true", timeout=RUN_TIMEOUT_S * 1000, polling=500)
    return page.evaluate(CELLS_JS), time.perf_counter() - start


def wait_for_widgets(page, timeout_s: float = 30.0) -> dict:
    """Return what the page shows once no widget is still loading (or when time is up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown = page.evaluate(PAGE_JS, list(WIDGET_FAILURES))
        if "Loading widget" not in shown["failures"] or time.monotonic() > deadline:
            return shown
        time.sleep(0.25)


def interact(page, control: str) -> float | None:
    """Change the target control once; return seconds until the widget's output changed."""
    before = page.evaluate(SNAPSHOT_JS)
    if control == "select":
        select = page.locator('[data-lk-target="select"]')
        options = select.locator("option").all_inner_texts()
        current = select.evaluate("el => el.selectedIndex")
        start = time.perf_counter()
        select.select_option(index=(current + 1) % len(options))
    else:
        handle = page.locator('[data-lk-target="slider"]')
        value, low, high = page.evaluate(SLIDER_JS)
        handle.focus()
        start = time.perf_counter()
        page.keyboard.press("ArrowRight" if value < high else "ArrowLeft")
    try:
        page.wait_for_function(
            f"(before) => ({SNAPSHOT_JS})() !== before", arg=before, timeout=10_000, polling=10
        )
    except Exception:
        return None
    return time.perf_counter() - start


def test_every_notebook_is_found():
    assert len(NOTEBOOKS) >= 6, f"expected the lessons under {REPO / 'notebooks'}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_in_browser(page, lab, notebook):
    open_lab(page, lab)
    code = check_notebook(page, notebook, shot=SCREENSHOTS / f"{notebook.stem}.png")
    assert "small mode: False" not in "".join(o["text"] for c in code for o in c["outputs"])


@pytest.mark.parametrize("notebook", FULL_MODE, ids=[p.stem for p in FULL_MODE])
def test_notebook_in_browser_full_mode(page, full_lab, notebook):
    open_lab(page, full_lab)
    code = check_notebook(page, notebook, shot=SCREENSHOTS / f"{notebook.stem}-full.png")
    # The kernel ran the full lesson: its setup cell says so (lesson 04 prints its mode).
    printed = "".join(o["text"] for c in code for o in c["outputs"])
    assert "small mode: False" in printed, f"{notebook.name} did not run in full mode"


def check_notebook(page, notebook: Path, *, shot: Path) -> list[dict]:
    """Run a notebook in the page's JupyterLab and check what a learner sees; return its code cells.

    No cell error and every cell run; every widget and figure drawn; in a notebook with a widget,
    one interaction changes its output within INTERACTION_LIMIT_S; a screenshot saved to `shot`.
    """
    cells, run_s = run_all(page, notebook.name)
    print(f"{notebook.name}: all cells ran in {run_s:.1f} s in the browser")
    code = [c for c in cells if c["code"]]

    errors = [
        f"cell {c['index']} ({c['source']}): {o['ename']}: {o['evalue']}"
        for c in code
        for o in c["outputs"]
        if o["type"] == "error"
    ]
    assert not errors, f"{notebook.name}: cell errors:\n" + "\n".join(errors)
    not_run = [c["index"] for c in code if c["count"] is None]
    assert not not_run, f"{notebook.name}: cells never ran: {not_run}"

    # The guard cell ran in the project's kernel: it names this checkout's labkit.
    assert str(Path(labkit.__file__).parent) in code[0]["outputs"][0]["text"], code[0]

    shown = wait_for_widgets(page)
    assert not shown["failures"], f"{notebook.name}: the page shows {shown['failures']}"
    widget_outputs = [o for c in code for o in c["outputs"] if WIDGET_MIME in o["mimes"]]
    undrawn = [o["shown"] for o in widget_outputs if not o["widget_drawn"]]
    assert not undrawn, f"{notebook.name}: widgets not drawn: {undrawn}"
    figures = [o for c in code for o in c["outputs"] if PLOTLY_MIME in o["mimes"]]
    undrawn = [o["shown"] for o in figures if not o["plot_drawn"]]
    assert not undrawn, f"{notebook.name}: figures not drawn (plotly's lab extension?): {undrawn}"
    # Every figure on the page (in cell outputs and inside widgets) has its traces drawn.
    assert len(shown["plots"]) >= len(figures)
    empty = [p for p in shown["plots"] if p["traces"] == 0 or p["drawn"] < p["traces"]]
    assert not empty, f"{notebook.name}: figures without their traces drawn: {empty}"

    shot.parent.mkdir(parents=True, exist_ok=True)
    # Widgets without a control (a tqdm progress bar) need no interaction; one with a dropdown
    # or a slider gets one.
    control = page.evaluate(TARGET_JS) if widget_outputs else None
    if control:
        page.locator('[data-lk-target="root"]').evaluate("el => el.scrollIntoView()")
        times_s = [interact(page, control) for _ in range(ATTEMPTS)]
        print(f"{notebook.name}: {control} changed the output after {times_s} s")
        assert all(t is not None for t in times_s), (
            f"{notebook.name}: moving the {control} did not change the widget's output: {times_s}"
        )
        assert min(times_s) < INTERACTION_LIMIT_S, (
            f"{notebook.name}: the widget took {min(times_s):.2f} s at best to respond"
        )
        assert not wait_for_widgets(page)["failures"]
    elif shown["plots"]:
        page.locator(".js-plotly-plot").last.scroll_into_view_if_needed()
    page.screenshot(path=shot)
    assert shot.stat().st_size > 10_000, f"{shot} is nearly empty"
    return code


@pytest.fixture(autouse=True)
def _one_kernel_at_a_time(request):
    """Shut the notebook's kernel down after its test, so one model is in memory at a time."""
    yield
    for name in ("lab", "full_lab"):
        if name in request.fixturenames:
            base, token = request.getfixturevalue(name)
            shutdown_kernels(base, token)
