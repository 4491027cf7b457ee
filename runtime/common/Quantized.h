//===- runtime/common/Quantized.h - Quantized weight formats ----*- C++ -*-===//
//
// The decoding of moert_weight_format_t (moert.h), written once for the CPU
// backend, the CUDA kernels and the tests: FP8 e4m3 with f32 block scales,
// and MXFP4 (e2m1 pairs in a byte, e8m0 exponents per 32 values).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_QUANTIZED_H
#define MOERT_COMMON_QUANTIZED_H

#include "runtime/common/HostDevice.h"
#include "runtime/moert.h"

#include <cstdint>
#include <cstring>

namespace moert {

MOERT_HD inline float bitsAsFloat(uint32_t bits) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(bits);
#else
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
#endif
}

// float8_e4m3fn: exponent bias 7, subnormals m * 2^-9, no infinities, the
// all-ones magnitude is NaN (torch.float8_e4m3fn, OCP FP8 E4M3).
MOERT_HD inline float e4m3ToFloat(uint8_t value) {
  uint32_t sign = static_cast<uint32_t>(value & 0x80u) << 24;
  uint32_t exponent = (value >> 3) & 0xfu, mantissa = value & 0x7u;
  if (exponent == 0xfu && mantissa == 0x7u)
    return bitsAsFloat(0x7fc00000u | sign);
  if (exponent == 0) { // m * 2^-9 is exact in fp32
    float magnitude = static_cast<float>(mantissa) * 0.001953125f;
    return sign ? -magnitude : magnitude;
  }
  return bitsAsFloat(sign | ((exponent + 120u) << 23) | (mantissa << 20));
}

// e2m1 (one nibble): exponent bias 1, values 0, 0.5, 1, 1.5, 2, 3, 4, 6.
MOERT_HD inline float e2m1ToFloat(uint8_t nibble) {
  uint32_t exponent = (nibble >> 1) & 0x3u, mantissa = nibble & 0x1u;
  float magnitude =
      exponent == 0 ? 0.5f * static_cast<float>(mantissa)
                    : bitsAsFloat(((exponent + 126u) << 23) | (mantissa << 22));
  return nibble & 0x8u ? -magnitude : magnitude;
}

// e8m0: 2^(e - 127); 255 is NaN. 2^-127 is an fp32 subnormal, still exact.
MOERT_HD inline float e8m0ToFloat(uint8_t exponent) {
  if (exponent == 0xffu)
    return bitsAsFloat(0x7fc00000u);
  if (exponent == 0)
    return bitsAsFloat(0x00400000u);
  return bitsAsFloat(static_cast<uint32_t>(exponent) << 23);
}

// The block grid of a quantized weight [rows, cols].
struct QuantizedLayout {
  moert_weight_format_t format;
  int64_t rows, cols, blockRows, blockCols;

  MOERT_HD int64_t scaleRows() const {
    return (rows + blockRows - 1) / blockRows;
  }
  MOERT_HD int64_t scaleCols() const {
    return (cols + blockCols - 1) / blockCols;
  }
  // Elements of the data view (f8_e4m3, or u8 holding two e2m1 each).
  MOERT_HD int64_t dataElements() const {
    return format == MOERT_WEIGHTS_MXFP4 ? rows * cols / 2 : rows * cols;
  }
  MOERT_HD int64_t scaleElements() const { return scaleRows() * scaleCols(); }
  MOERT_HD moert_dtype_t dataType() const {
    return format == MOERT_WEIGHTS_MXFP4 ? MOERT_U8 : MOERT_F8_E4M3;
  }
  MOERT_HD moert_dtype_t scaleType() const {
    return format == MOERT_WEIGHTS_MXFP4 ? MOERT_U8 : MOERT_F32;
  }
  // Element (r, c), as a reference loop computes it.
  MOERT_HD float at(const void *data, const void *scales, int64_t r,
                    int64_t c) const {
    auto *bytes = static_cast<const uint8_t *>(data);
    int64_t block = (r / blockRows) * scaleCols() + c / blockCols;
    if (format == MOERT_WEIGHTS_MXFP4) {
      uint8_t pair = bytes[(r * cols + c) / 2];
      return e2m1ToFloat(c % 2 ? pair >> 4 : pair & 0xfu) *
             e8m0ToFloat(static_cast<const uint8_t *>(scales)[block]);
    }
    return e4m3ToFloat(bytes[r * cols + c]) *
           static_cast<const float *>(scales)[block];
  }
};

} // namespace moert

#endif // MOERT_COMMON_QUANTIZED_H
