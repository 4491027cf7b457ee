//===- runtime/cpu/AttentionRows.cpp - Attention's row loops --------------===//

#include "runtime/cpu/AttentionRows.h"

#include "runtime/cpu/gemm/Isa.h"

#include <cmath>

#if defined(__x86_64__)
#include "runtime/cpu/gemm/Avx512Util.h"
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

void weightedSumGeneric(float *o, const float *p, const float *rows, int64_t ld,
                        int64_t dim, int64_t count) {
  for (int64_t t = 0; t < count; ++t)
    for (int64_t d = 0; d < dim; ++d)
      o[d] += p[t] * rows[t * ld + d];
}

float softmaxTermsGeneric(float *row, int64_t count, float top) {
  float sum = 0.0f;
  for (int64_t t = 0; t < count; ++t)
    sum += row[t] = std::exp(row[t] - top);
  return sum;
}

#if defined(__x86_64__)
// The sum of v's lanes, by halves through memory: where GCC 12 inlines
// _mm512_reduce_add_ps or lane shuffles into softmaxTermsAvx512 it warns
// inside its own headers (GCC bug 105593). Once per row, so the cost of
// the round trip does not show.
MOERT_AVX512 inline float laneTotal(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  for (int width = 8; width > 0; width /= 2)
    for (int j = 0; j < width; ++j)
      lanes[j] += lanes[j + width];
  return lanes[0];
}

MOERT_AVX512 void scoresAvx512(const float *q, const float *rows, int64_t ld,
                               int64_t dim, int64_t count, float scale,
                               float *out) {
  for (int64_t t = 0; t < count; ++t) {
    const float *row = rows + t * ld;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t d = 0; d < dim; d += 16) {
      __mmask16 mask = gemm::laneMask(dim - d);
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, q + d),
                            _mm512_maskz_loadu_ps(mask, row + d), acc);
    }
    out[t] = _mm512_reduce_add_ps(acc) * scale;
  }
}

MOERT_AVX512 void weightedSumAvx512(float *o, const float *p, const float *rows,
                                    int64_t ld, int64_t dim, int64_t count) {
  for (int64_t d0 = 0; d0 < dim; d0 += 64) {
    __m512 acc[4];
    __mmask16 mask[4];
    for (int u = 0; u < 4; ++u) {
      mask[u] = gemm::laneMask(dim - d0 - 16 * u);
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

// exp16 (gemm/Avx512Util.h: about 1 ulp; below e^-100 it gives e^-100).
MOERT_AVX512 float softmaxTermsAvx512(float *row, int64_t count, float top) {
  __m512 sum = _mm512_setzero_ps(), shift = _mm512_set1_ps(top);
  for (int64_t t = 0; t < count; t += 16) {
    __mmask16 mask = gemm::laneMask(count - t);
    __m512 e =
        gemm::exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, row + t), shift));
    _mm512_mask_storeu_ps(row + t, mask, e);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(mask, e));
  }
  return laneTotal(sum);
}
#endif

} // namespace

const AttentionRows &moert::cpu::attentionRows() {
  static const AttentionRows generic = {scoresGeneric, weightedSumGeneric,
                                        softmaxTermsGeneric};
#if defined(__x86_64__)
  static const AttentionRows avx512 = {scoresAvx512, weightedSumAvx512,
                                       softmaxTermsAvx512};
  if (gemm::isa() >= gemm::Isa::Avx512)
    return avx512;
#endif
  return generic;
}
