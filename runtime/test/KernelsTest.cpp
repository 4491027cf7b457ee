//===- runtime/test/KernelsTest.cpp - Router, permutation, FFN, mixes -----===//
//
// Oracles here are naive double-precision loops written from the formulas in
// runtime/moert.h.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "runtime/common/Convert.h"
#include "runtime/common/Quantized.h"

#include <random>

using namespace moert;
using namespace moert::test;

namespace {

using Floats = std::vector<float>;

// A buffer of `values` in `dtype`, rounded by moert_buffer_copy as the
// kernels' f16/bf16 operands are.
Buffer convertedBuffer(moert_context_t ctx, const Floats &values,
                       moert_dtype_t dtype) {
  Buffer f32(ctx, values, MOERT_F32), out(ctx, values.size() * 4);
  check(moert_buffer_copy(ctx, f32.view(MOERT_F32), out.view(dtype),
                          values.size()));
  return out;
}

// y[rows,H] = FFN(x) for one copy of weights, in double.
std::vector<double> naiveFfn(bool gated, int64_t rows, int64_t hidden,
                             int64_t ffn, const float *x, const float *w1,
                             const float *wUp, const float *w2, const float *b1,
                             const float *b2) {
  auto act = [gated](double v) {
    return gated ? v / (1 + std::exp(-v))
                 : 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
  };
  std::vector<double> y(rows * hidden, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> h(ffn);
    for (int64_t f = 0; f < ffn; ++f) {
      double a = b1 ? b1[f] : 0, u = 0;
      for (int64_t i = 0; i < hidden; ++i) {
        a += double(x[r * hidden + i]) * w1[f * hidden + i];
        if (gated)
          u += double(x[r * hidden + i]) * wUp[f * hidden + i];
      }
      h[f] = gated ? act(a) * u : act(a);
    }
    for (int64_t o = 0; o < hidden; ++o) {
      double acc = b2 ? b2[o] : 0;
      for (int64_t f = 0; f < ffn; ++f)
        acc += h[f] * w2[o * ffn + f];
      y[r * hidden + o] = acc;
    }
  }
  return y;
}

TEST(Kernels, RouterIsALinearWithBias) {
  const int64_t S = 5, H = 7, E = 3;
  Floats x = randomFloats(S * H, 1), wg = randomFloats(E * H, 2),
         bias = randomFloats(E, 3);
  onOneRank([&](moert_context_t ctx) {
    Buffer xb(ctx, x, MOERT_F32), wb(ctx, wg, MOERT_F32),
        bb(ctx, bias, MOERT_F32), out(ctx, S * E * 4);
    check(moert_router(ctx, xb.view(MOERT_F32), wb.view(MOERT_F32),
                       bb.view(MOERT_F32), out.view(MOERT_F32), S, H, E));
    std::vector<double> want(S * E);
    for (int64_t s = 0; s < S; ++s)
      for (int64_t e = 0; e < E; ++e) {
        want[s * E + e] = bias[e];
        for (int64_t h = 0; h < H; ++h)
          want[s * E + e] += double(x[s * H + h]) * wg[e * H + h];
      }
    expectClose(out.download<float>(MOERT_F32, S * E), want, 1e-5);
  });
}

TEST(Kernels, DispatchThenCombineWeighsKeptChoices) {
  const int64_t S = 3, H = 4, k = 2, E = 2, C = 2;
  Floats x = randomFloats(S * H, 4);
  std::vector<int32_t> ids = {0, 1, 1, 0, 0, 1};
  std::vector<int32_t> slots = {0, 0, 1, 1, -1, -1}; // token 2 fully dropped
  Floats weights = {0.75f, 0.25f, 0.5f, 0.5f, 0.0f, 0.0f};
  onOneRank([&](moert_context_t ctx) {
    Buffer xb(ctx, x, MOERT_F32), ib(ctx, ids, MOERT_I32),
        sb(ctx, slots, MOERT_I32), wb(ctx, weights, MOERT_F32),
        buf(ctx, E * C * H * 4), out(ctx, S * H * 4);
    check(moert_buffer_fill(ctx, buf.view(MOERT_F32), E * C * H, NAN));
    check(moert_dispatch(ctx, xb.view(MOERT_F32), ib.view(MOERT_I32),
                         sb.view(MOERT_I32), moert_absent_view(),
                         buf.view(MOERT_F32), S, H, k, E, C));
    Floats dispatched = buf.download<float>(MOERT_F32, E * C * H);
    for (int64_t h = 0; h < H; ++h) {
      EXPECT_EQ(dispatched[(0 * C + 0) * H + h], x[0 * H + h]);
      EXPECT_EQ(dispatched[(1 * C + 0) * H + h], x[0 * H + h]);
      EXPECT_EQ(dispatched[(1 * C + 1) * H + h], x[1 * H + h]);
      EXPECT_EQ(dispatched[(0 * C + 1) * H + h], x[1 * H + h]);
    }
    // Combine with a residual fused in (addend aliases out).
    Buffer residual(ctx, Floats(S * H, 1.0f), MOERT_F32);
    check(moert_combine(ctx, buf.view(MOERT_F32), ib.view(MOERT_I32),
                        sb.view(MOERT_I32), wb.view(MOERT_F32),
                        residual.view(MOERT_F32), residual.view(MOERT_F32), S,
                        H, k, E, C));
    Floats got = residual.download<float>(MOERT_F32, S * H);
    for (int64_t h = 0; h < H; ++h) {
      EXPECT_FLOAT_EQ(got[0 * H + h], 1.0f + x[0 * H + h]);
      EXPECT_FLOAT_EQ(got[1 * H + h], 1.0f + x[1 * H + h]);
      EXPECT_EQ(got[2 * H + h], 1.0f); // dropped: contributes nothing
    }
    // Out-of-range slots are an error, not a stray write.
    std::vector<int32_t> badSlots = {0, 0, 1, 1, 2, -1};
    Buffer bad(ctx, badSlots, MOERT_I32);
    EXPECT_MOERT_ERROR(moert_dispatch(ctx, xb.view(MOERT_F32),
                                      ib.view(MOERT_I32), bad.view(MOERT_I32),
                                      moert_absent_view(), buf.view(MOERT_F32),
                                      S, H, k, E, C),
                       MOERT_INVALID_ARGUMENT, "slot 2");
  });
}

// Llama 4: the weight scales the dispatched row (x * w in fp32, rounded to
// the buffer's dtype) and the combine then sums with weight 1.
TEST(Kernels, DispatchWithWeightsScalesRowsAndUnweightedCombineSums) {
  const int64_t S = 3, H = 5, k = 2, E = 3, C = 2;
  Floats x = randomFloats(S * H, 7);
  std::vector<int32_t> ids = {2, 0, 0, 2, 1, 2};
  std::vector<int32_t> slots = {0, 0, 1, 1, 0, -1}; // token 2's second dropped
  Floats weights = {0.75f, 0.3f, 0.5f, 1.5f, 0.2f, 0.9f};
  for (moert_dtype_t io : {MOERT_F32, MOERT_BF16}) {
    // The reference loop: rows stay 0 unless a kept choice fills them.
    Floats want(E * C * H, 0.0f);
    for (int64_t s = 0; s < S; ++s)
      for (int64_t j = 0; j < k; ++j) {
        int32_t e = ids[s * k + j], slot = slots[s * k + j];
        if (slot < 0)
          continue;
        for (int64_t h = 0; h < H; ++h) {
          float v = x[s * H + h] * weights[s * k + j];
          want[(e * C + slot) * H + h] =
              io == MOERT_BF16 ? bf16ToFloat(floatToBf16(v)) : v;
        }
      }
    onOneRank([&](moert_context_t ctx) {
      Buffer xb(ctx, x, MOERT_F32), ib(ctx, ids, MOERT_I32),
          sb(ctx, slots, MOERT_I32), wb(ctx, weights, MOERT_F32),
          buf(ctx, E * C * H * 4), wide(ctx, E * C * H * 4),
          out(ctx, S * H * 4);
      check(moert_buffer_fill(ctx, buf.view(io), E * C * H, NAN));
      check(moert_dispatch(ctx, xb.view(MOERT_F32), ib.view(MOERT_I32),
                           sb.view(MOERT_I32), wb.view(MOERT_F32), buf.view(io),
                           S, H, k, E, C));
      check(moert_buffer_copy(ctx, buf.view(io), wide.view(MOERT_F32),
                              E * C * H));
      Floats got = wide.download<float>(MOERT_F32, E * C * H);
      for (int64_t i = 0; i < E * C * H; ++i)
        EXPECT_EQ(got[i], want[i]) << "element " << i;
      // Unweighted combine: each kept row once, as written.
      check(moert_combine(ctx, wide.view(MOERT_F32), ib.view(MOERT_I32),
                          sb.view(MOERT_I32), moert_absent_view(),
                          moert_absent_view(), out.view(MOERT_F32), S, H, k, E,
                          C));
      Floats sum = out.download<float>(MOERT_F32, S * H);
      for (int64_t s = 0; s < S; ++s)
        for (int64_t h = 0; h < H; ++h) {
          float acc = 0.0f;
          for (int64_t j = 0; j < k; ++j)
            if (slots[s * k + j] >= 0)
              acc += want[(ids[s * k + j] * C + slots[s * k + j]) * H + h];
          EXPECT_EQ(sum[s * H + h], acc) << "token " << s;
        }
      // A weights view shorter than [S, k] is refused.
      Buffer shortWeights(ctx, Floats(S * k - 1, 1.0f), MOERT_F32);
      EXPECT_MOERT_ERROR(moert_dispatch(ctx, xb.view(MOERT_F32),
                                        ib.view(MOERT_I32), sb.view(MOERT_I32),
                                        shortWeights.view(MOERT_F32),
                                        buf.view(io), S, H, k, E, C),
                         MOERT_INVALID_ARGUMENT, "weights");
    });
  }
}

TEST(Kernels, FusedCombineMixesAddsSharedAndUpdatesXInPlace) {
  const int64_t S = 3, H = 4, k = 2, E = 2, C = 2;
  Floats y = randomFloats(E * C * H, 30), x = randomFloats(S * H, 31),
         wc = randomFloats(2 * H, 32), bc = {0.3f, -0.1f},
         mlp = randomFloats(S * H, 33), shared = randomFloats(S * H, 34),
         wsg = randomFloats(H, 35);
  std::vector<int32_t> ids = {0, 1, 1, 0, 0, 1};
  std::vector<int32_t> slots = {0, 0, 1, 1, -1, -1}; // token 2 fully dropped
  Floats weights = {0.75f, 0.25f, 0.5f, 0.5f, 0.0f, 0.0f};
  std::vector<double> want(S * H);
  for (int64_t s = 0; s < S; ++s) {
    double l0 = bc[0], l1 = bc[1], logit = 0;
    for (int64_t h = 0; h < H; ++h) {
      l0 += double(x[s * H + h]) * wc[h];
      l1 += double(x[s * H + h]) * wc[H + h];
      logit += double(x[s * H + h]) * wsg[h];
    }
    double c0 = 1 / (1 + std::exp(l1 - l0)), c1 = 1 - c0;
    double gate = 1 / (1 + std::exp(-logit));
    for (int64_t h = 0; h < H; ++h) {
      double r = 0;
      for (int64_t j = 0; j < k; ++j)
        if (slots[s * k + j] >= 0)
          r += double(weights[s * k + j]) *
               y[(ids[s * k + j] * C + slots[s * k + j]) * H + h];
      want[s * H + h] = r * c0 + mlp[s * H + h] * c1 +
                        gate * shared[s * H + h] + x[s * H + h];
    }
  }
  onOneRank([&](moert_context_t ctx) {
    Buffer yb(ctx, y, MOERT_F32), xb(ctx, x, MOERT_F32),
        wcb(ctx, wc, MOERT_F32), bcb(ctx, bc, MOERT_F32),
        mb(ctx, mlp, MOERT_F32), sb(ctx, shared, MOERT_F32),
        gb(ctx, wsg, MOERT_F32), ib(ctx, ids, MOERT_I32),
        slb(ctx, slots, MOERT_I32), wb(ctx, weights, MOERT_F32);
    // x is the coefficient and gate input, the addend and the output.
    check(moert_fused_combine(
        ctx, yb.view(MOERT_F32), ib.view(MOERT_I32), slb.view(MOERT_I32),
        wb.view(MOERT_F32), mb.view(MOERT_F32), wcb.view(MOERT_F32),
        bcb.view(MOERT_F32), sb.view(MOERT_F32), gb.view(MOERT_F32),
        xb.view(MOERT_F32), xb.view(MOERT_F32), xb.view(MOERT_F32), S, H, k, E,
        C));
    expectClose(xb.download<float>(MOERT_F32, S * H), want, 1e-5);
    EXPECT_MOERT_ERROR(
        moert_fused_combine(
            ctx, yb.view(MOERT_F32), ib.view(MOERT_I32), slb.view(MOERT_I32),
            wb.view(MOERT_F32), moert_absent_view(), moert_absent_view(),
            moert_absent_view(), moert_absent_view(), gb.view(MOERT_F32),
            xb.view(MOERT_F32), moert_absent_view(), xb.view(MOERT_F32), S, H,
            k, E, C),
        MOERT_INVALID_ARGUMENT, "shared gate");
  });
}

TEST(Kernels, ExpertsComputeOnlyUsedRowsAndZeroTheRest) {
  const int64_t E = 3, C = 4, H = 5, F = 6, blocks = 2, blockRows = C / blocks;
  Floats in = randomFloats(E * C * H, 5);
  std::vector<int32_t> rows = {2, 1, /**/ 0, 0, /**/ 1, 2}; // [E, blocks]
  // Unused rows hold NaN: computing them would poison nothing we read, but
  // the output there must come back as exact zeros.
  for (int64_t e = 0; e < E; ++e)
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t r = rows[e * blocks + b]; r < blockRows; ++r)
        for (int64_t h = 0; h < H; ++h)
          in[((e * C) + b * blockRows + r) * H + h] = NAN;
  Floats wGate = randomFloats(E * F * H, 6), wUp = randomFloats(E * F * H, 7),
         wDown = randomFloats(E * H * F, 8);
  onOneRank([&](moert_context_t ctx) {
    Buffer ib(ctx, in, MOERT_F32), rb(ctx, rows, MOERT_I32),
        g(ctx, wGate, MOERT_F32), u(ctx, wUp, MOERT_F32),
        d(ctx, wDown, MOERT_F32), out(ctx, E * C * H * 4);
    check(moert_buffer_fill(ctx, out.view(MOERT_F32), E * C * H, NAN));
    moert_ffn_desc_t desc{MOERT_FFN_GATED,
                          MOERT_ACT_SILU,
                          H,
                          F,
                          g.view(MOERT_F32),
                          u.view(MOERT_F32),
                          d.view(MOERT_F32),
                          moert_absent_view(),
                          moert_absent_view()};
    check(moert_experts(ctx, &desc, ib.view(MOERT_F32), out.view(MOERT_F32),
                        rb.view(MOERT_I32), E, C, blocks));
    Floats got = out.download<float>(MOERT_F32, E * C * H);
    for (int64_t e = 0; e < E; ++e) {
      for (int64_t b = 0; b < blocks; ++b) {
        int64_t first = e * C + b * blockRows, used = rows[e * blocks + b];
        std::vector<double> want =
            naiveFfn(true, used, H, F, &in[first * H], &wGate[e * F * H],
                     &wUp[e * F * H], &wDown[e * H * F], nullptr, nullptr);
        for (int64_t i = 0; i < used * H; ++i)
          EXPECT_NEAR(got[first * H + i], want[i], 1e-5);
        for (int64_t i = used * H; i < blockRows * H; ++i)
          EXPECT_EQ(got[first * H + i], 0.0f) << "expert " << e;
      }
    }
    std::vector<int32_t> tooMany = {3, 0, 0, 0, 0, 0};
    Buffer tb(ctx, tooMany, MOERT_I32);
    EXPECT_MOERT_ERROR(moert_experts(ctx, &desc, ib.view(MOERT_F32),
                                     out.view(MOERT_F32), tb.view(MOERT_I32), E,
                                     C, blocks),
                       MOERT_INVALID_ARGUMENT, "has 3 rows");
  });
}

