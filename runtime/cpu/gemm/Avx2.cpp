//===- runtime/cpu/gemm/Avx2.cpp - AVX2/FMA kernels -----------------------===//
//
// For x86-64 CPUs without AVX-512: the row-dot kernel (DotKernel.h) on 8
// lanes, f16 weights widened by F16C, bf16 by a shift.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/gemm/Kernels.h"

#include <immintrin.h>

#include <cstring>

#define MOERT_AVX2 __attribute__((target("avx2,fma,f16c")))
#define MOERT_DOT_TARGET MOERT_AVX2
#include "runtime/cpu/gemm/DotKernel.h"

using namespace moert;
using namespace moert::cpu::gemm;

namespace {

struct Avx2Vector {
  using Reg = __m256;
  static constexpr int64_t lanes = 8;
  MOERT_AVX2 static Reg zero() { return _mm256_setzero_ps(); }
  MOERT_AVX2 static Reg fmadd(Reg a, Reg b, Reg acc) {
    return _mm256_fmadd_ps(a, b, acc);
  }
  MOERT_AVX2 static float sum(Reg v) {
    __m128 s =
        _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  MOERT_AVX2 static void store(float *to, Reg v) { _mm256_storeu_ps(to, v); }
  MOERT_AVX2 static Reg loadX(const float *x, int64_t count) {
    if (count >= lanes)
      return _mm256_loadu_ps(x);
    // AVX2 has no masked 16-bit loads: the tail goes through a zeroed copy.
    alignas(32) float tail[lanes] = {};
    std::memcpy(tail, x, count * sizeof(float));
    return _mm256_load_ps(tail);
  }
  template <moert_dtype_t W>
  MOERT_AVX2 static Reg loadW(const char *row, int64_t count) {
    constexpr size_t e = W == MOERT_F32 ? 4 : 2;
    alignas(32) char tail[lanes * e] = {};
    if (count < lanes) {
      std::memcpy(tail, row, count * e);
      row = tail;
    }
    if constexpr (W == MOERT_F32)
      return _mm256_loadu_ps(reinterpret_cast<const float *>(row));
    __m128i half = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row));
    if constexpr (W == MOERT_F16)
      return _mm256_cvtph_ps(half);
    else
      return _mm256_castsi256_ps(
          _mm256_slli_epi32(_mm256_cvtepu16_epi32(half), 16));
  }
};

} // namespace

const KernelSet &moert::cpu::gemm::avx2Kernels(moert_dtype_t weights) {
  static const KernelSet f32 = dot::kernels<Avx2Vector, MOERT_F32>(),
                         f16 = dot::kernels<Avx2Vector, MOERT_F16>(),
                         bf16 = dot::kernels<Avx2Vector, MOERT_BF16>();
  return weights == MOERT_F32 ? f32 : weights == MOERT_F16 ? f16 : bf16;
}
