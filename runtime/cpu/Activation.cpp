//===- runtime/cpu/Activation.cpp - Activations over fp32 rows ------------===//

#include "runtime/cpu/Activation.h"

#include "runtime/common/Activation.h"
#include "runtime/common/Error.h"
#include "runtime/cpu/gemm/Isa.h"
#include "runtime/cpu/gemm/StoreFloats.h"

#include <cstring>

#if defined(__x86_64__)
#include "runtime/cpu/gemm/Avx512Util.h"
#endif

using namespace moert;
using namespace moert::cpu;

namespace {

template <typename Fn> void applyInPlace(float *data, int64_t count, Fn fn) {
  for (int64_t i = 0; i < count; ++i)
    data[i] = fn(data[i]);
}

#if defined(__x86_64__)
// x / (1 + e^-x).
MOERT_AVX512 inline __m512 silu16(__m512 x) {
  __m512 e = gemm::exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// The tails through a mask so every element, wherever it sits, gets the
// same arithmetic.
MOERT_AVX512 void siluAvx512(float *data, int64_t count) {
  for (int64_t i = 0; i < count; i += 16) {
    __mmask16 mask = gemm::laneMask(count - i);
    _mm512_mask_storeu_ps(data + i, mask,
                          silu16(_mm512_maskz_loadu_ps(mask, data + i)));
  }
}

MOERT_AVX512 void gatedSiluAvx512(const float *first, const float *second,
                                  int64_t ld, int64_t outer, int64_t inner,
                                  bool bf16, float *out) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; i += 16) {
      __mmask16 mask = gemm::laneMask(inner - i);
      __m512 v =
          _mm512_mul_ps(silu16(_mm512_maskz_loadu_ps(mask, first + o * ld + i)),
                        _mm512_maskz_loadu_ps(mask, second + o * ld + i));
      _mm512_mask_storeu_ps(out + o * inner + i, mask,
                            bf16 ? gemm::bf16Values(v) : v);
    }
}
#endif

} // namespace

void moert::cpu::activateInPlace(moert_activation_t activation, float *data,
                                 int64_t count) {
  // The switch is outside the loops: each case's loop inlines one formula.
  switch (activation) {
  case MOERT_ACT_SILU:
#if defined(__x86_64__)
    if (gemm::isa() >= gemm::Isa::Avx512)
      return siluAvx512(data, count);
#endif
    return applyInPlace(data, count,
                        [](float x) { return activate(MOERT_ACT_SILU, x); });
  case MOERT_ACT_GELU:
    return applyInPlace(data, count,
                        [](float x) { return activate(MOERT_ACT_GELU, x); });
  case MOERT_ACT_GELU_TANH:
    return applyInPlace(
        data, count, [](float x) { return activate(MOERT_ACT_GELU_TANH, x); });
  case MOERT_ACT_RELU:
    return applyInPlace(data, count,
                        [](float x) { return activate(MOERT_ACT_RELU, x); });
  case MOERT_ACT_SWIGLU_CLAMPED:
    break;
  }
  require(false, "activation ", static_cast<int>(activation),
          " is not unary (callers check isActivation)");
}

void moert::cpu::gatedHidden(moert_activation_t activation, const float *first,
                             const float *second, int64_t ld, int64_t outer,
                             int64_t inner, bool bf16, float *out) {
#if defined(__x86_64__)
  if (activation == MOERT_ACT_SILU && gemm::isa() >= gemm::Isa::Avx512)
    return gatedSiluAvx512(first, second, ld, outer, inner, bf16, out);
#endif
  if (out != first)
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(out + o * inner, first + o * ld, inner * sizeof(float));
  activateInPlace(activation, out, outer * inner);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i)
      out[o * inner + i] *= second[o * ld + i];
  if (bf16)
    gemm::roundToBf16InPlace(out, outer * inner);
}
