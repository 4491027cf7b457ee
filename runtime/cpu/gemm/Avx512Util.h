//===- runtime/cpu/gemm/Avx512Util.h - Shared AVX-512 helpers ---*- C++ -*-===//
//
// For the x86-64 kernel files only. Functions carry their ISA in a target
// attribute (the rest of the runtime builds for baseline x86-64) and run
// only after gemm::isa() found the ISA.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_GEMM_AVX512UTIL_H
#define MOERT_CPU_GEMM_AVX512UTIL_H

#include <immintrin.h>

#include <cstdint>

#define MOERT_AVX512                                                           \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define MOERT_AVX512_BF16                                                      \
  __attribute__((target(                                                       \
      "avx512f,avx512bw,avx512vl,avx512dq,fma,f16c,avx512bf16")))

namespace moert::cpu::gemm {

// The first `count` of 16 lanes.
MOERT_AVX512 inline __mmask16 laneMask(int64_t count) {
  return count >= 16  ? static_cast<__mmask16>(0xffff)
         : count <= 0 ? static_cast<__mmask16>(0)
                      : static_cast<__mmask16>((1u << count) - 1);
}

// The first `count` of 32 16-bit lanes.
MOERT_AVX512 inline __mmask32 halfLaneMask(int64_t count) {
  return count >= 32 ? ~0u : count <= 0 ? 0u : (1u << count) - 1;
}

// Transposes 16 rows of 16 32-bit values in place.
MOERT_AVX512 inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
  }
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 4; ++i) {
      t[8 * h + i] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + 4 + i], 0x88);
      t[8 * h + 4 + i] =
          _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + 4 + i], 0xdd);
    }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
  }
}

} // namespace moert::cpu::gemm

#endif // MOERT_CPU_GEMM_AVX512UTIL_H
