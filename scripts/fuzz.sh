#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -DMOE_FUZZ=ON: cmake/MoeFuzz.cmake)
# into ${MOE_FUZZ_BUILD_DIR:-build-fuzz} and runs each for SECONDS (default
# 60), one after another, going on past crashes. Ends with one table row per
# target: seconds, inputs executed, crashes, timeouts and OOMs (the inputs
# that caused them are kept in build-fuzz/fuzz/<target>/artifacts/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${MOE_FUZZ_BUILD_DIR:-$root/build-fuzz}")
seconds=${1:-60}
(($#)) && shift

"$root/scripts/install-deps.sh" --fuzz
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$root")}
if [[ ! -f $build/build.ninja ]]; then
  cmake -G Ninja -S "$root" -B "$build" \
    -DCMAKE_BUILD_TYPE=Release -DMOE_FUZZ=ON \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit >/dev/null
fi
ninja -C "$build" moe-fuzzers

# The seed corpus: the files the target's globs match, split into inputs.
seed() {
  python3 - "$root" "$@" <<'PY'
import glob, hashlib, os, re, sys
root, corpus, *patterns = sys.argv[1:]
for pattern in patterns:
    for path in sorted(glob.glob(os.path.join(root, pattern))):
        text = open(path, encoding="utf-8", errors="replace").read()
        if path.endswith(".mlir"):  # -split-input-file chunks
            pieces = re.split(r"^// -----.*$", text, flags=re.M)
        elif path.endswith(".test"):  # split-file's JSON files
            pieces = [p.split("\n", 1)[1] for p in
                      re.split(r"^#--- ", text, flags=re.M)[1:]
                      if p.split("\n", 1)[0].strip().endswith(".json")
                      and "\n" in p]
        else:
            pieces = [text]
        for piece in pieces:
            data = piece.encode()
            if data.strip() and len(data) <= 65536:
                name = hashlib.sha1(data).hexdigest()
                with open(os.path.join(corpus, name), "wb") as f:
                    f.write(data)
PY
}

rows=()
while IFS=$'\t' read -r name binary seeds; do
  if (($#)) && [[ " $* " != *" $name "* ]]; then
    continue
  fi
  dir=$build/fuzz/$name
  rm -rf "$dir/artifacts"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  # shellcheck disable=SC2086 # globs, expanded by the seeder
  seed "$dir/corpus" $seeds
  echo "fuzz.sh: $name for ${seconds}s ($(ls "$dir/corpus" | wc -l) inputs in its corpus)"
  "$binary" "$dir/corpus" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
    -ignore_ooms=1 -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$dir/artifacts/" \
    >"$dir/fuzz.log" 2>&1 || true
  # Fork mode's status: "#RUNS: cov: ... oom/timeout/crash: O/T/C ...".
  status=$(grep -E '^#[0-9]+: cov:' "$dir/fuzz.log" | tail -1 || true)
  runs=$(sed -nE 's/^#([0-9]+):.*/\1/p' <<<"$status")
  read -r ooms timeouts crashes < <(sed -nE \
    's#.*oom/timeout/crash: ([0-9]+)/([0-9]+)/([0-9]+).*#\1 \2 \3#p' \
    <<<"$status" || true)
  saved=$(find "$dir/artifacts" -type f | wc -l)
  rows+=("$(printf '%-26s %8s %12s %8s %9s %5s %6s' "$name" "$seconds" \
    "${runs:-?}" "${crashes:-?}" "${timeouts:-?}" "${ooms:-?}" "$saved")")
done <"$build/fuzz-targets.txt"

printf '%-26s %8s %12s %8s %9s %5s %6s\n' target seconds executed crashes \
  timeouts ooms saved
printf '%s\n' "${rows[@]}"
