#!/usr/bin/env bash
# Configures and builds moe-mlir into ${MOE_BUILD_DIR:-build}.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${MOE_BUILD_DIR:-$root/build}")

"$root/scripts/install-deps.sh"
# A common base lets ccache hit across checkouts at different paths.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$root")}
if [[ ! -f $build/build.ninja ]]; then
  cmake -G Ninja -S "$root" -B "$build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit >/dev/null
fi
ninja -C "$build" "$@"
