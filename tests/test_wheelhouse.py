"""The offline classroom: a wheelhouse from scripts/wheelhouse.sh installs labkit with no index.

Builds the small wheelhouse (WHEELHOUSE_EXTRAS=none: what `import labkit` needs, torch's CPU
build on a Linux machine without a GPU, and the model's wheel), then installs labkit from it
into a fresh virtual environment with `--no-index` and pip's configuration files switched off,
so no other folder or index can supply a wheel, and runs `labkit info` there. `make wheelhouse`
runs the same script with the lab and test tools added.
"""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from labkit.fetch import GGUF_MEMBER, WHEEL_NAME, WHEEL_SHA256, sha256_file

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, **kwargs)
    output = f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{cmd} failed:\n{output}"
    return result


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    """Build the small wheelhouse with the project's script; return its folder."""
    house = tmp_path_factory.mktemp("wheelhouse")
    env = {**os.environ, "WHEELHOUSE_EXTRAS": "none", "PYTHON": sys.executable}
    env.pop("WHEELHOUSE", None)
    result = _run(["bash", str(REPO / "scripts" / "wheelhouse.sh"), str(house)], env=env)
    print(result.stdout)
    return house


def test_wheelhouse_holds_labkit_torch_and_the_model(wheelhouse):
    names = sorted(p.name for p in wheelhouse.glob("*.whl"))
    assert any(n.startswith("labkit-") for n in names), names
    assert any(n.startswith("torch-") for n in names), names
    model = wheelhouse / WHEEL_NAME
    assert model.is_file(), names
    assert sha256_file(model) == WHEEL_SHA256
    assert GGUF_MEMBER in zipfile.ZipFile(model).namelist()
    assert not list(wheelhouse.glob("*.tar.gz")), "a source distribution would need a build"


def test_install_from_the_wheelhouse_with_no_index(wheelhouse, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    # No index, and no pip configuration (this machine's find-links and local indexes included):
    # every wheel must come from the wheelhouse.
    offline = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    offline |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    install = [str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links"]
    _run([*install, str(wheelhouse), "labkit"], env=offline)

    work = tmp_path / "work"  # outside the checkout: labkit must come from the venv
    work.mkdir()
    info = _run([str(venv / "bin" / "labkit"), "info", "--json"], cwd=work, env=offline)
    report = json.loads(info.stdout)
    torch_wheel = next(wheelhouse.glob("torch-*.whl")).name
    assert report["versions"]["torch"] == torch_wheel.split("-")[1]
    where = _run([str(python), "-c", "import labkit; print(labkit.__file__)"], cwd=work)
    assert Path(where.stdout.strip()).is_relative_to(venv)

    # The model's wheel from the wheelhouse is the one `labkit fetch --wheel` verifies and opens.
    check = (
        "import sys, tempfile; from pathlib import Path; from labkit.fetch import extract_gguf; "
        "print(extract_gguf(Path(sys.argv[1]), Path(tempfile.mkdtemp())).stat().st_size)"
    )
    size = _run([str(python), "-c", check, str(wheelhouse / WHEEL_NAME)], cwd=work, env=offline)
    assert int(size.stdout) > 50_000_000
