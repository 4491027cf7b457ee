#!/usr/bin/env bash
# moert-build-model.sh [--cxx COMPILER] MODEL.cpp OUT.so
#
# Builds the C++ of `moe-translate --moe-to-cpp` into a model .so for
# moert-run / moe-run (moe-run calls this script too: one set of flags).
# Needs a C++17 compiler and this checkout's runtime headers only: no MLIR
# and no libmoert (the .so resolves moert_* from the runner that loads it).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cxx=${CXX:-c++}
if [[ ${1:-} == --cxx ]]; then
  cxx=$2
  shift 2
fi
if [[ $# -ne 2 ]]; then
  echo "usage: moert-build-model.sh [--cxx COMPILER] MODEL.cpp OUT.so" >&2
  exit 2
fi
exec "$cxx" -std=c++17 -O2 -fPIC -shared -I"$root" "$1" -o "$2"
