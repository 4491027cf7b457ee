//===- runtime/test/NormsTest.cpp - LayerNorm and the bias add ------------===//
//
// Oracles are double-precision loops written from the formulas in
// runtime/moert.h.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

using namespace moert;
using namespace moert::test;

namespace {

using Floats = std::vector<float>;

// torch.nn.LayerNorm in double: biased variance, then weight and bias.
std::vector<double> naiveLayerNorm(const Floats &x, const Floats &w,
                                   const Floats *b, int64_t tokens,
                                   int64_t hidden, double eps) {
  std::vector<double> y(x.size());
  for (int64_t s = 0; s < tokens; ++s) {
    double mean = 0, var = 0;
    for (int64_t h = 0; h < hidden; ++h)
      mean += x[s * hidden + h];
    mean /= hidden;
    for (int64_t h = 0; h < hidden; ++h)
      var += (x[s * hidden + h] - mean) * (x[s * hidden + h] - mean);
    var /= hidden;
    for (int64_t h = 0; h < hidden; ++h)
      y[s * hidden + h] =
          (x[s * hidden + h] - mean) / std::sqrt(var + eps) * w[h] +
          (b ? (*b)[h] : 0.0);
  }
  return y;
}

} // namespace

TEST(Norms, LayerNormMatchesTheFormulaInPlaceAndWithoutBias) {
  const int64_t S = 5, H = 48;
  const float eps = 1e-5f;
  // An offset mean: a one-pass variance would lose digits here.
  Floats x = randomFloats(S * H, 31, 2.0f);
  for (float &v : x)
    v += 3.0f;
  Floats w = randomFloats(H, 32, 1.5f), b = randomFloats(H, 33, 0.5f);
  onOneRank([&](moert_context_t ctx) {
    Buffer xb(ctx, x, MOERT_F32), wb(ctx, w, MOERT_F32), bb(ctx, b, MOERT_F32);
    Buffer out(ctx, S * H * 4);
    check(moert_layer_norm(ctx, xb.view(MOERT_F32), wb.view(MOERT_F32),
                           bb.view(MOERT_F32), out.view(MOERT_F32), S, H, eps));
    expectClose(out.download<float>(MOERT_F32, S * H),
                naiveLayerNorm(x, w, &b, S, H, eps), 2e-5);
    // In place on x, no bias.
    check(moert_layer_norm(ctx, xb.view(MOERT_F32), wb.view(MOERT_F32),
                           moert_view_t{}, xb.view(MOERT_F32), S, H, eps));
    expectClose(xb.download<float>(MOERT_F32, S * H),
                naiveLayerNorm(x, w, nullptr, S, H, eps), 2e-5);
  });
}

TEST(Norms, LayerNormRejectsBadOperands) {
  const int64_t S = 2, H = 16;
  onOneRank([&](moert_context_t ctx) {
    Buffer xb(ctx, Floats(S * H, 1.0f), MOERT_F32);
    Buffer wb(ctx, Floats(H, 1.0f), MOERT_F32);
    Buffer small(ctx, Floats(H / 2, 1.0f), MOERT_F32);
    EXPECT_MOERT_ERROR(moert_layer_norm(ctx, xb.view(MOERT_F32),
                                        wb.view(MOERT_F32),
                                        small.view(MOERT_F32),
                                        xb.view(MOERT_F32), S, H, 1e-5f),
                       MOERT_INVALID_ARGUMENT, "bias");
    EXPECT_MOERT_ERROR(moert_layer_norm(ctx, xb.view(MOERT_F32),
                                        small.view(MOERT_F32), moert_view_t{},
                                        xb.view(MOERT_F32), S, H, 1e-5f),
                       MOERT_INVALID_ARGUMENT, "weight");
    EXPECT_MOERT_ERROR(moert_layer_norm(ctx, xb.view(MOERT_F32),
                                        wb.view(MOERT_F32), moert_view_t{},
                                        xb.view(MOERT_F32), S, H, NAN),
                       MOERT_INVALID_ARGUMENT, "epsilon");
  });
}

