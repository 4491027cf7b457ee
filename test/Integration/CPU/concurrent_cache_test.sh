#!/usr/bin/env bash
# N moe-run processes (as N GPU processes would) compile the same model into
# one fresh cache at once: all succeed, give the same output, and the cache
# holds exactly one model .so/.cpp and one weights file, no temporaries.
# usage: concurrent_cache_test.sh MOE_RUN CONFIG WORKDIR [N]
set -euo pipefail
moe_run=$1 config=$2 work=$3 n=${4:-4}
rm -rf "$work" && mkdir -p "$work"
pids=()
for i in $(seq 1 "$n"); do
  "$moe_run" "$config" --mesh 1x2 --tokens 8 --seed 5 --cache-dir "$work/cache" \
    --output "$work/y$i.npy" > "$work/out$i" 2>&1 &
  pids+=($!)
done
failed=0
for i in $(seq 1 "$n"); do
  if ! wait "${pids[$((i - 1))]}"; then
    echo "FAIL: process $i exited non-zero:" && cat "$work/out$i"
    failed=1
  fi
done
[[ $failed == 0 ]] || exit 1
for i in $(seq 2 "$n"); do
  cmp "$work/y1.npy" "$work/y$i.npy" || { echo "FAIL: outputs 1 and $i differ"; exit 1; }
done
count() { find "$work/cache" -name "$1" | wc -l; }
[[ $(count 'model-*.so') == 1 && $(count 'model-*.cpp') == 1 &&
   $(count 'weights-*.safetensors') == 1 && $(count '*.tmp') == 0 ]] || {
  echo "FAIL: unexpected cache contents:"; ls -l "$work/cache"; exit 1; }
echo "ok: $n concurrent moe-run processes, one cache, identical outputs"
