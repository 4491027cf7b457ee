//===- runtime/common/Convert.h - Storage dtype conversions -----*- C++ -*-===//
//
// f16 and bf16 are storage types only: values are widened to fp32 for math
// and rounded back (round-to-nearest-even) when stored.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_CONVERT_H
#define MOERT_COMMON_CONVERT_H

#include "runtime/moert.h"

#include <cstdint>
#include <cstring>

namespace moert {

inline uint32_t floatBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

inline float bitsToFloat(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

inline float bf16ToFloat(uint16_t value) {
  return bitsToFloat(static_cast<uint32_t>(value) << 16);
}

inline uint16_t floatToBf16(float value) {
  uint32_t bits = floatBits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) // NaN: keep it a (quiet) NaN
    return static_cast<uint16_t>((bits >> 16) | 0x40u);
  uint32_t roundingBias = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + roundingBias) >> 16);
}

float f16ToFloat(uint16_t value);
uint16_t floatToF16(float value);

// Element-wise conversions between any two dtypes (ints included: floats are
// truncated toward zero when stored into an integer dtype).
void convertToFloat(const void *src, moert_dtype_t srcType, float *dst,
                    int64_t count);
void convertFromFloat(const float *src, void *dst, moert_dtype_t dstType,
                      int64_t count);
void convert(const void *src, moert_dtype_t srcType, void *dst,
             moert_dtype_t dstType, int64_t count);

// Bytes of one element (moert_dtype_size); 0 for an unknown dtype.
size_t dtypeSize(moert_dtype_t dtype);
bool isFloatType(moert_dtype_t dtype);
const char *dtypeName(moert_dtype_t dtype);

} // namespace moert

#endif // MOERT_COMMON_CONVERT_H
