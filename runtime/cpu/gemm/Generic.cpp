//===- runtime/cpu/gemm/Generic.cpp - Portable kernels --------------------===//
//
// Plain C++ for any CPU (the compiler vectorizes the column loop): an item's
// two slabs are widened into an fp32 panel [k][32] once, then every block of
// rows accumulates acc[r][j] += x[r][k] * panel[k][j] in k order.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/gemm/Kernels.h"

#include "runtime/common/Convert.h"
#include "runtime/cpu/gemm/FloatRows.h"

#include <algorithm>
#include <cstring>

using namespace moert;
using namespace moert::cpu::gemm;

namespace {

constexpr int64_t panelColumns = 2 * slabRows;
constexpr int64_t blockRows = 4;

template <moert_dtype_t W> float widen(const void *w, int64_t i) {
  if constexpr (W == MOERT_F32)
    return static_cast<const float *>(w)[i];
  else if constexpr (W == MOERT_BF16)
    return bf16ToFloat(static_cast<const uint16_t *>(w)[i]);
  else
    return f16ToFloat(static_cast<const uint16_t *>(w)[i]);
}

template <moert_dtype_t W>
void run(const Weights &w, int64_t item, const PackedRows &packed,
         Workspace &workspace, Sink &sink) {
  Slabs slabs(w, item);
  int64_t k = w.k, m = packed.m;
  auto *panel = static_cast<float *>(
      workspace.get(k * panelColumns * sizeof(float)));
  std::fill_n(panel, k * panelColumns, 0.0f);
  for (int64_t j = 0; j < panelColumns; ++j) {
    const void *row = slabs.row(j);
    if (row)
      for (int64_t i = 0; i < k; ++i)
        panel[i * panelColumns + j] = widen<W>(row, i);
  }
  auto *x = static_cast<const float *>(packed.data);
  for (int64_t r0 = 0; r0 < m; r0 += blockRows) {
    int64_t rows = std::min(blockRows, m - r0);
    float acc[blockRows][panelColumns] = {};
    for (int64_t i = 0; i < k; ++i) {
      const float *p = panel + i * panelColumns;
      for (int64_t r = 0; r < rows; ++r) {
        float v = x[(r0 + r) * k + i];
        for (int64_t j = 0; j < panelColumns; ++j)
          acc[r][j] += v * p[j];
      }
    }
    slabs.deliver(sink, r0, rows, &acc[0][0], panelColumns);
  }
}

template <moert_dtype_t W> KernelSet kernels() {
  return {floatRowsBytes, clearFloatRows, packFloatRows, run<W>, nullptr};
}

} // namespace

const KernelSet &moert::cpu::gemm::genericKernels(moert_dtype_t weights) {
  static const KernelSet f32 = kernels<MOERT_F32>(),
                         f16 = kernels<MOERT_F16>(),
                         bf16 = kernels<MOERT_BF16>();
  return weights == MOERT_F32 ? f32 : weights == MOERT_F16 ? f16 : bf16;
}