// Quantized weights of E experts [E, rows, cols] with random scales, and
// their dequantized f32 values (QuantizedLayout::at, the documented
// formula).
struct QuantizedExpertWeight {
  std::vector<uint8_t> data, e8m0;
  Floats f32Scales, values;
};

QuantizedExpertWeight quantizedWeight(const QuantizedLayout &layout,
                                      int64_t experts, unsigned seed) {
  std::mt19937 rng(seed);
  QuantizedExpertWeight w;
  w.data.resize(experts * layout.dataElements());
  for (uint8_t &b : w.data) {
    b = static_cast<uint8_t>(rng());
    if (layout.format == MOERT_WEIGHTS_FP8_E4M3_BLOCK && (b & 0x7f) == 0x7f)
      b = 0; // not NaN
  }
  bool mx = layout.format == MOERT_WEIGHTS_MXFP4;
  for (int64_t i = 0; i < experts * layout.scaleElements(); ++i) {
    if (mx)
      w.e8m0.push_back(static_cast<uint8_t>(118 + rng() % 8));
    else
      w.f32Scales.push_back(0.001f + 0.003f * float(rng() % 1000) / 1000);
  }
  for (int64_t e = 0; e < experts; ++e) {
    const uint8_t *data = w.data.data() + e * layout.dataElements();
    const void *scales = mx ? static_cast<const void *>(
                                  w.e8m0.data() + e * layout.scaleElements())
                            : w.f32Scales.data() + e * layout.scaleElements();
    for (int64_t r = 0; r < layout.rows; ++r)
      for (int64_t c = 0; c < layout.cols; ++c)
        w.values.push_back(layout.at(data, scales, r, c));
  }
  return w;
}

