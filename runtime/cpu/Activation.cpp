//===- runtime/cpu/Activation.cpp - Activations over fp32 rows ------------===//

#include "runtime/cpu/Activation.h"

#include "runtime/common/Activation.h"
#include "runtime/common/Error.h"
#include "runtime/cpu/gemm/Isa.h"

#include <initializer_list>

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

// x / (1 + e^-x); the tail through a mask so every element, wherever it
// sits, gets the same arithmetic.
MOERT_AVX512 void siluAvx512(float *data, int64_t count) {
  for (int64_t i = 0; i < count; i += 16) {
    __mmask16 mask = gemm::laneMask(count - i);
    __m512 x = _mm512_maskz_loadu_ps(mask, data + i);
    __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
    _mm512_mask_storeu_ps(data + i, mask,
                          _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f),
                                                         e)));
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
