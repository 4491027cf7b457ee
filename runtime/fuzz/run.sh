#!/usr/bin/env bash
# runtime/fuzz/run.sh [SECONDS]: builds the runtime's libFuzzer targets with
# clang (-DMOERT_FUZZ=ON: ASan + UBSan + coverage, in a build directory of
# their own, $MOERT_FUZZ_BUILD_DIR or build-fuzz-rt/) and runs each for
# SECONDS (default 60) from seeds/<target> plus the corpus grown by earlier
# runs. Prints one row per target: seconds, inputs executed, crashes in this
# run (reproducers are kept under <build>/fuzz/crashes/<target>/; libFuzzer
# stops a target at its first crash). Exit status 1 if any target crashed.
set -euo pipefail
seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(realpath -m "${MOERT_FUZZ_BUILD_DIR:-$root/build-fuzz-rt}")
targets=(json safetensors npy)

if ! [[ -x /usr/bin/clang++ ]] ||
  ! compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a" >/dev/null; then
  echo "run.sh: needs clang and libFuzzer: scripts/install-deps.sh --fuzz" >&2
  exit 2
fi
if [[ ! -f $build/build.ninja ]]; then
  cmake -G Ninja -S "$root/runtime" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=/usr/bin/clang -DCMAKE_CXX_COMPILER=/usr/bin/clang++ \
    -DMOERT_FUZZ=ON -DMOERT_BUILD_TESTS=OFF -DMOERT_ENABLE_CUDA=OFF >/dev/null
fi
ninja -C "$build" "${targets[@]/#/moert-fuzz-}" >/dev/null

crashed=0
rows=()
for target in "${targets[@]}"; do
  work=$build/fuzz
  corpus=$work/corpus/$target crashes=$work/crashes/$target
  mkdir -p "$corpus" "$crashes"
  dict=$here/json.dict
  [[ $target == npy ]] && dict=$here/npy.dict
  log=$work/$target.log
  before=$(find "$crashes" -type f | wc -l)
  status=0
  "$work/moert-fuzz-$target" "$corpus" "$here/seeds/$target" \
    -max_total_time="$seconds" -dict="$dict" -artifact_prefix="$crashes/" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
  inputs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  found=$(($(find "$crashes" -type f | wc -l) - before))
  if ((status != 0 || found != 0)); then
    crashed=1
    echo "run.sh: $target: exit $status, see $log" >&2
  fi
  rows+=("$(printf '%-12s %8s %12s %8s' "$target" "$seconds" "${inputs:-?}" "$found")")
done
printf '%-12s %8s %12s %8s\n' target seconds inputs crashes
printf '%s\n' "${rows[@]}"
exit $crashed