// moert_quantized_experts equals moert_experts on the dequantized f32
// weights bit for bit (the same fp32 sums), for fp8 with partial blocks and
// for MXFP4; unused rows come back as zeros; bad descriptors are errors.
TEST(Kernels, QuantizedExpertsEqualExpertsOnDequantizedWeights) {
  const int64_t E = 3, C = 4, blocks = 2;
  std::vector<int32_t> rows = {2, 1, /**/ 0, 0, /**/ 1, 2};
  struct Case {
    moert_weight_format_t format;
    int64_t hidden, ffn, blockRows, blockCols;
  };
  for (const Case &c : {Case{MOERT_WEIGHTS_FP8_E4M3_BLOCK, 40, 24, 16, 16},
                        Case{MOERT_WEIGHTS_FP8_E4M3_BLOCK, 33, 20, 128, 128},
                        Case{MOERT_WEIGHTS_MXFP4, 64, 32, 1, 32}}) {
    const int64_t H = c.hidden, F = c.ffn;
    QuantizedLayout upLayout{c.format, F, H, c.blockRows, c.blockCols};
    QuantizedLayout downLayout{c.format, H, F, c.blockRows, c.blockCols};
    QuantizedExpertWeight g = quantizedWeight(upLayout, E, 1),
                          u = quantizedWeight(upLayout, E, 2),
                          d = quantizedWeight(downLayout, E, 3);
    Floats in = randomFloats(E * C * H, 4);
    bool mx = c.format == MOERT_WEIGHTS_MXFP4;
    moert_dtype_t dataType = mx ? MOERT_U8 : MOERT_F8_E4M3;
    onOneRank([&](moert_context_t ctx) {
      auto scalesBuffer = [&](const QuantizedExpertWeight &w) {
        return mx ? Buffer(ctx, w.e8m0, MOERT_U8)
                  : Buffer(ctx, w.f32Scales, MOERT_F32);
      };
      moert_dtype_t scaleType = mx ? MOERT_U8 : MOERT_F32;
      Buffer ib(ctx, in, MOERT_F32), rb(ctx, rows, MOERT_I32),
          gd(ctx, g.data, dataType), ud(ctx, u.data, dataType),
          dd(ctx, d.data, dataType),
          gs = scalesBuffer(g), us = scalesBuffer(u), ds = scalesBuffer(d),
          gf(ctx, g.values, MOERT_F32), uf(ctx, u.values, MOERT_F32),
          df(ctx, d.values, MOERT_F32), out(ctx, E * C * H * 4),
          want(ctx, E * C * H * 4);
      moert_quantized_ffn_desc_t desc{c.format,
                                      c.blockRows,
                                      c.blockCols,
                                      MOERT_ACT_SILU,
                                      H,
                                      F,
                                      {gd.view(dataType), gs.view(scaleType)},
                                      {ud.view(dataType), us.view(scaleType)},
                                      {dd.view(dataType), ds.view(scaleType)}};
      check(moert_buffer_fill(ctx, out.view(MOERT_F32), E * C * H, NAN));
      check(moert_quantized_experts(ctx, &desc, ib.view(MOERT_F32),
                                    out.view(MOERT_F32), rb.view(MOERT_I32), E,
                                    C, blocks));
      moert_ffn_desc_t plain{MOERT_FFN_GATED,
                             MOERT_ACT_SILU,
                             H,
                             F,
                             gf.view(MOERT_F32),
                             uf.view(MOERT_F32),
                             df.view(MOERT_F32),
                             moert_absent_view(),
                             moert_absent_view()};
      check(moert_experts(ctx, &plain, ib.view(MOERT_F32), want.view(MOERT_F32),
                          rb.view(MOERT_I32), E, C, blocks));
      Floats got = out.download<float>(MOERT_F32, E * C * H);
      Floats expected = want.download<float>(MOERT_F32, E * C * H);
      std::string what = std::string(mx ? "mxfp4" : "fp8") + " H " +
                         std::to_string(H) + " F " + std::to_string(F);
      // A backend may read FP8 in place, its own sums (the CPU's with
      // AVX-512-BF16): within 1e-5 of the largest output there; MXFP4 is
      // widened, the same sums bit for bit.
      if (mx) {
        EXPECT_EQ(0, std::memcmp(got.data(), expected.data(),
                                 got.size() * sizeof(float)))
            << what;
      } else {
        float largest = 0;
        for (float v : expected)
          largest = std::max(largest, std::isnan(v) ? 0.0f : std::fabs(v));
        for (size_t i = 0; i < got.size(); ++i)
          if (!std::isnan(expected[i]))
            EXPECT_NEAR(got[i], expected[i], 1e-5f * largest)
                << what << " " << i;
          else
            EXPECT_TRUE(std::isnan(got[i])) << what << " " << i;
      }
      // Against the naive loop too (expert 0, block 0: its 2 used rows).
      std::vector<double> naive =
          naiveFfn(true, 2, H, F, in.data(), g.values.data(), u.values.data(),
                   d.values.data(), nullptr, nullptr);
      for (int64_t i = 0; i < 2 * H; ++i)
        EXPECT_NEAR(got[i], naive[i], 1e-5 * (1 + std::fabs(naive[i])));
      EXPECT_EQ(got[(C - 1) * H], 0.0f); // expert 0 block 1: 1 row used

      // Scales one block short, data of the wrong dtype, a bad block size.
      moert_quantized_ffn_desc_t bad = desc;
      bad.down.scales.offset = 1;
      EXPECT_MOERT_ERROR(moert_quantized_experts(
                             ctx, &bad, ib.view(MOERT_F32), out.view(MOERT_F32),
                             rb.view(MOERT_I32), E, C, blocks),
                         MOERT_INVALID_ARGUMENT, "operand 'down.scales'");
      bad = desc;
      bad.gate.data = gf.view(MOERT_F32);
      EXPECT_MOERT_ERROR(moert_quantized_experts(
                             ctx, &bad, ib.view(MOERT_F32), out.view(MOERT_F32),
                             rb.view(MOERT_I32), E, C, blocks),
                         MOERT_INVALID_ARGUMENT,
                         mx ? "operand 'gate.data' must be u8, got f32"
                            : "operand 'gate.data' must be f8_e4m3, got f32");
      bad = desc;
      bad.block_cols = mx ? 16 : 0;
      EXPECT_MOERT_ERROR(
          moert_quantized_experts(ctx, &bad, ib.view(MOERT_F32),
                                  out.view(MOERT_F32), rb.view(MOERT_I32), E, C,
                                  blocks),
          MOERT_INVALID_ARGUMENT,
          mx ? "mxfp4 blocks are 1 x 32" : "fp8 block size must be positive");
    });
  }
}

