//===- runtime/cpu/gemm/StoreFloats.h - fp32 rounded to store -*- C++ -*-===//
//
// convertFromFloat with bf16 vectorized on AVX2 and AVX-512 (integer
// round-to-nearest-even, NaN kept quiet): the GEMM epilogues round every
// output row through it. Each path gives the bits of the scalar
// floatToBf16 for every input, denormals included (VCVTNEPS2BF16 would
// flush them, so it is not used here).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_GEMM_STOREFLOATS_H
#define MOERT_CPU_GEMM_STOREFLOATS_H

#include "runtime/moert.h"

#include <cstdint>

namespace moert::cpu::gemm {

// dst[i] = src[i] rounded into `type`, as convertFromFloat, on the widest
// path gemm::isa() allows.
void storeFloats(const float *src, void *dst, moert_dtype_t type,
                 int64_t count);

// values[i] rounded to bf16 as storeFloats rounds it, kept in fp32.
void roundToBf16InPlace(float *values, int64_t count);

// Each path's fp32 -> bf16 (the tests run every one the CPU has).
void floatsToBf16Generic(const float *src, uint16_t *dst, int64_t count);
#if defined(__x86_64__)
void floatsToBf16Avx2(const float *src, uint16_t *dst, int64_t count);
void floatsToBf16Avx512(const float *src, uint16_t *dst, int64_t count);
#endif

} // namespace moert::cpu::gemm

#endif // MOERT_CPU_GEMM_STOREFLOATS_H
