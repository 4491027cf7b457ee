//===- runtime/cpu/AttentionRows.cpp - Attention's row loops --------------===//

#include "runtime/cpu/AttentionRows.h"

#include "runtime/common/Convert.h"
#include "runtime/cpu/gemm/Isa.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#include "runtime/cpu/gemm/Avx512Util.h"
#endif

using namespace moert;
using namespace moert::cpu;

namespace {

// Row t of `rows` (ld elements apart) as fp32 in `to`.
const float *rowAsFloat(const void *rows, moert_dtype_t type, int64_t ld,
                        int64_t t, int64_t dim, std::vector<float> &to) {
  const char *row =
      static_cast<const char *>(rows) + t * ld * int64_t(dtypeSize(type));
  if (type == MOERT_F32)
    return reinterpret_cast<const float *>(row);
  to.resize(dim);
  convertToFloat(row, type, to.data(), dim);
  return to.data();
}

void scoresGeneric(const float *q, const void *rows, moert_dtype_t type,
                   int64_t ld, int64_t dim, int64_t count, float scale,
                   float *out) {
  std::vector<float> widened;
  for (int64_t t = 0; t < count; ++t) {
    const float *row = rowAsFloat(rows, type, ld, t, dim, widened);
    float sum = 0.0f;
    for (int64_t d = 0; d < dim; ++d)
      sum += q[d] * row[d];
    out[t] = sum * scale;
  }
}

void weightedSumGeneric(float *o, const float *p, const void *rows,
                        moert_dtype_t type, int64_t ld, int64_t dim,
                        int64_t count) {
  std::vector<float> widened;
  for (int64_t t = 0; t < count; ++t) {
    const float *row = rowAsFloat(rows, type, ld, t, dim, widened);
    for (int64_t d = 0; d < dim; ++d)
      o[d] += p[t] * row[d];
  }
}

void transposeGeneric(const void *rows, moert_dtype_t type, int64_t ld,
                      int64_t dim, int64_t count, int64_t width, float *panel) {
  std::vector<float> widened;
  std::fill(panel, panel + dim * width, 0.0f);
  for (int64_t t = 0; t < count; ++t) {
    const float *row = rowAsFloat(rows, type, ld, t, dim, widened);
    for (int64_t d = 0; d < dim; ++d)
      panel[d * width + t] = row[d];
  }
}

// The sums of scoresGeneric, in its order along d.
void panelScoresGeneric(const float *q, const float *panel, int64_t width,
                        int64_t dim, int64_t count, float scale, float *out) {
  for (int64_t t = 0; t < count; ++t) {
    float sum = 0.0f;
    for (int64_t d = 0; d < dim; ++d)
      sum += q[d] * panel[d * width + t];
    out[t] = sum * scale;
  }
}

float softmaxTermsGeneric(float *row, int64_t count, float top) {
  float sum = 0.0f;
  for (int64_t t = 0; t < count; ++t)
    sum += row[t] = std::exp(row[t] - top);
  return sum;
}

#if defined(__x86_64__)
using gemm::laneMask;
using gemm::loadWidenedMasked;

// Calls f with the rows' dtype as a compile-time constant (w.value), for
// the loops templated on it.
template <typename F> void byRowType(moert_dtype_t type, F f) {
  if (type == MOERT_F32)
    f(std::integral_constant<moert_dtype_t, MOERT_F32>{});
  else if (type == MOERT_F16)
    f(std::integral_constant<moert_dtype_t, MOERT_F16>{});
  else
    f(std::integral_constant<moert_dtype_t, MOERT_BF16>{});
}

template <moert_dtype_t W>
MOERT_AVX512 void scoresOf(const float *q, const char *rows, int64_t ld,
                           int64_t dim, int64_t count, float scale,
                           float *out) {
  constexpr int64_t e = W == MOERT_F32 ? 4 : 2;
  for (int64_t t = 0; t < count; ++t) {
    const char *row = rows + t * ld * e;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t d = 0; d < dim; d += 16) {
      __mmask16 mask = laneMask(dim - d);
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, q + d),
                            loadWidenedMasked<W>(row + d * e, mask), acc);
    }
    out[t] = _mm512_reduce_add_ps(acc) * scale;
  }
}

template <moert_dtype_t W>
MOERT_AVX512 void weightedSumOf(float *o, const float *p, const char *rows,
                                int64_t ld, int64_t dim, int64_t count) {
  constexpr int64_t e = W == MOERT_F32 ? 4 : 2;
  for (int64_t d0 = 0; d0 < dim; d0 += 64) {
    __m512 acc[4];
    __mmask16 mask[4];
    for (int u = 0; u < 4; ++u) {
      mask[u] = laneMask(dim - d0 - 16 * u);
      acc[u] = _mm512_maskz_loadu_ps(mask[u], o + d0 + 16 * u);
    }
    for (int64_t t = 0; t < count; ++t) {
      __m512 weight = _mm512_set1_ps(p[t]);
      const char *row = rows + (t * ld + d0) * e;
      for (int u = 0; u < 4; ++u)
        acc[u] = _mm512_fmadd_ps(
            weight, loadWidenedMasked<W>(row + 16 * u * e, mask[u]), acc[u]);
    }
    for (int u = 0; u < 4; ++u)
      _mm512_mask_storeu_ps(o + d0 + 16 * u, mask[u], acc[u]);
  }
}

