#!/usr/bin/env bash
# The main job: compile the bundled PR-MoE example (examples/prmoe/tiny.json:
# a pyramid of 4 and 8 experts with residual MLPs) for 4 ranks, build it
# against libmoert, run it on the CPU backend (ranks as threads) with random
# weights and input, and print the plan table, the per-layer timings and
# drops, and the error against the NumPy reference.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${MOE_BUILD_DIR:-$root/build}")
export MOE_BUILD_DIR=$build

"$root/scripts/build.sh" moe-run moert-gen-weights >/dev/null
model=${1:-$root/examples/prmoe/tiny.json}
ranks=${MOE_RANKS:-4}

python3 "$root/test/Integration/e2e_test.py" --moe-run "$build/bin/moe-run" \
  --workdir "$build/run-example" --config "$model" --ranks "$ranks" \
  --tokens "${MOE_TOKENS:-16}" --verbose
