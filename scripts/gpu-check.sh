#!/usr/bin/env bash
# Validates the runtime on a GPU machine that has no MLIR, from the repository
# root with the bundle of scripts/gpu-bundle.sh carried along:
#   scripts/gpu-check.sh                 # on the GPU machine (--backend cuda)
#   scripts/gpu-check.sh --backend cpu   # the host dry run: same flow, CPU backend
# 1. extracts the bundle's Debian GoogleTest into the build dir;
# 2. configures the runtime and the benchmarks (top level, -DMOE_BUILD_COMPILER=OFF)
#    against them and NCCL (pip's nvidia NCCL when python3 has one, else
#    CMake's search of the CUDA dirs), builds everything;
# 3. runs the runtime's ctest (moert-gpu-smoke included: with --backend cuda
#    it must pass, not skip);
# 4. builds every bundled model (runtime/tools/moert-build-model.sh), runs it
#    with moert-run and compares it with the NumPy reference and the CPU
#    output (test/Integration/e2e_check.py prints the table);
# 5. with --bench, the GPU layer benchmark against PyTorch (when python3 has
#    torch): its table and a plot of it (bench/gpu_layer/plot.py) go to the
#    logs (--backend cpu: the dry runs).
# One command does it all: a lent machine given back between calls loses
# build-gpu/. Logs: at most 8 files, under $OUT when set (the device tool
# returns that many), else BUILD/gpu-check; the rest stays in BUILD.
# Exit 0: all passed; 1: a test failed; 2: the machine or the bundle is not
# usable (one "gpu-check: error:" line says why).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
backend=cuda bundle=$root/gpu-bundle build=$root/build-gpu bench=0
while (($#)); do
  case $1 in
    --backend) backend=$2; shift 2 ;;
    --bundle) bundle=$(realpath -m "$2"); shift 2 ;;
    --build-dir) build=$(realpath -m "$2"); shift 2 ;;
    --bench) bench=1; shift ;;
    *) echo "usage: gpu-check.sh [--backend cuda|cpu] [--bundle DIR] [--build-dir DIR] [--bench]" >&2; exit 2 ;;
  esac
done
[[ $backend == cuda || $backend == cpu ]] || { echo "gpu-check: error: --backend cuda|cpu" >&2; exit 2; }
logs=${OUT:-$build/gpu-check}
steps=$build/logs # configure and build: copied to $logs when they fail
mkdir -p "$logs" "$build" "$steps"

die() {
  echo "gpu-check: error: $*" >&2
  exit 2
}
# Runs a step with its output in $steps/NAME.log; a failure ends the check.
step() {
  local name=$1
  shift
  echo "== $name"
  if ! "$@" >"$steps/$name.log" 2>&1; then
    cp "$steps/$name.log" "$logs/"
    tail -n 30 "$steps/$name.log" >&2
    die "$name failed: $* (log: $logs/$name.log)"
  fi
}

# The machine and the bundle.
for tool in cmake ninja python3 dpkg-deb "${CXX:-c++}"; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
python3 -c 'import numpy' 2>/dev/null || die "python3 has no numpy"
[[ -f $bundle/manifest.json ]] || die "no bundle at $bundle: run scripts/gpu-bundle.sh on a machine with MLIR and carry it"
(cd "$root" && sha256sum --quiet -c "$bundle/runtime-abi.sha256") >/dev/null 2>&1 \
  || die "the bundle was made for other runtime headers: re-run scripts/gpu-bundle.sh"