// MXFP4 as gpt-oss stores it (per expert `*_blocks` [rows, G, 16] and
// `*_scales` [rows, G] u8), loaded through the weights layer, against the
// output of a NumPy decoder of the format (mxfp4_golden.py made
// data/mxfp4-ffn.safetensors).
TEST(Kernels, Mxfp4ExpertsMatchTheNumpyDecoder) {
  const int64_t E = 2, C = 5, H = 64, F = 96;
  std::string path = std::string(MOERT_TEST_DATA) + "/mxfp4-ffn.safetensors";
  moert_weights_t file = nullptr;
  ASSERT_EQ(moert_weights_open(path.c_str(), &file), MOERT_OK)
      << moert_last_error();
  onOneRank([&](moert_context_t ctx) {
    auto load = [&](const char *key, std::vector<int64_t> shape,
                    moert_dtype_t dtype, int64_t experts) {
      int64_t count = experts;
      for (int64_t d : shape)
        count *= d;
      Buffer buffer(ctx, count * moert_dtype_size(dtype));
      moert_weight_request_t req;
      moert_weight_request_init(&req, key, static_cast<int32_t>(shape.size()),
                                shape.data());
      if (experts > 1) {
        req.expert_begin = 0;
        req.expert_end = experts;
      }
      check(moert_weights_load(ctx, file, &req, buffer.view(dtype)));
      return buffer;
    };
    auto weight = [&](const std::string &proj, int64_t rows, int64_t cols) {
      std::string key = "experts.{e}." + proj + "_proj";
      return std::make_pair(
          load((key + "_blocks").c_str(), {rows, cols / 32, 16}, MOERT_U8, E),
          load((key + "_scales").c_str(), {rows, cols / 32}, MOERT_U8, E));
    };
    auto gate = weight("gate", F, H), up = weight("up", F, H),
         down = weight("down", H, F);
    Buffer x = load("x", {E, C, H}, MOERT_F32, 1);
    Buffer y = load("y", {E, C, H}, MOERT_F32, 1);
    Buffer out(ctx, E * C * H * 4);
    moert_quantized_ffn_desc_t desc{
        MOERT_WEIGHTS_MXFP4,
        1,
        32,
        MOERT_ACT_SILU,
        H,
        F,
        {gate.first.view(MOERT_U8), gate.second.view(MOERT_U8)},
        {up.first.view(MOERT_U8), up.second.view(MOERT_U8)},
        {down.first.view(MOERT_U8), down.second.view(MOERT_U8)}};
    check(moert_quantized_experts(ctx, &desc, x.view(MOERT_F32),
                                  out.view(MOERT_F32), moert_absent_view(), E,
                                  C, 1));
    Floats got = out.download<float>(MOERT_F32, E * C * H);
    Floats want = y.download<float>(MOERT_F32, E * C * H);
    double scale = 0;
    for (float v : want)
      scale = std::max(scale, double(std::fabs(v)));
    for (int64_t i = 0; i < E * C * H; ++i)
      ASSERT_NEAR(got[i], want[i], 1e-5 * scale) << "element " << i;
    // The blocks' shape is checked at the load: [rows, G, 16], not flat.
    moert_weight_request_t flat;
    int64_t shape[2] = {F, H / 2};
    moert_weight_request_init(&flat, "experts.0.gate_proj_blocks", 2, shape);
    EXPECT_MOERT_ERROR(
        moert_weights_load(ctx, file, &flat, gate.first.view(MOERT_U8)),
        MOERT_FORMAT_ERROR, "has shape [96,2,16], expected [96,32]");
  });
  moert_weights_close(file);
}

TEST(Kernels, ExpertStageCallsGiveTheExpertsOutputsExactly) {
  const int64_t E = 3, C = 4, H = 5, F = 6, blocks = 2;
  Floats in = randomFloats(E * C * H, 21);
  std::vector<int32_t> rows = {2, 1, /**/ 0, 0, /**/ 1, 2}; // [E, blocks]
  Floats wGate = randomFloats(E * F * H, 22), wUp = randomFloats(E * F * H, 23),
         wDown = randomFloats(E * H * F, 24);
  // SiLU has its own fused epilogue on AVX-512; GELU-tanh the generic one.
  // Gate weights in another dtype than up cannot be paired: moert_experts
  // runs them staged, and must still give the stage calls' bits.
  for (moert_activation_t activation : {MOERT_ACT_GELU_TANH, MOERT_ACT_SILU})
    for (moert_dtype_t io : {MOERT_F32, MOERT_BF16})
      for (bool mixedGate : {false, true}) {
        moert_dtype_t gateType = !mixedGate        ? io
                                 : io == MOERT_F32 ? MOERT_BF16
                                                   : MOERT_F32;
        onOneRank([&](moert_context_t ctx) {
          auto stored = [&](const Floats &values) {
            return convertedBuffer(ctx, values, io);
          };
          Buffer ib = stored(in), g = convertedBuffer(ctx, wGate, gateType),
                 u = stored(wUp), d = stored(wDown);
          Buffer rb(ctx, rows, MOERT_I32), want(ctx, E * C * H * 4),
              got(ctx, E * C * H * 4), h(ctx, E * C * F * 4),
              up(ctx, E * C * F * 4), act(ctx, E * C * F * 4);
          for (Buffer *b : {&want, &got})
            check(moert_buffer_fill(ctx, b->view(io), E * C * H, NAN));
          for (Buffer *b : {&h, &up})
            check(moert_buffer_fill(ctx, b->view(MOERT_F32), E * C * F, NAN));
          moert_ffn_desc_t desc{
              MOERT_FFN_GATED,    activation, H,          F,
              g.view(gateType),   u.view(io), d.view(io), moert_absent_view(),
              moert_absent_view()};
          check(moert_experts(ctx, &desc, ib.view(io), want.view(io),
                              rb.view(MOERT_I32), E, C, blocks));
          check(moert_experts_linear(ctx, g.view(gateType), ib.view(io),
                                     h.view(MOERT_F32), rb.view(MOERT_I32), E,
                                     C, blocks, F, H));
          check(moert_experts_linear(ctx, u.view(io), ib.view(io),
                                     up.view(MOERT_F32), rb.view(MOERT_I32), E,
                                     C, blocks, F, H));
          check(moert_activation(ctx, activation, h.view(MOERT_F32),
                                 h.view(MOERT_F32), E * C * F));
          // The hidden that meets bf16 down weights is bf16.
          check(moert_multiply(ctx, h.view(MOERT_F32), up.view(MOERT_F32),
                               act.view(io), E * C * F));
          check(moert_experts_linear(ctx, d.view(io), act.view(io),
                                     got.view(io), rb.view(MOERT_I32), E, C,
                                     blocks, H, F));
          if (io == MOERT_F32) {
            Floats a = want.download<float>(io, E * C * H),
                   b = got.download<float>(io, E * C * H);
            for (size_t i = 0; i < a.size(); ++i)
              ASSERT_EQ(a[i], b[i]) << "element " << i;
          } else {
            EXPECT_EQ(want.download<uint16_t>(io, E * C * H),
                      got.download<uint16_t>(io, E * C * H));
          }
          // The multiply stage on its own.
          Buffer x(ctx, Floats{3.0f, -2.0f}, MOERT_F32),
              y(ctx, Floats{0.5f, 4.0f}, MOERT_F32), xy(ctx, 2 * 4);
          check(moert_multiply(ctx, x.view(MOERT_F32), y.view(MOERT_F32),
                               xy.view(MOERT_F32), 2));
          EXPECT_EQ(xy.download<float>(MOERT_F32, 2), (Floats{1.5f, -8.0f}));
          EXPECT_MOERT_ERROR(
              moert_experts_linear(ctx, d.view(io), h.view(MOERT_F32),
                                   got.view(io), rb.view(MOERT_I32), E, C, 3, H,
                                   F),
              MOERT_INVALID_ARGUMENT, "not a multiple of blocks");
        });
      }
}

