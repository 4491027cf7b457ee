#!/usr/bin/env bash
# Builds everything and runs every test: the lit suite and the ctest units.
# Ends with one line "N passed, N failed, N skipped" over both.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${MOE_BUILD_DIR:-$root/build}")
export MOE_BUILD_DIR=$build

"$root/scripts/build.sh"

results=$build/test-results
rm -rf "$results" && mkdir -p "$results"
status=0
/usr/lib/llvm-22/bin/lit -sv --order=lexical -o "$results/lit.json" "$build/test" || status=1
ctest --test-dir "$build" --output-on-failure --output-junit "$results/ctest.xml" || status=1

python3 "$root/scripts/summarize-tests.py" "$results/lit.json" "$results/ctest.xml"
exit $status
