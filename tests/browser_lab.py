"""Helpers for tests/test_browser.py: a JupyterLab server and what a page shows, read in the page.

Every function that reads the page runs JavaScript against JupyterLab's own objects (the app is
exposed as `window.jupyterapp` with `--LabApp.expose_app_in_browser`), so the checks use the
notebook's model (outputs, execution counts) and the DOM it rendered, not guesses from pixels.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
# What ipywidgets' JupyterLab renderer shows instead of a widget it cannot draw (the last: the
# error view of ipywidgets 8, a widget whose model or view failed to load).
WIDGET_FAILURES = (
    "Error displaying widget",
    "Loading widget",
    "Model not found",
    "Click to show javascript error",
)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(root: Path, log: Path, timeout_s: float = 120.0, *, small: bool = True):
    """Start JupyterLab on 127.0.0.1 serving root; return (process, base_url, token).

    Its kernels run the lessons in small mode (LABKIT_SMALL=1), or in full mode with small=False
    (LABKIT_SMALL=0, as `make lab` gives a learner): the kernel inherits the server's environment.

    The kernel is this Python's (the project's .venv): Jupyter's data and settings folders are
    fresh ones under root, so no user-level kernel or setting can stand in. Every cell is attached
    to the page (windowingMode none), so off-screen widgets and figures render too.
    """
    settings = root / ".lab-settings"
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    notices = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notices.parent.mkdir(parents=True, exist_ok=True)
    notices.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    token, port = secrets.token_hex(16), free_port()
    env = {
        **os.environ,
        "LABKIT_SMALL": "1" if small else "0",
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / ".lab-workspaces"),
        "JUPYTER_DATA_DIR": str(root / ".jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(root / ".jupyter-runtime"),
        "JUPYTER_CONFIG_DIR": str(root / ".jupyter-config"),
    }
    env.pop("PLOTLY_RENDERER", None)  # the tests' json renderer would show JSON, not a figure
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--ServerApp.allow_root=True",
    ]
    with open(log, "w") as out:
        process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited at start; its log:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                return process, base, token
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"JupyterLab did not answer within {timeout_s:.0f} s; log: {log}")


OPEN_JS = """async (path) => {
  const app = window.jupyterapp;
  await app.started;
  await app.restored;
  for (const widget of Array.from(app.shell.widgets('main'))) {  // close, never save
    if (widget.context) widget.context.model.dirty = false;
    widget.dispose();
  }
  app.shell.collapseLeft();
  const panel = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  await panel.context.ready;
  await panel.sessionContext.ready;
  app.shell.activateById(panel.id);
  window.__lk = panel;
  window.__lkDone = false;
  return panel.sessionContext.session?.kernel?.name ?? null;
}"""

RUN_ALL_JS = """() => {
  const app = window.jupyterapp;
  app.shell.activateById(window.__lk.id);
  app.commands.execute('notebook:run-all-cells')
    .then(ok => { window.__lkOk = ok; })
    .catch(err => { window.__lkOk = String(err); })
    .finally(() => { window.__lkDone = true; });
}"""

CELLS_JS = """() => window.__lk.content.widgets.map((cell, index) => {
  const code = cell.model.type === 'code';
  const outputs = code ? cell.model.outputs.toJSON() : [];
  const nodes = code ? cell.outputArea.widgets.map(w => w.node) : [];
  return {
    index,
    code,
    source: cell.model.sharedModel.getSource().split('\\n')[0].slice(0, 100),
    count: code ? cell.model.executionCount : null,
    outputs: outputs.map((o, i) => ({
      type: o.output_type,
      ename: o.ename ?? null,
      evalue: o.evalue ?? null,
      mimes: Object.keys(o.data ?? {}),
      text: [].concat(o.text ?? '').join('').slice(0, 2000),
      widget_drawn: !!nodes[i]?.querySelector('.jupyter-widgets:not(.jupyter-widgets-error-widget)')
        && !nodes[i]?.querySelector('.jupyter-widgets-error-widget'),
      plot_drawn: !!nodes[i]?.querySelector('.js-plotly-plot'),
      shown: (nodes[i]?.innerText ?? '').slice(0, 300),
    })),
  };
})"""

PAGE_JS = """(failures) => {
  const node = window.__lk.content.node;
  const text = node.innerText;
  return {
    failures: failures.filter(f => text.includes(f)),
    plots: [...node.querySelectorAll('.js-plotly-plot')].map(gd => ({
      title: gd._fullLayout?.title?.text ?? '',
      traces: (gd._fullData ?? []).filter(t => t.visible === true).length,
      drawn: gd.querySelectorAll('g.trace, g.hm').length,
    })),
  };
}"""

# The control one interaction moves: the first dropdown, else the first slider handle, of the
# first widget output that has one. Its widget's output is what the interaction must change.
TARGET_JS = """() => {
  for (const el of document.querySelectorAll('[data-lk-target]')) {
    el.removeAttribute('data-lk-target');
  }
  const roots = [...window.__lk.content.node.querySelectorAll('.jp-OutputArea-output')]
    .filter(el => el.querySelector(':scope > .jupyter-widgets, :scope .jupyter-widgets'));
  for (const root of roots) {
    const select = root.querySelector('.widget-dropdown select:not([disabled])');
    const handle = root.querySelector('.noUi-handle');
    const control = select ?? handle;
    if (control) {
      root.setAttribute('data-lk-target', 'root');
      control.setAttribute('data-lk-target', select ? 'select' : 'slider');
      return select ? 'select' : 'slider';
    }
  }
  return null;
}"""

# What the widget shows besides its controls: HTML text, Output widgets' text, figures' data.
SNAPSHOT_JS = """() => {
  const root = document.querySelector('[data-lk-target="root"]');
  const parts = [...root.querySelectorAll('.widget-html-content, .widget-output')]
    .map(el => el.innerText);
  for (const gd of root.querySelectorAll('.js-plotly-plot')) {
    parts.push(JSON.stringify((gd.data ?? []).map(t => [t.name, t.x, t.y, t.z, t.text])));
    parts.push(gd._fullLayout?.title?.text ?? '');
  }
  return parts.join('\\u0001');
}"""

SLIDER_JS = """() => {
  const h = document.querySelector('[data-lk-target="slider"]');
  return [h.getAttribute('aria-valuenow'), h.getAttribute('aria-valuemin'),
          h.getAttribute('aria-valuemax')].map(Number);
}"""


def shutdown_kernels(base: str, token: str) -> None:
    """Shut down every kernel of the server (one notebook's model at a time in memory)."""
    headers = {"Authorization": f"token {token}"}
    listing = urllib.request.Request(f"{base}/api/kernels", headers=headers)
    with urllib.request.urlopen(listing) as response:
        kernels = json.load(response)
    for kernel in kernels:
        request = urllib.request.Request(
            f"{base}/api/kernels/{kernel['id']}", headers=headers, method="DELETE"
        )
        urllib.request.urlopen(request).close()