// gpt-oss's expert FFN (transformers' GptOssExperts) for one expert's rows,
// in double: g = x.Wg^T + bg clamped above at limit, u = x.Wu^T + bu clamped
// to [-limit, limit], y = ((u + 1) * g * sigmoid(alpha * g)).Wd^T + bd.
std::vector<double> naiveClampedSwiglu(int64_t rows, int64_t hidden,
                                       int64_t ffn, const float *x,
                                       const float *wGate, const float *bGate,
                                       const float *wUp, const float *bUp,
                                       const float *wDown, const float *bDown,
                                       double alpha, double limit) {
  std::vector<double> y(rows * hidden);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> h(ffn);
    for (int64_t f = 0; f < ffn; ++f) {
      double g = bGate[f], u = bUp[f];
      for (int64_t i = 0; i < hidden; ++i) {
        g += double(x[r * hidden + i]) * wGate[f * hidden + i];
        u += double(x[r * hidden + i]) * wUp[f * hidden + i];
      }
      g = std::min(g, limit);
      u = std::max(-limit, std::min(u, limit));
      h[f] = (u + 1) * g / (1 + std::exp(-alpha * g));
    }
    for (int64_t o = 0; o < hidden; ++o) {
      double acc = bDown[o];
      for (int64_t f = 0; f < ffn; ++f)
        acc += h[f] * wDown[o * ffn + f];
      y[r * hidden + o] = acc;
    }
  }
  return y;
}

TEST(Kernels, ClampedSwigluStagesWithBiasesMatchGptOssExperts) {
  const int64_t E = 3, C = 4, H = 5, F = 6, blocks = 2, blockRows = C / blocks;
  // A small limit so that both clamps bite on some elements.
  const float alpha = 1.702f, limit = 0.5f;
  Floats in = randomFloats(E * C * H, 41);
  std::vector<int32_t> rows = {2, 1, /**/ 0, 0, /**/ 1, 2}; // [E, blocks]
  Floats wGate = randomFloats(E * F * H, 42), wUp = randomFloats(E * F * H, 43),
         wDown = randomFloats(E * H * F, 44), bGate = randomFloats(E * F, 45),
         bUp = randomFloats(E * F, 46), bDown = randomFloats(E * H, 47);
  onOneRank([&](moert_context_t ctx) {
    auto f32 = [&](const Floats &values) {
      return Buffer(ctx, values, MOERT_F32);
    };
    Buffer ib = f32(in), g = f32(wGate), u = f32(wUp), d = f32(wDown),
           bg = f32(bGate), bu = f32(bUp), bd = f32(bDown),
           rb(ctx, rows, MOERT_I32), h(ctx, E * C * F * 4),
           up(ctx, E * C * F * 4), out(ctx, E * C * H * 4);
    moert_view_t used = rb.view(MOERT_I32), hv = h.view(MOERT_F32),
                 uv = up.view(MOERT_F32), ov = out.view(MOERT_F32);
    check(moert_experts_linear(ctx, g.view(MOERT_F32), ib.view(MOERT_F32), hv,
                               used, E, C, blocks, F, H));
    check(moert_experts_bias_add(ctx, bg.view(MOERT_F32), hv, hv, used, E, C,
                                 blocks, F));
    check(moert_experts_linear(ctx, u.view(MOERT_F32), ib.view(MOERT_F32), uv,
                               used, E, C, blocks, F, H));
    check(moert_experts_bias_add(ctx, bu.view(MOERT_F32), uv, uv, used, E, C,
                                 blocks, F));
    check(moert_swiglu_clamped(ctx, hv, uv, hv, E * C * F, alpha, limit));
    check(moert_experts_linear(ctx, d.view(MOERT_F32), hv, ov, used, E, C,
                               blocks, H, F));
    check(moert_experts_bias_add(ctx, bd.view(MOERT_F32), ov, ov, used, E, C,
                                 blocks, H));
    Floats got = out.download<float>(MOERT_F32, E * C * H);
    for (int64_t e = 0; e < E; ++e)
      for (int64_t b = 0; b < blocks; ++b) {
        int64_t first = e * C + b * blockRows, n = rows[e * blocks + b];
        std::vector<double> want =
            naiveClampedSwiglu(n, H, F, &in[first * H], &wGate[e * F * H],
                               &bGate[e * F], &wUp[e * F * H], &bUp[e * F],
                               &wDown[e * H * F], &bDown[e * H], alpha, limit);
        for (int64_t i = 0; i < n * H; ++i)
          EXPECT_NEAR(got[first * H + i], want[i], 1e-5) << "expert " << e;
        // Unused rows keep the linear's zeros: no bias lands there.
        for (int64_t i = n * H; i < blockRows * H; ++i)
          EXPECT_EQ(got[first * H + i], 0.0f) << "expert " << e;
      }
    // The clamps on their own: gate 2 -> 0.5, up -3 -> -0.5.
    Buffer gate(ctx, Floats{2.0f, -1.0f}, MOERT_F32),
        upv(ctx, Floats{-3.0f, 0.25f}, MOERT_F32), act(ctx, 2 * 4);
    check(moert_swiglu_clamped(ctx, gate.view(MOERT_F32), upv.view(MOERT_F32),
                               act.view(MOERT_F32), 2, alpha, limit));
    Floats a = act.download<float>(MOERT_F32, 2);
    EXPECT_NEAR(a[0], 0.5 * 0.5 / (1 + std::exp(-1.702 * 0.5)), 1e-6);
    EXPECT_NEAR(a[1], 1.25 * -1.0 / (1 + std::exp(1.702)), 1e-6);
    EXPECT_MOERT_ERROR(moert_swiglu_clamped(ctx, gate.view(MOERT_F32),
                                            upv.view(MOERT_F32),
                                            act.view(MOERT_F32), 2, 0.0f, 7.0f),
                       MOERT_INVALID_ARGUMENT, "alpha must be finite and > 0");
    EXPECT_MOERT_ERROR(moert_experts_bias_add(ctx, bd.view(MOERT_F32), ov, ov,
                                              used, E, C, 3, H),
                       MOERT_INVALID_ARGUMENT, "not a multiple of blocks");
  });
}

