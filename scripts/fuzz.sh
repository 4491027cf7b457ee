#!/usr/bin/env bash
# Builds the libFuzzer targets of compiler and runtime (scripts/build.sh
# --sanitized: clang, ASan, UBSan; runtime/cmake/MoertSanitizers.cmake lists
# them) into ${MOE_FUZZ_BUILD_DIR:-build-fuzz} and runs each for SECONDS
# (default 60), one after another, going on past crashes; the corpus each
# grows is kept for the next run. Ends with one table row per target:
# seconds, inputs executed, crashes, timeouts and OOMs (the inputs that
# caused them are kept in build-fuzz/fuzz/<target>/artifacts/). With
# --junit FILE, also one JUnit test case per target, failed when it found
# anything (scripts/test.sh adds them up). Exit status 1 when any did.
#
#   scripts/fuzz.sh [--junit FILE] [SECONDS_PER_TARGET] [TARGET...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${MOE_FUZZ_BUILD_DIR:-$root/build-fuzz}")
junit=
if [[ ${1:-} == --junit ]]; then
  junit=$2
  shift 2
fi
seconds=${1:-60}
(($#)) && shift

MOE_BUILD_DIR=$build "$root/scripts/build.sh" --sanitized fuzzers
source "$root/scripts/sanitizer-options.sh"

# The seed corpus: the files the target's globs match, split into inputs.
seed() {
  python3 - "$root" "$@" <<'PY'
import glob, hashlib, os, re, sys
root, corpus, *patterns = sys.argv[1:]
for pattern in patterns:
    for path in sorted(glob.glob(os.path.join(root, pattern))):
        data = open(path, "rb").read()
        text = data.decode("utf-8", errors="replace")
        if path.endswith(".mlir"):  # -split-input-file chunks
            pieces = [p.encode() for p in
                      re.split(r"^// -----.*$", text, flags=re.M)]
        elif path.endswith(".test"):  # split-file's JSON files
            pieces = [p.split("\n", 1)[1].encode() for p in
                      re.split(r"^#--- ", text, flags=re.M)[1:]
                      if p.split("\n", 1)[0].strip().endswith(".json")
                      and "\n" in p]
        else:  # binary seeds (.npy, .safetensors) as they are
            pieces = [data]
        for data in pieces:
            if data.strip() and len(data) <= 65536:
                name = hashlib.sha1(data).hexdigest()
                with open(os.path.join(corpus, name), "wb") as f:
                    f.write(data)
PY
}

rows=() cases=() found=0
while IFS=$'\t' read -r name binary dict seeds; do
  if (($#)) && [[ " $* " != *" $name "* ]]; then
    continue
  fi
  dir=$build/fuzz/$name
  rm -rf "$dir/artifacts"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  # shellcheck disable=SC2086 # globs, expanded by the seeder
  seed "$dir/corpus" $seeds
  echo "fuzz.sh: $name for ${seconds}s ($(ls "$dir/corpus" | wc -l) inputs in its corpus)"
  options=()
  [[ $dict != - ]] && options+=("-dict=$root/$dict")
  "$binary" "$dir/corpus" "${options[@]}" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
    -ignore_ooms=1 -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$dir/artifacts/" \
    >"$dir/fuzz.log" 2>&1 || true
  # Fork mode's status: "#RUNS: cov: ... oom/timeout/crash: O/T/C ...".
  status=$(grep -E '^#[0-9]+: cov:' "$dir/fuzz.log" | tail -1 || true)
  runs=$(sed -nE 's/^#([0-9]+):.*/\1/p' <<<"$status")
  read -r ooms timeouts crashes < <(sed -nE \
    's#.*oom/timeout/crash: ([0-9]+)/([0-9]+)/([0-9]+).*#\1 \2 \3#p' \
    <<<"$status" || true) || true
  saved=$(find "$dir/artifacts" -type f | wc -l)
  bad=$((${crashes:-0} + ${timeouts:-0} + ${ooms:-0} + saved))
  [[ -z $runs ]] && bad=$((bad + 1)) # it did not run
  ((bad)) && found=1
  failure=
  ((bad)) && failure="<failure message=\"crashes ${crashes:-?}, timeouts ${timeouts:-?}, ooms ${ooms:-?}: $dir\"/>"
  cases+=("<testcase classname=\"fuzz\" name=\"$name\" time=\"$seconds\">$failure</testcase>")
  rows+=("$(printf '%-26s %8s %12s %8s %9s %5s %6s' "$name" "$seconds" \
    "${runs:-?}" "${crashes:-?}" "${timeouts:-?}" "${ooms:-?}" "$saved")")
done <"$build/fuzz-targets.txt"

printf '%-26s %8s %12s %8s %9s %5s %6s\n' target seconds executed crashes \
  timeouts ooms saved
printf '%s\n' "${rows[@]}"
if [[ -n $junit ]]; then
  { echo "<testsuite name=\"fuzz\">"; printf '%s\n' "${cases[@]}"; echo "</testsuite>"; } >"$junit"
fi
exit $found
