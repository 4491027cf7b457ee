//===- runtime/cpu/gemm/Fp8Widening.h - FP8 widened in registers -*- C++ -*-===//
//
// What the kernels that read FP8 e4m3 block-scaled weights in place share
// (Avx512Bf16Fp8.cpp, and Amx.cpp's FP8 set): 64 weight bytes become 64
// bf16 in registers (every e4m3 value is exact in bf16), in the order the
// byte unpacks deliver them, and X is packed in that order. For the x86-64
// kernel files only, as Avx512Util.h.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_GEMM_FP8WIDENING_H
#define MOERT_CPU_GEMM_FP8WIDENING_H

#include "runtime/common/Convert.h"
#include "runtime/common/Quantized.h"
#include "runtime/cpu/gemm/Kernels.h"
#include "runtime/cpu/gemm/Quantized.h"

#include <immintrin.h>

#include <cstdint>

#define MOERT_FP8_TARGET                                                       \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c,"         \
                        "avx512bf16,avx512vbmi")))

namespace moert::cpu::gemm {

// Word p (< 32) of unpacklo(lo, hi) holds weight 16 (p / 8) + p % 8 of the
// 64, of unpackhi weight 16 (p / 8) + 8 + p % 8: a step's packed X holds
// its values in that order, the unpacklo half first. Runs of 8 stay whole,
// so a pair of neighbours stays a pair.
constexpr int64_t packedPosition(int64_t t) {
  int64_t lane = t / 16, within = t % 16;
  return (within < 8 ? 0 : 32) + 8 * lane + within % 8;
}

// bf16 of each e4m3 magnitude (NaN for 0x7f), as low and high bytes: the
// VPERMT2B tables, 64 entries a register.
struct E4m3Tables {
  alignas(64) uint8_t low[128], high[128];
  E4m3Tables() {
    for (int m = 0; m < 128; ++m) {
      uint16_t bits = floatToBf16(e4m3ToFloat(static_cast<uint8_t>(m)));
      low[m] = static_cast<uint8_t>(bits & 0xff);
      high[m] = static_cast<uint8_t>(bits >> 8);
    }
  }
};

inline const E4m3Tables &e4m3Tables() {
  static const E4m3Tables tables;
  return tables;
}

// The tables in registers: a kernel builds its own per call, where a
// shared one in memory was reloaded every scale block (a fifth more loads).
struct Widener {
  __m512i low0, low1, high0, high1, sign;
  MOERT_FP8_TARGET explicit Widener(const E4m3Tables &t)
      : low0(_mm512_load_si512(t.low)), low1(_mm512_load_si512(t.low + 64)),
        high0(_mm512_load_si512(t.high)), high1(_mm512_load_si512(t.high + 64)),
        sign(_mm512_set1_epi8(static_cast<char>(0x80))) {}
  // 64 e4m3 bytes as two registers of 32 bf16 (unpacklo, unpackhi order).
  MOERT_FP8_TARGET void widen(__m512i bytes, __m512i &first,
                              __m512i &second) const {
    __m512i low = _mm512_permutex2var_epi8(low0, bytes, low1);
    __m512i high = _mm512_permutex2var_epi8(high0, bytes, high1);
    high = _mm512_ternarylogic_epi32(high, bytes, sign, 0xf8); // high | b & s
    first = _mm512_unpacklo_epi8(low, high);
    second = _mm512_unpackhi_epi8(low, high);
  }
};

// Panel column c's weight row and its scales (null past the weights);
// blockSteps: 64-value steps per scale block.
struct ItemRow {
  const uint8_t *data = nullptr;
  const float *scales = nullptr;
  int64_t blockSteps = 0;
};

inline ItemRow itemRow(const Weights &w, int64_t n0, int64_t column) {
  bool second = w.paired() && column >= slabRows;
  int64_t row = n0 + (second ? column - slabRows : column);
  if (row >= w.n)
    return {};
  const Quantization &q = second ? *w.quantSecond : *w.quantFirst;
  auto *data = static_cast<const uint8_t *>(second ? w.second : w.first);
  return {data + row * w.k,
          static_cast<const float *>(q.scales) +
              (row / q.blockRows) * q.layout(w.n, w.k).scaleCols(),
          q.blockCols / fp8InPlaceStep};
}

} // namespace moert::cpu::gemm

#endif // MOERT_CPU_GEMM_FP8WIDENING_H