// gpt-oss's quantized experts as stage calls: moert_quantized_experts_linear
// for gate, up and down (fp8 with partial blocks, MXFP4), each followed by its
// bias, and swiglu_clamped with a limit that both clamps bite on. Each linear
// equals moert_experts_linear on the dequantized weights bit for bit; the
// whole FFN matches the double loop on the dequantized weights; unused rows
// stay 0; bad weights are errors naming the operand.
TEST(Kernels, QuantizedStagesWithBiasesMatchGptOssExperts) {
  const int64_t E = 3, C = 4, blocks = 2, blockRows = C / blocks;
  const float alpha = 1.702f, limit = 0.5f;
  std::vector<int32_t> rows = {2, 1, /**/ 0, 0, /**/ 1, 2}; // [E, blocks]
  struct Case {
    moert_weight_format_t format;
    int64_t hidden, ffn, blockRows, blockCols;
  };
  for (const Case &c : {Case{MOERT_WEIGHTS_FP8_E4M3_BLOCK, 40, 24, 16, 16},
                        Case{MOERT_WEIGHTS_MXFP4, 64, 32, 1, 32}}) {
    const int64_t H = c.hidden, F = c.ffn;
    bool mx = c.format == MOERT_WEIGHTS_MXFP4;
    const char *name = mx ? "mxfp4" : "fp8";
    QuantizedLayout upLayout{c.format, F, H, c.blockRows, c.blockCols};
    QuantizedLayout downLayout{c.format, H, F, c.blockRows, c.blockCols};
    QuantizedExpertWeight g = quantizedWeight(upLayout, E, 51),
                          u = quantizedWeight(upLayout, E, 52),
                          d = quantizedWeight(downLayout, E, 53);
    Floats in = randomFloats(E * C * H, 54), bGate = randomFloats(E * F, 55),
           bUp = randomFloats(E * F, 56), bDown = randomFloats(E * H, 57);
    // Both clamps must bite on used rows: some gate above the limit, some
    // up below -limit (in double on the dequantized weights).
    int gateClamped = 0, upClamped = 0;
    for (int64_t e = 0; e < E; ++e)
      for (int64_t r = 0; r < C; ++r)
        for (int64_t f = 0; f < F; ++f) {
          double gv = bGate[e * F + f], uv = bUp[e * F + f];
          for (int64_t i = 0; i < H; ++i) {
            gv +=
                double(in[(e * C + r) * H + i]) * g.values[(e * F + f) * H + i];
            uv +=
                double(in[(e * C + r) * H + i]) * u.values[(e * F + f) * H + i];
          }
          gateClamped += gv > limit;
          upClamped += uv < -limit;
        }
    ASSERT_GT(gateClamped, 0) << name;
    ASSERT_GT(upClamped, 0) << name;
    moert_dtype_t dataType = mx ? MOERT_U8 : MOERT_F8_E4M3;
    moert_dtype_t scaleType = mx ? MOERT_U8 : MOERT_F32;
    onOneRank([&](moert_context_t ctx) {
      auto scalesBuffer = [&](const QuantizedExpertWeight &w) {
        return mx ? Buffer(ctx, w.e8m0, MOERT_U8)
                  : Buffer(ctx, w.f32Scales, MOERT_F32);
      };
      auto f32 = [&](const Floats &values) {
        return Buffer(ctx, values, MOERT_F32);
      };
      Buffer ib = f32(in), bg = f32(bGate), bu = f32(bUp), bd = f32(bDown),
             gd(ctx, g.data, dataType), ud(ctx, u.data, dataType),
             dd(ctx, d.data, dataType), gs = scalesBuffer(g),
             us = scalesBuffer(u), ds = scalesBuffer(d), gf = f32(g.values),
             rb(ctx, rows, MOERT_I32), h(ctx, E * C * F * 4),
             up(ctx, E * C * F * 4), out(ctx, E * C * H * 4),
             want(ctx, E * C * F * 4);
      moert_view_t used = rb.view(MOERT_I32), hv = h.view(MOERT_F32),
                   uv = up.view(MOERT_F32), ov = out.view(MOERT_F32),
                   x = ib.view(MOERT_F32);
      auto linear = [&](const Buffer &data, const Buffer &scales,
                        moert_view_t input, moert_view_t output, int64_t n,
                        int64_t k) {
        check(moert_quantized_experts_linear(
            ctx, c.format, c.blockRows, c.blockCols, data.view(dataType),
            scales.view(scaleType), input, output, used, E, C, blocks, n, k));
      };
      check(moert_buffer_fill(ctx, hv, E * C * F, NAN));
      check(moert_buffer_fill(ctx, ov, E * C * H, NAN));
      linear(gd, gs, x, hv, F, H);
      // The gate GEMM equals the f32 one on the dequantized weights.
      check(moert_experts_linear(ctx, gf.view(MOERT_F32), x,
                                 want.view(MOERT_F32), used, E, C, blocks, F,
                                 H));
      Floats gotGate = h.download<float>(MOERT_F32, E * C * F);
      Floats wantGate = want.download<float>(MOERT_F32, E * C * F);
      EXPECT_EQ(0, std::memcmp(gotGate.data(), wantGate.data(),
                               gotGate.size() * sizeof(float)))
          << name;
      check(moert_experts_bias_add(ctx, bg.view(MOERT_F32), hv, hv, used, E, C,
                                   blocks, F));
      linear(ud, us, x, uv, F, H);
      check(moert_experts_bias_add(ctx, bu.view(MOERT_F32), uv, uv, used, E, C,
                                   blocks, F));
      check(moert_swiglu_clamped(ctx, hv, uv, hv, E * C * F, alpha, limit));
      linear(dd, ds, hv, ov, H, F);
      check(moert_experts_bias_add(ctx, bd.view(MOERT_F32), ov, ov, used, E, C,
                                   blocks, H));
      Floats got = out.download<float>(MOERT_F32, E * C * H);
      for (int64_t e = 0; e < E; ++e)
        for (int64_t b = 0; b < blocks; ++b) {
          int64_t first = e * C + b * blockRows, n = rows[e * blocks + b];
          std::vector<double> expected = naiveClampedSwiglu(
              n, H, F, &in[first * H], &g.values[e * F * H], &bGate[e * F],
              &u.values[e * F * H], &bUp[e * F], &d.values[e * H * F],
              &bDown[e * H], alpha, limit);
          for (int64_t i = 0; i < n * H; ++i)
            EXPECT_NEAR(got[first * H + i], expected[i],
                        1e-5 * (1 + std::fabs(expected[i])))
                << name << " expert " << e;
          for (int64_t i = n * H; i < blockRows * H; ++i)
            EXPECT_EQ(got[first * H + i], 0.0f) << name << " expert " << e;
        }

      // Scales one block short, data of the wrong dtype, a bad block size,
      // an mxfp4 k off the 32 grid.
      auto call = [&](moert_view_t data, moert_view_t scales, int64_t br,
                      int64_t bc, int64_t n, int64_t k) {
        return moert_quantized_experts_linear(ctx, c.format, br, bc, data,
                                              scales, x, hv, used, E, C, blocks,
                                              n, k);
      };
      moert_view_t shortScales = gs.view(scaleType);
      shortScales.offset = 1;
      EXPECT_MOERT_ERROR(
          call(gd.view(dataType), shortScales, c.blockRows, c.blockCols, F, H),
          MOERT_INVALID_ARGUMENT, "operand 'w.scales'");
      EXPECT_MOERT_ERROR(call(gf.view(MOERT_F32), gs.view(scaleType),
                              c.blockRows, c.blockCols, F, H),
                         MOERT_INVALID_ARGUMENT,
                         mx ? "operand 'w.data' must be u8, got f32"
                            : "operand 'w.data' must be f8_e4m3, got f32");
      EXPECT_MOERT_ERROR(call(gd.view(dataType), gs.view(scaleType),
                              c.blockRows, mx ? 16 : 0, F, H),
                         MOERT_INVALID_ARGUMENT,
                         mx ? "mxfp4 blocks are 1 x 32"
                            : "fp8 block size must be positive");
      if (mx)
        EXPECT_MOERT_ERROR(
            call(gd.view(dataType), gs.view(scaleType), 1, 32, F, H - 16),
            MOERT_INVALID_ARGUMENT, "mxfp4 needs k a multiple of 32, got 48");
    });
  }
}

// [E, 2F, H] with each expert's gate rows followed by its up rows.
Floats packGateUp(const Floats &gate, const Floats &up, int64_t stack,
                  int64_t ffn, int64_t hidden) {
  Floats packed;
  for (int64_t e = 0; e < stack; ++e) {
    auto panel = [&](const Floats &w) { return w.begin() + e * ffn * hidden; };
    packed.insert(packed.end(), panel(gate), panel(gate) + ffn * hidden);
    packed.insert(packed.end(), panel(up), panel(up) + ffn * hidden);
  }
  return packed;
}

