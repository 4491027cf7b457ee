#!/usr/bin/env bash
# Configures and builds moe-mlir into ${MOE_BUILD_DIR:-build}.
#   scripts/build.sh [--sanitized] [NINJA TARGET...]
# --sanitized: clang with ASan + UBSan and libFuzzer's coverage over compiler
# and runtime (-DMOE_FUZZ=ON), for the fuzzers and the sanitized tests; use
# a build directory of its own.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${MOE_BUILD_DIR:-$root/build}")
flavor=(-DCMAKE_BUILD_TYPE=Release)
deps=()
if [[ ${1:-} == --sanitized ]]; then
  shift
  flavor+=(-DMOE_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++)
  deps=(--fuzz)
fi

"$root/scripts/install-deps.sh" "${deps[@]}"
# A common base lets ccache hit across checkouts at different paths.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$root")}
if [[ ! -f $build/build.ninja ]]; then
  cmake -G Ninja -S "$root" -B "$build" "${flavor[@]}" \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit >/dev/null
fi
ninja -C "$build" "$@"
