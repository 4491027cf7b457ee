//===- runtime/cpu/gemm/StoreFloats.cpp - fp32 rounded for storage --------===//

#include "runtime/cpu/gemm/StoreFloats.h"

#include "runtime/common/Convert.h"
#include "runtime/cpu/gemm/Isa.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__)
#include "runtime/cpu/gemm/Avx512Util.h"
#define MOERT_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

using namespace moert;
using namespace moert::cpu::gemm;

void moert::cpu::gemm::floatsToBf16Generic(const float *src, uint16_t *dst,
                                           int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    dst[i] = floatToBf16(src[i]);
}

#if defined(__x86_64__)
// floatToBf16 on 8 lanes of fp32 bits; the results in the low 16 bits.
MOERT_AVX2 static inline __m256i bf16Bits8(__m256i bits) {
  __m256i magnitude = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff));
  // Signed compare is safe: both sides are below 2^31.
  __m256i nan = _mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x7f800000));
  __m256i odd =
      _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  __m256i rounded = _mm256_srli_epi32(
      _mm256_add_epi32(bits, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd)),
      16);
  __m256i quiet =
      _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
  return _mm256_blendv_epi8(rounded, quiet, nan);
}

MOERT_AVX2 void moert::cpu::gemm::floatsToBf16Avx2(const float *src,
                                                   uint16_t *dst,
                                                   int64_t count) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    __m256i v = bf16Bits8(
        _mm256_loadu_si256(reinterpret_cast<const __m256i *>(src + i)));
    // Every lane is <= 0xffff: the unsigned saturating pack keeps it.
    __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(v),
                                      _mm256_extracti128_si256(v, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i *>(dst + i), packed);
  }
  floatsToBf16Generic(src + i, dst + i, count - i);
}

MOERT_AVX512 void moert::cpu::gemm::floatsToBf16Avx512(const float *src,
                                                       uint16_t *dst,
                                                       int64_t count) {
  for (int64_t i = 0; i < count; i += 16) {
    __mmask16 lanes = laneMask(count - i);
    __m512i v = bf16Lanes(_mm512_maskz_loadu_epi32(lanes, src + i));
    _mm256_mask_storeu_epi16(dst + i, lanes, _mm512_cvtepi32_epi16(v));
  }
}

MOERT_AVX512 static void roundToBf16Avx512(float *values, int64_t count) {
  for (int64_t i = 0; i < count; i += 16) {
    __mmask16 lanes = laneMask(count - i);
    _mm512_mask_storeu_ps(values + i, lanes,
                          bf16Values(_mm512_maskz_loadu_ps(lanes, values + i)));
  }
}
#endif

void moert::cpu::gemm::storeFloats(const float *src, void *dst,
                                   moert_dtype_t type, int64_t count) {
  if (type != MOERT_BF16)
    return convertFromFloat(src, dst, type, count);
  auto *out = static_cast<uint16_t *>(dst);
#if defined(__x86_64__)
  if (isa() >= Isa::Avx512)
    return floatsToBf16Avx512(src, out, count);
  if (isa() >= Isa::Avx2)
    return floatsToBf16Avx2(src, out, count);
#endif
  floatsToBf16Generic(src, out, count);
}

void moert::cpu::gemm::roundToBf16InPlace(float *values, int64_t count) {
#if defined(__x86_64__)
  if (isa() >= Isa::Avx512)
    return roundToBf16Avx512(values, count);
#endif
  constexpr int64_t chunk = 512;
  uint16_t bits[chunk];
  for (int64_t begin = 0; begin < count; begin += chunk) {
    int64_t n = std::min(chunk, count - begin);
    storeFloats(values + begin, bits, MOERT_BF16, n);
    for (int64_t i = 0; i < n; ++i) {
      uint32_t widened = uint32_t(bits[i]) << 16;
      std::memcpy(values + begin + i, &widened, sizeof(float));
    }
  }
}
