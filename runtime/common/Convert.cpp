//===- runtime/common/Convert.cpp - Storage dtype conversions -------------===//

#include "runtime/common/Convert.h"

#include "runtime/common/Error.h"
#include "runtime/common/Quantized.h"

#include <algorithm>
#include <cmath>

using namespace moert;

namespace {
// memmove's pointers must not be null, even for 0 bytes, and an empty
// buffer's may be (an empty std::vector's data()).
void moveElements(void *dst, const void *src, int64_t count, size_t size) {
  if (count > 0)
    std::memmove(dst, src, count * size);
}
} // namespace

float moert::f16ToFloat(uint16_t value) {
  uint32_t sign = static_cast<uint32_t>(value & 0x8000u) << 16;
  uint32_t exponent = (value >> 10) & 0x1fu;
  uint32_t mantissa = value & 0x3ffu;
  if (exponent == 0) {
    float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return bitsToFloat(floatBits(magnitude) | sign);
  }
  if (exponent == 31)
    return bitsToFloat(sign | 0x7f800000u | (mantissa << 13));
  return bitsToFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

uint16_t moert::floatToF16(float value) {
  uint32_t bits = floatBits(value);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) // inf or NaN (NaN stays quiet NaN)
    return sign | 0x7c00u |
           (magnitude > 0x7f800000u ? 0x200u | ((magnitude >> 13) & 0x3ffu)
                                    : 0u);
  if (magnitude >= 0x477ff000u) // >= 65520 rounds to infinity
    return sign | 0x7c00u;
  if (magnitude < 0x38800000u) { // below 2^-14: subnormal half (or zero)
    // Scaling by 2^24 is exact; nearbyint rounds half to even.
    float scaled = std::fabs(value) * 16777216.0f;
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  uint32_t roundingBias = 0xfffu + ((magnitude >> 13) & 1u);
  uint32_t rebased = magnitude + roundingBias - (112u << 23);
  return sign | static_cast<uint16_t>(rebased >> 13);
}

bool moert::isFloatType(moert_dtype_t dtype) {
  return dtype == MOERT_F32 || dtype == MOERT_F16 || dtype == MOERT_BF16;
}

const char *moert::dtypeName(moert_dtype_t dtype) {
  switch (dtype) {
  case MOERT_F32:
    return "f32";
  case MOERT_F16:
    return "f16";
  case MOERT_BF16:
    return "bf16";
  case MOERT_I32:
    return "i32";
  case MOERT_I64:
    return "i64";
  case MOERT_F8_E4M3:
    return "f8_e4m3";
  case MOERT_U8:
    return "u8";
  }
  return "unknown";
}

void moert::convertToFloat(const void *src, moert_dtype_t srcType, float *dst,
                           int64_t count) {
  switch (srcType) {
  case MOERT_F32:
    moveElements(dst, src, count, sizeof(float));
    return;
  case MOERT_BF16: {
    auto *in = static_cast<const uint16_t *>(src);
    for (int64_t i = 0; i < count; ++i)
      dst[i] = bf16ToFloat(in[i]);
    return;
  }
  case MOERT_F16: {
    auto *in = static_cast<const uint16_t *>(src);
    for (int64_t i = 0; i < count; ++i)
      dst[i] = f16ToFloat(in[i]);
    return;
  }
  case MOERT_I32: {
    auto *in = static_cast<const int32_t *>(src);
    for (int64_t i = 0; i < count; ++i)
      dst[i] = static_cast<float>(in[i]);
    return;
  }
  case MOERT_I64: {
    auto *in = static_cast<const int64_t *>(src);
    for (int64_t i = 0; i < count; ++i)
      dst[i] = static_cast<float>(in[i]);
    return;
  }
  case MOERT_F8_E4M3: {
    auto *in = static_cast<const uint8_t *>(src);
    for (int64_t i = 0; i < count; ++i)
      dst[i] = e4m3ToFloat(in[i]);
    return;
  }
  case MOERT_U8: {
    auto *in = static_cast<const uint8_t *>(src);
    for (int64_t i = 0; i < count; ++i)
      dst[i] = static_cast<float>(in[i]);
    return;
  }
  }
  fail(MOERT_INVALID_ARGUMENT, "unknown dtype ", static_cast<int>(srcType));
}

void moert::convertFromFloat(const float *src, void *dst, moert_dtype_t dstType,
                             int64_t count) {
  switch (dstType) {
  case MOERT_F32:
    moveElements(dst, src, count, sizeof(float));
    return;
  case MOERT_BF16: {
    auto *out = static_cast<uint16_t *>(dst);
    for (int64_t i = 0; i < count; ++i)
      out[i] = floatToBf16(src[i]);
    return;
  }
  case MOERT_F16: {
    auto *out = static_cast<uint16_t *>(dst);
    for (int64_t i = 0; i < count; ++i)
      out[i] = floatToF16(src[i]);
    return;
  }
  case MOERT_I32: {
    auto *out = static_cast<int32_t *>(dst);
    for (int64_t i = 0; i < count; ++i)
      out[i] = static_cast<int32_t>(src[i]);
    return;
  }
  case MOERT_I64: {
    auto *out = static_cast<int64_t *>(dst);
    for (int64_t i = 0; i < count; ++i)
      out[i] = static_cast<int64_t>(src[i]);
    return;
  }
  case MOERT_U8: {
    auto *out = static_cast<uint8_t *>(dst);
    for (int64_t i = 0; i < count; ++i)
      out[i] = static_cast<uint8_t>(std::clamp(src[i], 0.0f, 255.0f));
    return;
  }
  case MOERT_F8_E4M3:
    // Quantizing needs the checkpoint's scales: weights arrive quantized.
    fail(MOERT_UNSUPPORTED, "values are not rounded to f8_e4m3: quantized "
                            "weights load as stored");
  }
  fail(MOERT_INVALID_ARGUMENT, "unknown dtype ", static_cast<int>(dstType));
}

void moert::convert(const void *src, moert_dtype_t srcType, void *dst,
                    moert_dtype_t dstType, int64_t count) {
  if (srcType == dstType) {
    moveElements(dst, src, count, dtypeSize(srcType));
    return;
  }
  // Integer to integer must not go through float (i64 > 2^24 would round).
  auto isInteger = [](moert_dtype_t t) {
    return t == MOERT_I32 || t == MOERT_I64;
  };
  if (isInteger(srcType) && isInteger(dstType)) {
    for (int64_t i = 0; i < count; ++i) {
      int64_t v = srcType == MOERT_I32 ? static_cast<const int32_t *>(src)[i]
                                       : static_cast<const int64_t *>(src)[i];
      if (dstType == MOERT_I32)
        static_cast<int32_t *>(dst)[i] = static_cast<int32_t>(v);
      else
        static_cast<int64_t *>(dst)[i] = v;
    }
    return;
  }
  // Chunked through fp32 so that large tensors need little scratch.
  constexpr int64_t chunk = 4096;
  float scratch[chunk];
  size_t srcSize = dtypeSize(srcType), dstSize = dtypeSize(dstType);
  for (int64_t begin = 0; begin < count; begin += chunk) {
    int64_t n = std::min(chunk, count - begin);
    convertToFloat(static_cast<const char *>(src) + begin * srcSize, srcType,
                   scratch, n);
    convertFromFloat(scratch, static_cast<char *>(dst) + begin * dstSize,
                     dstType, n);
  }
}

size_t moert::dtypeSize(moert_dtype_t dtype) {
  switch (dtype) {
  case MOERT_F32:
  case MOERT_I32:
    return 4;
  case MOERT_F16:
  case MOERT_BF16:
    return 2;
  case MOERT_I64:
    return 8;
  case MOERT_F8_E4M3:
  case MOERT_U8:
    return 1;
  }
  return 0;
}
