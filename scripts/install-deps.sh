#!/usr/bin/env bash
# Installs what moe-mlir needs on a fresh Debian 12 machine; does nothing when
# it is all there already. --fuzz: also clang and libFuzzer's runtime
# (scripts/fuzz.sh); --bench: matplotlib for the bench scripts' plots in the
# python3 on PATH. The normal build needs neither.
set -euo pipefail

packages=(
  cmake ninja-build g++ ccache
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools
  libgtest-dev
  # rsvg-convert: the tests render the SVG pictures (plan, routing) to PNG;
  # lit's own Python plots in test/Bench.
  librsvg2-bin python3-matplotlib
)
if [[ ${1:-} == --fuzz ]]; then
  packages+=(clang libclang-rt-14-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "moe-mlir: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
fi

# The end-to-end tests compare against a NumPy reference.
if ! python3 -c "import numpy" 2>/dev/null; then
  echo "moe-mlir: installing numpy"
  python3 -m pip install --quiet numpy
fi

if [[ ${1:-} == --bench ]] && ! python3 -c "import matplotlib" 2>/dev/null; then
  echo "moe-mlir: installing matplotlib"
  python3 -m pip install --quiet matplotlib
fi
