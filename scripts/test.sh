#!/usr/bin/env bash
# Builds everything and runs every test: the lit suite and the ctest units;
# then all of it again in a sanitized build (scripts/build.sh --sanitized:
# ASan + UBSan over compiler and runtime), and each fuzzer for
# $MOE_FUZZ_SECONDS (default 30).
# MOE_SANITIZED_TESTS=0 skips the sanitized part. Ends with one line
# "N passed, N failed, N skipped" over all of it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${MOE_BUILD_DIR:-$root/build}")
sanitized=$(realpath -m "${MOE_FUZZ_BUILD_DIR:-$root/build-fuzz}")
export MOE_BUILD_DIR=$build MOE_FUZZ_BUILD_DIR=$sanitized
lit=/usr/lib/llvm-22/bin/lit

"$root/scripts/build.sh"

results=$build/test-results
rm -rf "$results" && mkdir -p "$results"
status=0
$lit -sv --order=lexical -o "$results/lit.json" "$build/test" || status=1
ctest --test-dir "$build" --output-on-failure --output-junit "$results/ctest.xml" || status=1
reports=("$results/lit.json" "$results/ctest.xml")

if [[ ${MOE_SANITIZED_TESTS:-1} != 0 ]]; then
  echo "test.sh: the sanitized build ($sanitized)"
  MOE_BUILD_DIR=$sanitized "$root/scripts/build.sh" --sanitized
  source "$root/scripts/sanitizer-options.sh"
  $lit -sv --order=lexical -o "$results/sanitized-lit.json" \
    "$sanitized/test" || status=1
  ctest --test-dir "$sanitized" --output-on-failure \
    --output-junit "$results/sanitized-ctest.xml" || status=1
  "$root/scripts/fuzz.sh" --junit "$results/fuzz.xml" \
    "${MOE_FUZZ_SECONDS:-30}" || status=1
  reports+=("$results/sanitized-lit.json" "$results/sanitized-ctest.xml"
    "$results/fuzz.xml")
fi

python3 "$root/scripts/summarize-tests.py" "${reports[@]}"
exit $status
