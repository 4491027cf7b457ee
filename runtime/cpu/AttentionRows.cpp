//===- runtime/cpu/AttentionRows.cpp - Attention's row loops --------------===//

#include "runtime/cpu/AttentionRows.h"

#include "runtime/cpu/gemm/Isa.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

using namespace moert::cpu;

namespace {

void scoresGeneric(const float *q, const float *rows, int64_t ld, int64_t dim,
                   int64_t count, float scale, float *out) {
  for (int64_t t = 0; t < count; ++t) {
    const float *row = rows + t * ld;
    float sum = 0.0f;
    for (int64_t d = 0; d < dim; ++d)
      sum += q[d] * row[d];
    out[t] = sum * scale;
  }
}

void weightedSumGeneric(float *o, const float *p, const float *rows,
                        int64_t ld, int64_t dim, int64_t count) {
  for (int64_t t = 0; t < count; ++t)
    for (int64_t d = 0; d < dim; ++d)
      o[d] += p[t] * rows[t * ld + d];
}

#if defined(__x86_64__)
#define MOERT_ROWS_AVX512 __attribute__((target("avx512f,avx512vl,fma")))

// The first `count` of 16 lanes.
MOERT_ROWS_AVX512 inline __mmask16 lanes(int64_t count) {
  return count >= 16  ? __mmask16(0xffff)
         : count <= 0 ? __mmask16(0)
                      : __mmask16((1u << count) - 1);
}

MOERT_ROWS_AVX512 void scoresAvx512(const float *q, const float *rows,
                                    int64_t ld, int64_t dim, int64_t count,
                                    float scale, float *out) {
  for (int64_t t = 0; t < count; ++t) {
    const float *row = rows + t * ld;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t d = 0; d < dim; d += 16) {
      __mmask16 mask = lanes(dim - d);
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, q + d),
                            _mm512_maskz_loadu_ps(mask, row + d), acc);
    }
    out[t] = _mm512_reduce_add_ps(acc) * scale;
  }
}

MOERT_ROWS_AVX512 void weightedSumAvx512(float *o, const float *p,
                                         const float *rows, int64_t ld,
                                         int64_t dim, int64_t count) {
  for (int64_t d0 = 0; d0 < dim; d0 += 64) {
    __m512 acc[4];
    __mmask16 mask[4];
    for (int u = 0; u < 4; ++u) {
      mask[u] = lanes(dim - d0 - 16 * u);
      acc[u] = _mm512_maskz_loadu_ps(mask[u], o + d0 + 16 * u);
    }
    for (int64_t t = 0; t < count; ++t) {
      __m512 weight = _mm512_set1_ps(p[t]);
      const float *row = rows + t * ld + d0;
      for (int u = 0; u < 4; ++u)
        acc[u] = _mm512_fmadd_ps(
            weight, _mm512_maskz_loadu_ps(mask[u], row + 16 * u), acc[u]);
    }
    for (int u = 0; u < 4; ++u)
      _mm512_mask_storeu_ps(o + d0 + 16 * u, mask[u], acc[u]);
  }
}
#endif

} // namespace

const AttentionRows &moert::cpu::attentionRows() {
  static const AttentionRows generic = {scoresGeneric, weightedSumGeneric};
#if defined(__x86_64__)
  static const AttentionRows avx512 = {scoresAvx512, weightedSumAvx512};
  if (gemm::isa() >= gemm::Isa::Avx512)
    return avx512;
#endif
  return generic;
}