TEST(Kernels, FusedExpertsEqualExpertsAndDenseFfn) {
  // Routed experts over rows/blocks plus a folded shared expert of another
  // width, against moert_experts and moert_dense_ffn on the unpacked weights.
  const int64_t E = 3, C = 4, H = 5, F = 6, blocks = 2, S = 7, Fs = 4;
  Floats in = randomFloats(E * C * H, 31), x = randomFloats(S * H, 32);
  std::vector<int32_t> rows = {2, 1, /**/ 0, 0, /**/ 1, 2}; // [E, blocks]
  Floats wGate = randomFloats(E * F * H, 33), wUp = randomFloats(E * F * H, 34),
         wDown = randomFloats(E * H * F, 35), sGate = randomFloats(Fs * H, 36),
         sUp = randomFloats(Fs * H, 37), sDown = randomFloats(H * Fs, 38);
  Floats wGateUp = packGateUp(wGate, wUp, E, F, H),
         sGateUp = packGateUp(sGate, sUp, 1, Fs, H);
  for (moert_dtype_t io : {MOERT_F32, MOERT_BF16}) {
    onOneRank([&](moert_context_t ctx) {
      auto stored = [&](const Floats &values) {
        return convertedBuffer(ctx, values, io);
      };
      Buffer ib = stored(in), xb = stored(x), g = stored(wGate),
             u = stored(wUp), d = stored(wDown), gu = stored(wGateUp),
             sg = stored(sGate), su = stored(sUp), sd = stored(sDown),
             sgu = stored(sGateUp);
      Buffer rb(ctx, rows, MOERT_I32), want(ctx, E * C * H * 4),
          got(ctx, E * C * H * 4), sharedWant(ctx, S * H * 4),
          sharedGot(ctx, S * H * 4);
      for (Buffer *b : {&want, &got})
        check(moert_buffer_fill(ctx, b->view(io), E * C * H, NAN));
      for (Buffer *b : {&sharedWant, &sharedGot})
        check(moert_buffer_fill(ctx, b->view(io), S * H, NAN));
      moert_ffn_desc_t experts{
          MOERT_FFN_GATED,    MOERT_ACT_SILU, H,          F,
          g.view(io),         u.view(io),     d.view(io), moert_absent_view(),
          moert_absent_view()};
      moert_ffn_desc_t dense{
          MOERT_FFN_GATED,    MOERT_ACT_SILU, H,           Fs,
          sg.view(io),        su.view(io),    sd.view(io), moert_absent_view(),
          moert_absent_view()};
      check(moert_experts(ctx, &experts, ib.view(io), want.view(io),
                          rb.view(MOERT_I32), E, C, blocks));
      check(moert_dense_ffn(ctx, &dense, xb.view(io), sharedWant.view(io), S));
      moert_packed_ffn_desc_t packed{MOERT_ACT_SILU, H, F, gu.view(io),
                                     d.view(io)};
      moert_packed_ffn_desc_t packedShared{MOERT_ACT_SILU, H, Fs, sgu.view(io),
                                           sd.view(io)};
      check(moert_fused_experts(ctx, &packed, ib.view(io), got.view(io),
                                rb.view(MOERT_I32), E, C, blocks, &packedShared,
                                xb.view(io), sharedGot.view(io), S));
      // The packed GEMM may sum in another order than the two unpacked ones;
      // in bf16 that can move a rounded output by one unit (2^-8 relative).
      double relative = io == MOERT_F32 ? 1e-6 : 1.0 / 128;
      auto expectSame = [&](const Buffer &a, const Buffer &b, int64_t count) {
        Buffer wantF32(ctx, count * 4), gotF32(ctx, count * 4);
        check(
            moert_buffer_copy(ctx, a.view(io), wantF32.view(MOERT_F32), count));
        check(
            moert_buffer_copy(ctx, b.view(io), gotF32.view(MOERT_F32), count));
        Floats wantValues = wantF32.download<float>(MOERT_F32, count),
               gotValues = gotF32.download<float>(MOERT_F32, count);
        for (int64_t i = 0; i < count; ++i)
          ASSERT_NEAR(gotValues[i], wantValues[i],
                      std::abs(wantValues[i]) * relative)
              << "element " << i;
      };
      expectSame(want, got, E * C * H);
      expectSame(sharedWant, sharedGot, S * H);
      // Without the shared expert only the routed output is written.
      check(moert_buffer_fill(ctx, got.view(io), E * C * H, NAN));
      check(moert_fused_experts(ctx, &packed, ib.view(io), got.view(io),
                                rb.view(MOERT_I32), E, C, blocks, nullptr,
                                moert_absent_view(), moert_absent_view(), 0));
      expectSame(want, got, E * C * H);
      EXPECT_MOERT_ERROR(
          moert_fused_experts(ctx, &packed, ib.view(io), got.view(io),
                              rb.view(MOERT_I32), E, C, blocks, &packedShared,
                              xb.view(io), xb.view(io), S),
          MOERT_INVALID_ARGUMENT, "shared_out must not alias shared_x");
      moert_packed_ffn_desc_t wider = packedShared;
      wider.hidden = H + 1;
      EXPECT_MOERT_ERROR(
          moert_fused_experts(ctx, &packed, ib.view(io), got.view(io),
                              rb.view(MOERT_I32), E, C, blocks, &wider,
                              xb.view(io), sharedGot.view(io), S),
          MOERT_INVALID_ARGUMENT, "shared expert hidden 6 differs");
    });
  }
}

TEST(Kernels, ExpertSlicingPartialSumsEqualTheFullFfn) {
  // Plain GeLU FFN with biases, F split over two ranks; b2 only on member 0.
  const int64_t S = 6, H = 8, F = 12, half = F / 2;
  Floats x = randomFloats(S * H, 9), w1 = randomFloats(F * H, 10),
         w2 = randomFloats(H * F, 11), b1 = randomFloats(F, 12),
         b2 = randomFloats(H, 13);
  std::vector<double> want = naiveFfn(false, S, H, F, x.data(), w1.data(),
                                      nullptr, w2.data(), b1.data(), b2.data());
  World world(1, 2);
  world.run([&](moert_context_t ctx) {
    Group group(ctx, {0, 1});
    int64_t slice = group.member();
    Floats w1Slice(w1.begin() + slice * half * H,
                   w1.begin() + (slice + 1) * half * H);
    Floats w2Slice(H * half);
    for (int64_t o = 0; o < H; ++o)
      for (int64_t f = 0; f < half; ++f)
        w2Slice[o * half + f] = w2[o * F + slice * half + f];
    Floats b1Slice(b1.begin() + slice * half, b1.begin() + (slice + 1) * half);
    Buffer xb(ctx, x, MOERT_F32), w1b(ctx, w1Slice, MOERT_F32),
        w2b(ctx, w2Slice, MOERT_F32), b1b(ctx, b1Slice, MOERT_F32),
        b2b(ctx, b2, MOERT_F32), out(ctx, S * H * 4);
    moert_ffn_desc_t desc{MOERT_FFN_PLAIN,
                          MOERT_ACT_GELU,
                          H,
                          half,
                          w1b.view(MOERT_F32),
                          moert_absent_view(),
                          w2b.view(MOERT_F32),
                          b1b.view(MOERT_F32),
                          slice == 0 ? b2b.view(MOERT_F32)
                                     : moert_absent_view()};
    check(moert_dense_ffn(ctx, &desc, xb.view(MOERT_F32), out.view(MOERT_F32),
                          S));
    check(moert_all_reduce(ctx, group.get(), MOERT_REDUCE_SUM,
                           out.view(MOERT_F32), out.view(MOERT_F32), S * H));
    expectClose(out.download<float>(MOERT_F32, S * H), want, 1e-5);
  });
}

TEST(Kernels, Bf16OperandsAreRoundedOnceAtTheOutput) {
  // x . w^T in bf16 storage: inputs exact in bf16, result rounded to bf16.
  onOneRank([](moert_context_t ctx) {
    std::vector<uint16_t> x = {0x3f80, 0x3f80}; // [1, 1]
    std::vector<uint16_t> w = {0x3f81, 0x3b80}; // [1 + 2^-7, 2^-8]
    Buffer xb(ctx, x, MOERT_BF16), wb(ctx, w, MOERT_BF16), out(ctx, 4);
    check(moert_router(ctx, xb.view(MOERT_BF16), wb.view(MOERT_BF16),
                       moert_absent_view(), out.view(MOERT_F32), 1, 2, 1));
    EXPECT_EQ(out.download<float>(MOERT_F32, 1)[0],
              1.0f + std::ldexp(1.0f, -7) + std::ldexp(1.0f, -8));
    Buffer a(ctx, std::vector<uint16_t>{0x3f80}, MOERT_BF16);
    Buffer b(ctx, std::vector<uint16_t>{0x3b80}, MOERT_BF16); // 2^-8
    Buffer sum(ctx, 2);
    check(moert_add(ctx, a.view(MOERT_BF16), b.view(MOERT_BF16),
                    sum.view(MOERT_BF16), 1));
    EXPECT_EQ(sum.download<uint16_t>(MOERT_BF16, 1)[0], 0x3f80); // tie, even
  });
}

