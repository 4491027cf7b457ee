//===- runtime/test/ConvertTest.cpp - f16/bf16 conversions ----------------===//

#include "runtime/common/Convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace moert;

namespace {

float pow2(int exponent) { return std::ldexp(1.0f, exponent); }

TEST(Bf16, ExactValues) {
  EXPECT_EQ(floatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(floatToBf16(-1.5f), 0xbfc0);
  EXPECT_EQ(floatToBf16(0.0f), 0x0000);
  EXPECT_EQ(floatToBf16(-0.0f), 0x8000);
  EXPECT_EQ(bf16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(bf16ToFloat(0xc040), -3.0f);
}

TEST(Bf16, RoundsToNearestEven) {
  // bf16 keeps 7 mantissa bits: ulp(1) = 2^-7, half an ulp = 2^-8.
  EXPECT_EQ(floatToBf16(1.0f + pow2(-8)), 0x3f80);     // tie -> even (down)
  EXPECT_EQ(floatToBf16(1.0f + 3 * pow2(-8)), 0x3f82); // tie -> even (up)
  EXPECT_EQ(floatToBf16(1.0f + pow2(-8) + pow2(-20)), 0x3f81); // above tie
  EXPECT_EQ(floatToBf16(1.0f + pow2(-8) - pow2(-20)), 0x3f80); // below tie
  EXPECT_EQ(floatToBf16(-(1.0f + 3 * pow2(-8))), 0xbf82);
}

TEST(Bf16, SpecialValues) {
  float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(floatToBf16(inf), 0x7f80);
  EXPECT_EQ(floatToBf16(-inf), 0xff80);
  EXPECT_EQ(floatToBf16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(std::nanf("")))));
  // A NaN whose payload sits only in the low bits must stay NaN, not inf.
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(bitsToFloat(0x7f800001)))));
}

TEST(Bf16, EveryValueRoundTrips) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    float value = bf16ToFloat(static_cast<uint16_t>(bits));
    if (std::isnan(value))
      continue;
    ASSERT_EQ(floatToBf16(value), bits) << std::hex << bits;
  }
}

TEST(F16, ExactValues) {
  EXPECT_EQ(floatToF16(1.0f), 0x3c00);
  EXPECT_EQ(floatToF16(-2.0f), 0xc000);
  EXPECT_EQ(floatToF16(65504.0f), 0x7bff); // largest finite
  EXPECT_EQ(f16ToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(f16ToFloat(0x0001), pow2(-24)); // smallest subnormal
  EXPECT_EQ(f16ToFloat(0x0400), pow2(-14)); // smallest normal
  EXPECT_TRUE(std::signbit(f16ToFloat(0x8000)));
}

TEST(F16, RoundsToNearestEven) {
  // f16 keeps 10 mantissa bits: half an ulp of 1 is 2^-11.
  EXPECT_EQ(floatToF16(1.0f + pow2(-11)), 0x3c00);
  EXPECT_EQ(floatToF16(1.0f + 3 * pow2(-11)), 0x3c02);
  EXPECT_EQ(floatToF16(1.0f + pow2(-11) + pow2(-20)), 0x3c01);
  // Overflow threshold: 65520 is the tie between 65504 and 2^16 -> inf.
  EXPECT_EQ(floatToF16(65519.0f), 0x7bff);
  EXPECT_EQ(floatToF16(65520.0f), 0x7c00);
  // Subnormals: 2^-25 ties to 0, 3 * 2^-25 ties to 2 * 2^-24.
  EXPECT_EQ(floatToF16(pow2(-25)), 0x0000);
  EXPECT_EQ(floatToF16(3 * pow2(-25)), 0x0002);
  EXPECT_EQ(floatToF16(pow2(-25) + pow2(-30)), 0x0001);
  // Largest subnormal rounding up into the smallest normal.
  EXPECT_EQ(floatToF16(pow2(-14) - pow2(-26)), 0x0400);
}

TEST(F16, SpecialValues) {
  float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(floatToF16(inf), 0x7c00);
  EXPECT_EQ(floatToF16(-inf), 0xfc00);
  EXPECT_EQ(floatToF16(1e10f), 0x7c00);
  EXPECT_TRUE(std::isnan(f16ToFloat(floatToF16(std::nanf("")))));
  EXPECT_TRUE(std::isinf(f16ToFloat(0x7c00)));
}

TEST(F16, EveryValueRoundTrips) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    float value = f16ToFloat(static_cast<uint16_t>(bits));
    if (std::isnan(value))
      continue;
    ASSERT_EQ(floatToF16(value), bits) << std::hex << bits;
  }
}

TEST(Convert, BulkBetweenDtypes) {
  std::vector<float> values = {1.0f, -2.5f, 1.0f + 3 * pow2(-8), 65504.0f};
  std::vector<uint16_t> bf16(values.size());
  convert(values.data(), MOERT_F32, bf16.data(), MOERT_BF16, values.size());
  EXPECT_EQ(bf16[2], 0x3f82);
  std::vector<uint16_t> f16(values.size());
  convert(bf16.data(), MOERT_BF16, f16.data(), MOERT_F16, values.size());
  EXPECT_EQ(f16ToFloat(f16[1]), -2.5f);
  EXPECT_EQ(f16ToFloat(f16[2]), 1.0f + pow2(-6));
  std::vector<int64_t> big = {int64_t(1) << 40, -7};
  std::vector<int64_t> copy(2);
  convert(big.data(), MOERT_I64, copy.data(), MOERT_I64, 2);
  EXPECT_EQ(copy, big);
}

} // namespace
