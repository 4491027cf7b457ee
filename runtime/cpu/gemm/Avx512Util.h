//===- runtime/cpu/gemm/Avx512Util.h - Shared AVX-512 helpers ---*- C++ -*-===//
//
// For the x86-64 kernel files only. Functions carry their ISA in a target
// attribute (the rest of the runtime builds for baseline x86-64) and run
// only after gemm::isa() found the ISA.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_GEMM_AVX512UTIL_H
#define MOERT_CPU_GEMM_AVX512UTIL_H

#include "runtime/common/Convert.h"
#include "runtime/moert.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>

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

// 16 values of type W (f32, f16 or bf16) as fp32 (lanes outside `mask`
// are 0, unread).
template <moert_dtype_t W>
MOERT_AVX512 inline __m512 loadWidenedMasked(const char *row, __mmask16 mask) {
  if constexpr (W == MOERT_F32) {
    return _mm512_maskz_loadu_ps(mask, row);
  } else {
    __m256i half = _mm256_maskz_loadu_epi16(mask, row);
    if constexpr (W == MOERT_F16)
      return _mm512_cvtph_ps(half);
    else
      return _mm512_castsi512_ps(
          _mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
  }
}

// The same for a type known at run time.
MOERT_AVX512 inline __m512 loadValues(const char *at, moert_dtype_t type,
                                      __mmask16 mask) {
  return type == MOERT_F32   ? loadWidenedMasked<MOERT_F32>(at, mask)
         : type == MOERT_F16 ? loadWidenedMasked<MOERT_F16>(at, mask)
                             : loadWidenedMasked<MOERT_BF16>(at, mask);
}

// Transposes 16 rows of 16 32-bit values in place. The zero-masked forms
// with every lane, as in sumEight: inlined into the AMX kernels, GCC 12
// warns that the plain forms' undefined pass-through is uninitialized; both
// compile to the same unmasked instructions.
MOERT_AVX512 inline void transpose16(__m512 r[16]) {
  constexpr __mmask16 all = 0xffff;
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_maskz_unpacklo_ps(all, r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_ps(all, r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_maskz_shuffle_ps(all, t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_maskz_shuffle_ps(all, t[4 * i], t[4 * i + 2], 0xee);
    r[4 * i + 2] =
        _mm512_maskz_shuffle_ps(all, t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] =
        _mm512_maskz_shuffle_ps(all, t[4 * i + 1], t[4 * i + 3], 0xee);
  }
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 4; ++i) {
      t[8 * h + i] =
          _mm512_maskz_shuffle_f32x4(all, r[8 * h + i], r[8 * h + 4 + i], 0x88);
      t[8 * h + 4 + i] =
          _mm512_maskz_shuffle_f32x4(all, r[8 * h + i], r[8 * h + 4 + i], 0xdd);
    }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_maskz_shuffle_f32x4(all, t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_maskz_shuffle_f32x4(all, t[i], t[8 + i], 0xdd);
  }
}

// floatToBf16 (round to nearest even, NaN kept quiet, denormals kept) on 16
// lanes of fp32 bits; the results in the low 16 bits of each lane.
MOERT_AVX512 inline __m512i bf16Lanes(__m512i bits) {
  __mmask16 nan = _mm512_cmpgt_epu32_mask(
      _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff)),
      _mm512_set1_epi32(0x7f800000));
  __m512i odd =
      _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  __m512i rounded = _mm512_srli_epi32(
      _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd)),
      16);
  __m512i quiet =
      _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  return _mm512_mask_blend_epi32(nan, rounded, quiet);
}

// 16 fp32 values rounded to bf16 and kept in fp32.
MOERT_AVX512 inline __m512 bf16Values(__m512 v) {
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(bf16Lanes(_mm512_castps_si512(v)), 16));
}

// Columns [k0, k0 + cols) of a row (which starts at column k0), packed in
// steps of `step` values: step j holds them at lanes [a, b) (lanes), and
// at() gives where lane 0 of the row's step j is read. A step that starts
// before k0 is staged (its lanes [a, b) copied into `staged`, step values
// of up to 4 bytes): a pointer before the row would be out of its object.
struct PackSteps {
  int64_t k0, cols, step;
  size_t element;
  void lanes(int64_t j, int64_t &a, int64_t &b) const {
    a = std::max<int64_t>(k0 - j * step, 0);
    b = std::min<int64_t>(k0 + cols - j * step, step);
  }
  const char *at(const char *row, int64_t j, int64_t a, int64_t b,
                 char *staged) const {
    if (a == 0)
      return row + (j * step - k0) * element;
    std::memcpy(staged + a * element, row, (b - a) * element);
    return staged;
  }
};

// The values of step `at` (k = 32 j) inside `mask` as 32 bf16 (floatToBf16's
// rounding), and in lo what they miss; outside the mask 0, unread.
MOERT_AVX512 inline void loadStep(const char *at, moert_dtype_t type,
                                  __mmask32 mask, bool split, __m512i &hi,
                                  __m512i &lo) {
  lo = _mm512_setzero_si512();
  if (type == MOERT_BF16) {
    hi = _mm512_maskz_loadu_epi16(mask, at);
    return;
  }
  __m256i high[2] = {}, low[2] = {};
  for (int h = 0; h < 2; ++h) {
    auto half = static_cast<__mmask16>(mask >> (16 * h));
    if (!half)
      continue;
    __m512 v = loadValues(at + 16 * h * dtypeSize(type), type, half);
    __m512i bits = bf16Lanes(_mm512_castps_si512(v));
    high[h] = _mm512_cvtepi32_epi16(bits);
    if (!split)
      continue;
    __m512 rest =
        _mm512_sub_ps(v, _mm512_castsi512_ps(_mm512_slli_epi32(bits, 16)));
    low[h] = _mm512_cvtepi32_epi16(bf16Lanes(_mm512_castps_si512(rest)));
  }
  hi = _mm512_inserti64x4(_mm512_castsi256_si512(high[0]), high[1], 1);
  if (split)
    lo = _mm512_inserti64x4(_mm512_castsi256_si512(low[0]), low[1], 1);
}

// e^y: y = n ln2 + r with |r| <= ln2 / 2, e^r by the Cephes expf polynomial
// (about 1 ulp), times 2^n by VSCALEFPS (which also gives inf and 0 past
// the range).
MOERT_AVX512 inline __m512 exp16(__m512 y) {
  y = _mm512_max_ps(_mm512_min_ps(y, _mm512_set1_ps(100.0f)),
                    _mm512_set1_ps(-100.0f));
  __m512 n = _mm512_roundscale_ps(
      _mm512_mul_ps(y, _mm512_set1_ps(1.44269504088896341f)),
      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), y);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  for (float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f,
                  1.6666665459e-1f, 5.0000001201e-1f})
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r,
                      _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

} // namespace moert::cpu::gemm

#endif // MOERT_CPU_GEMM_AVX512UTIL_H
