#!/usr/bin/env bash
# The main job: compile the bundled PR-MoE example (examples/prmoe/tiny.json:
# a pyramid of 4 and 8 experts with residual MLPs) for 4 ranks, build it
# against libmoert, run it on the CPU backend (ranks as threads) with random
# weights and input, and print the plan table, the per-layer timings and
# drops, and the error against the NumPy reference. Then generate: the whole
# decoder of a bundled tiny Qwen3-MoE checkpoint (saved by transformers) on
# the same ranks, greedy, its latency table and whether the new ids are
# transformers' (the checkpoint's expected-ids.txt).
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

decoder=${MOE_DECODER:-$root/test/Integration/hf-models/qwen3_moe}
args=()
while read -r prompt; do
  args+=(--prompt-ids "${prompt// /,}")
done <"$decoder/prompts.txt"
# One more copy of the first prompt: 4 sequences split over 4 ranks.
args+=(--prompt-ids "$(head -1 "$decoder/prompts.txt" | tr ' ' ',')")
out=$build/run-example/generate
mkdir -p "$out"
echo
echo "== generate: $decoder on 1x$ranks"
"$build/bin/moe-run" "$decoder" --mesh "1x$ranks" "${args[@]}" \
  --max-new-tokens 16 --output-ids "$out/ids.txt"
if diff <(cat "$decoder/expected-ids.txt" <(head -1 "$decoder/expected-ids.txt")) \
  "$out/ids.txt" >/dev/null; then
  echo "new ids: identical to transformers' generate ($out/ids.txt)"
else
  echo "new ids differ from $decoder/expected-ids.txt: see $out/ids.txt" >&2
  exit 1
fi
