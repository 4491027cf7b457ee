#!/usr/bin/env bash
# The main job: import the bundled PR-MoE example (a pyramid of 4 and 8
# experts with residual MLPs), verify and canonicalize it, plan it for a
# 1x4 mesh, and print the plan table and the per-rank IR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${MOE_BUILD_DIR:-$root/build}")
export MOE_BUILD_DIR=$build

"$root/scripts/build.sh" moe-opt moe-translate >/dev/null
model=${1:-$root/examples/prmoe/tiny.json}
mesh=${MOE_MESH:-1x4}

"$build/bin/moe-translate" --import-prmoe "$model" |
  "$build/bin/moe-opt" --canonicalize \
    --moe-assign-parallelism="mesh=$mesh report=table"
