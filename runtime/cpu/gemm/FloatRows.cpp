//===- runtime/cpu/gemm/FloatRows.cpp - X as fp32 rows --------------------===//

#include "runtime/cpu/gemm/FloatRows.h"

#include "runtime/common/Convert.h"

using namespace moert;
using namespace moert::cpu::gemm;

size_t moert::cpu::gemm::floatRowsBytes(int64_t m, int64_t k, bool) {
  return static_cast<size_t>(m * k) * sizeof(float);
}

void moert::cpu::gemm::clearFloatRows(const PackedRows &) {}

void moert::cpu::gemm::packFloatRows(const void *src, moert_dtype_t srcType,
                                     int64_t ld, int64_t m0, int64_t rows,
                                     int64_t k0, int64_t cols,
                                     const PackedRows &x) {
  auto *out = static_cast<float *>(x.data);
  size_t rowBytes = ld * dtypeSize(srcType);
  for (int64_t r = 0; r < rows; ++r)
    convertToFloat(static_cast<const char *>(src) + r * rowBytes, srcType,
                   out + (m0 + r) * x.k + k0, cols);
}