arch=$(dpkg --print-architecture)
for deb in "$bundle"/debs/*.deb; do
  [[ -f $deb ]] || die "no .deb files in $bundle/debs"
  a=$(dpkg-deb -f "$deb" Architecture)
  [[ $a == "$arch" || $a == all ]] || die "$(basename "$deb") is for $a, this machine is $arch"
done
cmake_args=()
if [[ $backend == cuda ]]; then
  gpus=$(cd "$root/test/Integration" && python3 -c 'import e2e_check as c; n, why = c.visible_gpus(); print(n, why)')
  [[ ${gpus%% *} -gt 0 ]] || die "no GPU: ${gpus#* }"
  if ! command -v nvcc >/dev/null; then
    [[ -x /usr/local/cuda/bin/nvcc ]] || die "nvcc not found (PATH, /usr/local/cuda/bin)"
    cmake_args+=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
  fi
fi
# pip's NCCL (nvidia-nccl-cu*): nvidia/nccl/{include,lib}, the library often
# only as libnccl.so.2, which find_library(nccl) would not find.
nccl=$(python3 - <<'EOF'
import glob, os, site
for d in site.getsitepackages() + [site.getusersitepackages()]:
    for h in sorted(glob.glob(os.path.join(d, "nvidia", "**", "include", "nccl.h"), recursive=True)):
        libs = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(h)), "lib", "libnccl.so*")))
        if libs:
            print(os.path.dirname(h), libs[0], sep="\t")
            raise SystemExit
EOF
)
if [[ -n $nccl ]]; then
  cmake_args+=(-DMOERT_NCCL_INCLUDE_DIR="${nccl%$'\t'*}" -DMOERT_NCCL_LIBRARY="${nccl#*$'\t'}")
fi
{
  echo "backend: $backend; $(uname -m); $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  echo "$(cmake --version | head -1); $("${CXX:-c++}" --version | head -1); python3 $(python3 -c 'import sys; print(sys.version.split()[0])')"
  [[ $backend == cuda ]] && { nvidia-smi -L; nvcc --version 2>/dev/null | tail -2 || true; }
  echo "NCCL: ${nccl:-not from pip (CMake searches the CUDA dirs)}" | tr '\t' ' '
} | tee "$logs/machine.txt"

# 1. GoogleTest from the bundle.
deps=$build/deps
rm -rf "$deps" && mkdir -p "$deps"
for deb in "$bundle"/debs/*.deb; do
  dpkg-deb -x "$deb" "$deps" || die "cannot extract $deb"
done
gtest_dir=$(find "$deps" -name GTestConfig.cmake | head -1)
[[ -n $gtest_dir ]] || die "the bundle's debs lack GoogleTest"

# 2. Configure and build.
step configure cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DMOE_BUILD_COMPILER=OFF -DGTest_DIR="$(dirname "$gtest_dir")" \
  "${cmake_args[@]}"
grep "moert: CUDA backend" "$steps/configure.log" || true
if [[ $backend == cuda ]] && ! grep -q "moert: CUDA backend built" "$steps/configure.log"; then
  cp "$steps/configure.log" "$logs/"
  die "the CUDA backend was not configured (it needs nvcc and NCCL): see $logs/configure.log"
fi
step build ninja -C "$build"
ldd "$build/runtime/runner/moert-run" | grep -E 'moert|nccl|cudart|cublas' \
  | sed 's/ (0x.*//' >>"$logs/machine.txt"

# 3. The runtime's tests.
failed=0
echo "== ctest"
if ! ctest --test-dir "$build" -j "$(nproc)" --timeout 300 --output-on-failure \
  >"$logs/ctest.log" 2>&1; then
  failed=1
fi
# The verdicts only (the failures' output is in ctest.log).
grep -E "tests passed|tests failed|\*\*\*(Failed|Skipped|Timeout|Not Run)|Exception" "$logs/ctest.log" \
  | sed -E 's/ \.{3,} */ /' || true
smoke=$(sed -nE 's/.*Test +#[0-9]+: moert-gpu-smoke \.* *//p' "$logs/ctest.log")
echo "moert-gpu-smoke: ${smoke:-not built}"
if [[ $backend == cuda ]]; then
  [[ $smoke != *Skipped* ]] || die "moert-gpu-smoke skipped: CUDA sees no device (see $logs/ctest.log)"
  [[ $smoke == *Passed* ]] || failed=1
fi

# 4. The bundled models.
echo "== e2e ($backend)"
rc=0
python3 "$root/test/Integration/e2e_check.py" --bundle "$bundle" --backend "$backend" \
  --moert-run "$build/runtime/runner/moert-run" --workdir "$build/e2e" --timeout 120 2>&1 \
  | tee "$logs/e2e.log" || rc=$?
((rc != 2)) || die "a bundled model did not build (above; $logs/e2e.log)"
((rc == 0)) || failed=1

# 5. The benchmark: shapes, the PyTorch block, then the table (saved under
# $logs with the GPU's name and the date).
if ((bench)); then
  echo "== bench ($backend)"
  layer=$build/bench/gpu_layer/moe-bench-gpu-layer torch_py=$root/bench/gpu_layer/torch_moe.py
  if [[ $backend == cpu ]]; then
    "$layer" --dry-run >"$logs/bench.log" 2>&1 && "$layer" --shapes-json >"$build/shapes.json" \
      && python3 "$torch_py" --shapes "$build/shapes.json" --dry-run >>"$logs/bench.log" 2>&1 \
      || { tail -n 20 "$logs/bench.log"; failed=1; }
  elif timeout 60 "$layer" --shapes-json >"$build/shapes.json" 2>"$logs/bench.log"; then
    torch_args=()
    if ! python3 -c 'import torch' 2>/dev/null; then
      echo "python3 has no torch: the table has no PyTorch column"
    elif timeout 240 python3 "$torch_py" --shapes "$build/shapes.json" --out "$logs/torch.json" \
      >>"$logs/bench.log" 2>&1; then
      torch_args=(--torch-json "$logs/torch.json")
    else
      echo "torch_moe.py failed (bench.log): the table has no PyTorch column"
    fi
    timeout 300 "$layer" --graphs "${torch_args[@]}" --out-dir "$logs" 2>&1 | tee -a "$logs/bench.log" \
      || failed=1
    # The table as a plot beside it (where python3 has matplotlib).
    for table in "$logs"/gpu_layer-*.txt; do
      [[ -e $table ]] || continue
      python3 "$root/bench/gpu_layer/plot.py" "$table" >>"$logs/bench.log" 2>&1 \
        || echo "no plot of $table (bench.log)"
    done
  else
    cat "$logs/bench.log"
    failed=1
  fi
fi
((failed == 0)) && echo "gpu-check: all passed ($backend)" || echo "gpu-check: FAILED ($backend; logs: $logs)"
exit $failed