TEST(Norms, LayerNormBf16RoundsOnceAtTheOutput) {
  const int64_t S = 3, H = 32;
  const float eps = 1e-5f;
  Floats x = randomFloats(S * H, 41, 2.0f), w = randomFloats(H, 42, 1.5f),
         b = randomFloats(H, 43, 0.5f);
  // Inputs exactly representable in bf16: the oracle sees what the kernel
  // reads.
  auto toBf16 = [](Floats v) {
    for (float &f : v) {
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      bits &= 0xffff0000u;
      std::memcpy(&f, &bits, 4);
    }
    return v;
  };
  x = toBf16(x);
  w = toBf16(w);
  b = toBf16(b);
  onOneRank([&](moert_context_t ctx) {
    auto bf16 = [&](const Floats &v) {
      Buffer f32(ctx, v, MOERT_F32), out(ctx, v.size() * 2);
      check(moert_buffer_copy(ctx, f32.view(MOERT_F32), out.view(MOERT_BF16),
                              v.size()));
      return out;
    };
    Buffer xb = bf16(x), wb = bf16(w), bb = bf16(b), out(ctx, S * H * 2);
    Buffer wide(ctx, S * H * 4);
    check(moert_layer_norm(ctx, xb.view(MOERT_BF16), wb.view(MOERT_BF16),
                           bb.view(MOERT_BF16), out.view(MOERT_BF16), S, H,
                           eps));
    check(moert_buffer_copy(ctx, out.view(MOERT_BF16), wide.view(MOERT_F32),
                            S * H));
    std::vector<double> want = naiveLayerNorm(x, w, &b, S, H, eps);
    Floats got = wide.download<float>(MOERT_F32, S * H);
    for (size_t i = 0; i < got.size(); ++i) // one bf16 rounding: 2^-8
      ASSERT_NEAR(got[i], want[i], std::abs(want[i]) * 0.0040 + 1e-6)
          << "element " << i;
  });
}

TEST(Norms, BiasAddBroadcastsOverRowsInPlace) {
  const int64_t S = 4, H = 24;
  Floats x = randomFloats(S * H, 51), b = randomFloats(H, 52);
  onOneRank([&](moert_context_t ctx) {
    Buffer xb(ctx, x, MOERT_F32), bb(ctx, b, MOERT_F32);
    check(moert_bias_add(ctx, xb.view(MOERT_F32), bb.view(MOERT_F32),
                         xb.view(MOERT_F32), S, H));
    std::vector<double> want(S * H);
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < H; ++h)
        want[s * H + h] = double(x[s * H + h]) + b[h];
    expectClose(xb.download<float>(MOERT_F32, S * H), want, 1e-6);
    EXPECT_MOERT_ERROR(moert_bias_add(ctx, xb.view(MOERT_F32), moert_view_t{},
                                      xb.view(MOERT_F32), S, H),
                       MOERT_INVALID_ARGUMENT, "bias");
    EXPECT_MOERT_ERROR(moert_bias_add(ctx, xb.view(MOERT_F32),
                                      bb.view(MOERT_F32), xb.view(MOERT_F32), S,
                                      0),
                       MOERT_INVALID_ARGUMENT, "extents");
  });
}