TEST(Kernels, ResidualMixAndSharedAdd) {
  const int64_t S = 4, H = 3;
  Floats x = randomFloats(S * H, 14), wc = randomFloats(2 * H, 15),
         bc = {0.1f, -0.2f}, moe = randomFloats(S * H, 16),
         mlp = randomFloats(S * H, 17), wsg = randomFloats(H, 18);
  onOneRank([&](moert_context_t ctx) {
    Buffer xb(ctx, x, MOERT_F32), wcb(ctx, wc, MOERT_F32),
        bcb(ctx, bc, MOERT_F32), mb(ctx, moe, MOERT_F32),
        lb(ctx, mlp, MOERT_F32), sg(ctx, wsg, MOERT_F32), out(ctx, S * H * 4);
    check(moert_residual_mix(ctx, xb.view(MOERT_F32), wcb.view(MOERT_F32),
                             bcb.view(MOERT_F32), mb.view(MOERT_F32),
                             lb.view(MOERT_F32), out.view(MOERT_F32), S, H));
    std::vector<double> want(S * H);
    for (int64_t s = 0; s < S; ++s) {
      double l0 = bc[0], l1 = bc[1];
      for (int64_t h = 0; h < H; ++h) {
        l0 += double(x[s * H + h]) * wc[h];
        l1 += double(x[s * H + h]) * wc[H + h];
      }
      double c0 = 1 / (1 + std::exp(l1 - l0)), c1 = 1 - c0;
      for (int64_t h = 0; h < H; ++h)
        want[s * H + h] = moe[s * H + h] * c0 + mlp[s * H + h] * c1;
    }
    expectClose(out.download<float>(MOERT_F32, S * H), want, 1e-6);

    // Qwen2-MoE gated shared expert, in place on `routed`.
    check(moert_shared_add(ctx, mb.view(MOERT_F32), lb.view(MOERT_F32),
                           xb.view(MOERT_F32), sg.view(MOERT_F32),
                           mb.view(MOERT_F32), S, H));
    for (int64_t s = 0; s < S; ++s) {
      double logit = 0;
      for (int64_t h = 0; h < H; ++h)
        logit += double(x[s * H + h]) * wsg[h];
      double gate = 1 / (1 + std::exp(-logit));
      for (int64_t h = 0; h < H; ++h)
        want[s * H + h] = moe[s * H + h] + gate * mlp[s * H + h];
    }
    expectClose(mb.download<float>(MOERT_F32, S * H), want, 1e-6);
  });
}

} // namespace

TEST(Kernels, RmsNormNormalisesEachTokenThenScales) {
  const int64_t S = 3, H = 64;
  const float eps = 1e-6f;
  Floats x = randomFloats(S * H, 19, 3.0f), w = randomFloats(H, 20);
  onOneRank([&](moert_context_t ctx) {
    Buffer xb(ctx, x, MOERT_F32), wb(ctx, w, MOERT_F32);
    // In place on x.
    check(moert_rms_norm(ctx, xb.view(MOERT_F32), wb.view(MOERT_F32),
                         xb.view(MOERT_F32), S, H, eps));
    std::vector<double> want(S * H);
    for (int64_t s = 0; s < S; ++s) {
      double squares = 0;
      for (int64_t h = 0; h < H; ++h)
        squares += double(x[s * H + h]) * x[s * H + h];
      double inverse = 1 / std::sqrt(squares / H + eps);
      for (int64_t h = 0; h < H; ++h)
        want[s * H + h] = w[h] * (x[s * H + h] * inverse);
    }
    expectClose(xb.download<float>(MOERT_F32, S * H), want, 2e-6);

    Buffer small(ctx, Floats(H / 2, 1.0f), MOERT_F32);
    EXPECT_MOERT_ERROR(moert_rms_norm(ctx, xb.view(MOERT_F32),
                                      small.view(MOERT_F32), xb.view(MOERT_F32),
                                      S, H, eps),
                       MOERT_INVALID_ARGUMENT, "weight");
    EXPECT_MOERT_ERROR(moert_rms_norm(ctx, xb.view(MOERT_F32),
                                      wb.view(MOERT_F32), xb.view(MOERT_F32), S,
                                      H, -1.0f),
                       MOERT_INVALID_ARGUMENT, "epsilon");
  });
}

TEST(Kernels, RmsNormRoundsTheNormalisedRowToBf16BeforeTheWeight) {
  // Hugging Face: weight * (x * rsqrt(mean(x^2) + eps)).to(bf16), the
  // product rounded to bf16 again.
  const int64_t S = 2, H = 32;
  const float eps = 1e-5f;
  Floats x = randomFloats(S * H, 21, 2.0f), w = randomFloats(H, 22, 1.5f);
  auto bf16 = [](float v) { return bf16ToFloat(floatToBf16(v)); };
  for (float &v : x)
    v = bf16(v);
  for (float &v : w)
    v = bf16(v);
  std::vector<uint16_t> want(S * H);
  int roundedTwiceDiffers = 0;
  for (int64_t s = 0; s < S; ++s) {
    double squares = 0;
    for (int64_t h = 0; h < H; ++h)
      squares += double(x[s * H + h]) * x[s * H + h];
    float inverse = 1.0f / std::sqrt(float(squares / H) + eps);
    for (int64_t h = 0; h < H; ++h) {
      float y = x[s * H + h] * inverse;
      want[s * H + h] = floatToBf16(w[h] * bf16(y));
      roundedTwiceDiffers += want[s * H + h] != floatToBf16(w[h] * y);
    }
  }
  ASSERT_GT(roundedTwiceDiffers, 0) << "the data cannot tell the orders apart";
  onOneRank([&](moert_context_t ctx) {
    Buffer xb = convertedBuffer(ctx, x, MOERT_BF16);
    Buffer wb = convertedBuffer(ctx, w, MOERT_BF16);
    Buffer out(ctx, S * H * 2);
    check(moert_rms_norm(ctx, xb.view(MOERT_BF16), wb.view(MOERT_BF16),
                         out.view(MOERT_BF16), S, H, eps));
    EXPECT_EQ(out.download<uint16_t>(MOERT_BF16, S * H), want);
  });
}

namespace {

// moert_fused_experts' routed output (f32 bits) on a world of `ranks` CPU
// ranks with `threads` each; every rank computes the same, rank 0 reports.
std::vector<uint32_t> fusedExpertsBits(int32_t ranks, int32_t threads,
                                       moert_dtype_t io) {
  const int64_t E = 4, C = 48, H = 96, F = 160, blocks = 1;
  std::vector<int32_t> rows = {48, 30, 0, 17};
  Floats in = randomFloats(E * C * H, 41), wGate = randomFloats(E * F * H, 42),
         wUp = randomFloats(E * F * H, 43), wDown = randomFloats(E * H * F, 44);
  Floats wGateUp = packGateUp(wGate, wUp, E, F, H);
  World world(1, ranks, 0, MOERT_BACKEND_CPU, threads);
  EXPECT_EQ(moert_world_cpu_threads(world.get()), threads);
  std::vector<uint32_t> bits;
  world.run([&](moert_context_t ctx) {
    Buffer ib = convertedBuffer(ctx, in, io),
           gu = convertedBuffer(ctx, wGateUp, io),
           d = convertedBuffer(ctx, wDown, io), rb(ctx, rows, MOERT_I32),
           out(ctx, E * C * H * 4), out32(ctx, E * C * H * 4);
    moert_packed_ffn_desc_t packed{MOERT_ACT_SILU, H, F, gu.view(io),
                                   d.view(io)};
    check(moert_fused_experts(ctx, &packed, ib.view(io), out.view(io),
                              rb.view(MOERT_I32), E, C, blocks, nullptr,
                              moert_absent_view(), moert_absent_view(), 0));
    check(moert_buffer_copy(ctx, out.view(io), out32.view(MOERT_F32),
                            E * C * H));
    if (moert_context_rank(ctx) == 0)
      bits = out32.download<uint32_t>(MOERT_F32, E * C * H);
  });
  return bits;
}

} // namespace

// Threads inside a rank split the work, never a sum: any thread count, and
// ranks beside them, give the same bits.
TEST(Kernels, ThreadsPerRankKeepBits) {
  for (moert_dtype_t io : {MOERT_F32, MOERT_BF16}) {
    std::vector<uint32_t> one = fusedExpertsBits(1, 1, io);
    ASSERT_FALSE(one.empty());
    EXPECT_EQ(fusedExpertsBits(1, 4, io), one) << dtypeName(io);
    EXPECT_EQ(fusedExpertsBits(1, 3, io), one) << dtypeName(io);
    EXPECT_EQ(fusedExpertsBits(2, 2, io), one) << dtypeName(io);
  }
}

TEST(Kernels, CpuThreadsDefaultIsCoresOverRanks) {
  if (std::getenv("MOERT_CPU_THREADS"))
    GTEST_SKIP() << "MOERT_CPU_THREADS is set: no default to check";
  World world(1, 1), wide(1, 64);
  EXPECT_GE(moert_world_cpu_threads(world.get()), 1);
  EXPECT_EQ(moert_world_cpu_threads(wide.get()),
            std::max(1, moert_world_cpu_threads(world.get()) / 64));
  moert_world_desc_t desc{MOERT_BACKEND_CPU, 1, 1, 0, 5000};
  moert_world_t bad = nullptr;
  EXPECT_MOERT_ERROR(moert_world_create(&desc, &bad), MOERT_INVALID_ARGUMENT,
                     "cpu_threads must be at most 1024");
}
