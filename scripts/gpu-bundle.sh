#!/usr/bin/env bash
# Writes the device bundle (default: gpu-bundle/ at the repository root, git
# ignored) that scripts/gpu-check.sh needs on a GPU machine without MLIR,
# GoogleTest. Runs here (Debian 12, the compiler built):
# - cases/ + manifest.json: every model family of examples/ in f32 and bf16,
#   fused and unfused, 1 rank (test/Integration/e2e_test.py --bundle): the
#   emitted model C++, weights, x.npy, the NumPy reference and the CPU
#   backend's output;
# - debs/: Debian 12's libgtest-dev as a .deb file (gpu-check.sh extracts
#   it);
# - runtime-abi.sha256: the runtime headers the C++ was emitted for.
# Carry the directory with the working tree (the device tool's `carry`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${MOE_BUILD_DIR:-$root/build}")
export MOE_BUILD_DIR=$build
out=$(realpath -m "${1:-$root/gpu-bundle}")

"$root/scripts/build.sh" moe-run moert-gen-weights >/dev/null
rm -rf "$out/cases" "$out/manifest.json"
python3 "$root/test/Integration/e2e_test.py" --moe-run "$build/bin/moe-run" \
  --workdir "$build/gpu-bundle" --bundle "$out"
(cd "$root" && sha256sum runtime/moert.h runtime/moert_model.h \
  runtime/tools/moert-build-model.sh) > "$out/runtime-abi.sha256"

# Kept across runs: the packages only change with Debian 12 point releases.
packages=(libgtest-dev)
mkdir -p "$out/debs"
for p in "${packages[@]}"; do
  if ! compgen -G "$out/debs/${p}_*.deb" >/dev/null; then
    (cd "$out/debs" && apt-get download -q "$p") \
      || { echo "gpu-bundle: error: apt-get download $p failed" >&2; exit 1; }
  fi
done
echo "bundle: $out ($(du -sh "$out" | cut -f1): cases $(du -sh "$out/cases" | cut -f1), debs $(du -sh "$out/debs" | cut -f1))"