TEST(Norms, ScaleRoundsOnceToTheOutputDtypeInPlaceOrNot) {
  const int64_t N = 37;
  Floats x = randomFloats(N, 71);
  onOneRank([&](moert_context_t ctx) {
    Buffer xb(ctx, x, MOERT_F32), bf16(ctx, N * 2), wide(ctx, N * 4);
    // f32 in, bf16 out, then the bf16 scaled in place.
    check(
        moert_scale(ctx, xb.view(MOERT_F32), bf16.view(MOERT_BF16), N, 12.0f));
    check(moert_scale(ctx, bf16.view(MOERT_BF16), bf16.view(MOERT_BF16), N,
                      0.22f));
    check(
        moert_buffer_copy(ctx, bf16.view(MOERT_BF16), wide.view(MOERT_F32), N));
    check(moert_scale(ctx, xb.view(MOERT_F32), xb.view(MOERT_F32), N,
                      1.0f / 6.0f));
    Floats got = xb.download<float>(MOERT_F32, N);
    Floats narrow = wide.download<float>(MOERT_F32, N);
    for (int64_t i = 0; i < N; ++i) {
      EXPECT_EQ(got[i], x[i] * (1.0f / 6.0f)) << "element " << i;
      // Two bf16 roundings: 2 * 2^-9 of the value each.
      double want = double(x[i]) * 12.0 * 0.22;
      EXPECT_NEAR(narrow[i], want, std::abs(want) * 0.0080 + 1e-6)
          << "element " << i;
    }
    EXPECT_MOERT_ERROR(moert_scale(ctx, xb.view(MOERT_F32), xb.view(MOERT_F32),
                                   N, std::numeric_limits<float>::infinity()),
                       MOERT_INVALID_ARGUMENT, "factor");
    EXPECT_MOERT_ERROR(
        moert_scale(ctx, xb.view(MOERT_F32), moert_view_t{}, N, 2.0f),
        MOERT_INVALID_ARGUMENT, "out");
  });
}

TEST(Norms, ClampBoundsBothSidesInPlaceAndKeepsNaN) {
  const int64_t N = 37;
  Floats x = randomFloats(N, 61);
  for (float &v : x)
    v *= 4.0f;
  x[5] = std::nanf("");
  onOneRank([&](moert_context_t ctx) {
    Buffer xb(ctx, x, MOERT_F32), bf16(ctx, N * 2), wide(ctx, N * 4);
    check(moert_clamp(ctx, xb.view(MOERT_F32), xb.view(MOERT_F32), N, 1.5f));
    // f32 in, bf16 out: the clamp rounds once on the way out.
    check(
        moert_clamp(ctx, xb.view(MOERT_F32), bf16.view(MOERT_BF16), N, 0.75f));
    check(
        moert_buffer_copy(ctx, bf16.view(MOERT_BF16), wide.view(MOERT_F32), N));
    Floats got = xb.download<float>(MOERT_F32, N);
    Floats narrow = wide.download<float>(MOERT_F32, N);
    int64_t clipped = 0;
    for (int64_t i = 0; i < N; ++i) {
      if (i == 5) {
        EXPECT_TRUE(std::isnan(got[i]) && std::isnan(narrow[i]));
        continue;
      }
      float want = std::min(std::max(x[i], -1.5f), 1.5f);
      clipped += want != x[i];
      EXPECT_EQ(got[i], want) << "element " << i;
      float twice = std::min(std::max(want, -0.75f), 0.75f);
      EXPECT_NEAR(narrow[i], twice, std::abs(twice) * 0.0040)
          << "element " << i;
    }
    EXPECT_GT(clipped, 0) << "no element reached the limit";
    EXPECT_LT(clipped, N - 1) << "every element reached the limit";
    EXPECT_MOERT_ERROR(
        moert_clamp(ctx, xb.view(MOERT_F32), xb.view(MOERT_F32), N, 0.0f),
        MOERT_INVALID_ARGUMENT, "limit");
    EXPECT_MOERT_ERROR(moert_clamp(ctx, xb.view(MOERT_F32), xb.view(MOERT_F32),
                                   N, std::numeric_limits<float>::infinity()),
                       MOERT_INVALID_ARGUMENT, "limit");
    EXPECT_MOERT_ERROR(
        moert_clamp(ctx, moert_view_t{}, xb.view(MOERT_F32), N, 1.0f),
        MOERT_INVALID_ARGUMENT, "x");
  });
}
