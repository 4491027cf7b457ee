//===- runtime/cpu/gemm/FloatRows.h - X as fp32 rows -------------*- C++ -*-===//
//
// The packed layout of the FMA kernels (portable and AVX-512): X as dense
// fp32 rows [m, k], exact whatever X's dtype (they never split).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_GEMM_FLOATROWS_H
#define MOERT_CPU_GEMM_FLOATROWS_H

#include "runtime/cpu/gemm/Kernel.h"

#include <cstddef>
#include <cstdint>

namespace moert::cpu::gemm {

size_t floatRowsBytes(int64_t m, int64_t k, bool split);
void clearFloatRows(const PackedRows &x);
void packFloatRows(const void *src, moert_dtype_t srcType, int64_t ld,
                   int64_t m0, int64_t rows, int64_t k0, int64_t cols,
                   const PackedRows &x);

} // namespace moert::cpu::gemm

#endif // MOERT_CPU_GEMM_FLOATROWS_H