template <moert_dtype_t W>
MOERT_AVX512 void transposeOf(const char *rows, int64_t ld, int64_t dim,
                              int64_t count, int64_t width, float *panel) {
  constexpr int64_t e = W == MOERT_F32 ? 4 : 2;
  for (int64_t t0 = 0; t0 < width; t0 += 16)
    for (int64_t d0 = 0; d0 < dim; d0 += 16) {
      __mmask16 mask = laneMask(dim - d0);
      __m512 v[16];
      for (int64_t j = 0; j < 16; ++j)
        v[j] = t0 + j < count
                   ? loadWidenedMasked<W>(rows + ((t0 + j) * ld + d0) * e, mask)
                   : _mm512_setzero_ps();
      gemm::transpose16(v);
      for (int64_t i = 0; i < 16 && d0 + i < dim; ++i)
        _mm512_storeu_ps(panel + (d0 + i) * width + t0, v[i]);
    }
}

void transposeAvx512(const void *rows, moert_dtype_t type, int64_t ld,
                     int64_t dim, int64_t count, int64_t width, float *panel) {
  byRowType(type, [&](auto w) {
    transposeOf<w.value>(static_cast<const char *>(rows), ld, dim, count, width,
                         panel);
  });
}

// 16 keys a vector: acc[c] sums d = c (mod 16) in d order, as lane c of
// scoresOf's accumulator does (a masked-off lane adds 0 * 0), then the
// classes meet in _mm512_reduce_add_ps's tree: halves, quarters, then
// (0 + 2) + (1 + 3).
MOERT_AVX512 void panelScoresAvx512(const float *q, const float *panel,
                                    int64_t width, int64_t dim, int64_t count,
                                    float scale, float *out) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t t = 0; t < count; t += 16) {
    __m512 acc[16];
    for (int c = 0; c < 16; ++c)
      acc[c] = zero;
    for (int64_t d0 = 0; d0 < dim; d0 += 16)
      for (int c = 0; c < 16; ++c) {
        int64_t d = d0 + c;
        acc[c] = d < dim
                     ? _mm512_fmadd_ps(_mm512_set1_ps(q[d]),
                                       _mm512_loadu_ps(panel + d * width + t),
                                       acc[c])
                     : _mm512_add_ps(acc[c], zero);
      }
    for (int c = 0; c < 8; ++c)
      acc[c] = _mm512_add_ps(acc[c + 8], acc[c]);
    for (int c = 0; c < 4; ++c)
      acc[c] = _mm512_add_ps(acc[c + 4], acc[c]);
    __m512 total = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]),
                                 _mm512_add_ps(acc[1], acc[3]));
    _mm512_mask_storeu_ps(out + t, laneMask(count - t),
                          _mm512_mul_ps(total, _mm512_set1_ps(scale)));
  }
}

void scoresAvx512(const float *q, const void *rows, moert_dtype_t type,
                  int64_t ld, int64_t dim, int64_t count, float scale,
                  float *out) {
  byRowType(type, [&](auto w) {
    scoresOf<w.value>(q, static_cast<const char *>(rows), ld, dim, count, scale,
                      out);
  });
}

void weightedSumAvx512(float *o, const float *p, const void *rows,
                       moert_dtype_t type, int64_t ld, int64_t dim,
                       int64_t count) {
  byRowType(type, [&](auto w) {
    weightedSumOf<w.value>(o, p, static_cast<const char *>(rows), ld, dim,
                           count);
  });
}

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

// exp16 (gemm/Avx512Util.h: about 1 ulp; below e^-100 it gives e^-100).
MOERT_AVX512 float softmaxTermsAvx512(float *row, int64_t count, float top) {
  __m512 sum = _mm512_setzero_ps(), shift = _mm512_set1_ps(top);
  for (int64_t t = 0; t < count; t += 16) {
    __mmask16 mask = laneMask(count - t);
    __m512 e = gemm::exp16(
        _mm512_sub_ps(_mm512_maskz_loadu_ps(mask, row + t), shift));
    _mm512_mask_storeu_ps(row + t, mask, e);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(mask, e));
  }
  return laneTotal(sum);
}
#endif

} // namespace

const AttentionRows &moert::cpu::attentionRows() {
  static const AttentionRows generic = {scoresGeneric, weightedSumGeneric,
                                        softmaxTermsGeneric, transposeGeneric,
                                        panelScoresGeneric};
#if defined(__x86_64__)
  static const AttentionRows avx512 = {scoresAvx512, weightedSumAvx512,
                                       softmaxTermsAvx512, transposeAvx512,
                                       panelScoresAvx512};
  if (gemm::isa() >= gemm::Isa::Avx512)
    return avx512;
#endif
  return generic;
}
