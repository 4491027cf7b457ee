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
  using XReg = Reg;
  using XElement = float;
  // 16 registers: one row's 8 accumulators (more spill to the stack).
  static constexpr int64_t lanes = 8, blockRows = 1;
  MOERT_AVX2 static Reg zero() { return _mm256_setzero_ps(); }
  MOERT_AVX2 static Reg fmadd(Reg a, Reg b, Reg acc) {
    return _mm256_fmadd_ps(a, b, acc);
  }
  MOERT_AVX2 static void sums(const Reg *a, float *out) {
    // Pairwise horizontal adds, then the two 128-bit halves.
    Reg s01 = _mm256_hadd_ps(a[0], a[1]), s23 = _mm256_hadd_ps(a[2], a[3]);
    Reg s45 = _mm256_hadd_ps(a[4], a[5]), s67 = _mm256_hadd_ps(a[6], a[7]);
    Reg lo = _mm256_hadd_ps(s01, s23), hi = _mm256_hadd_ps(s45, s67);
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20),
                                        _mm256_permute2f128_ps(lo, hi, 0x31)));
  }
  MOERT_AVX2 static void store(float *to, Reg v) { _mm256_storeu_ps(to, v); }
  static int64_t xOffset(int64_t k0) { return k0; }
  MOERT_AVX2 static Reg loadX(const float *row, int64_t i, int64_t count) {
    const float *x = row + i;
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
