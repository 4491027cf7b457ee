//===- runtime/cuda/test/LayoutTest.cpp - Vector widths, GEMM plans -------===//
//
// The grouped-GEMM plan is checked by executing it the way cuBLAS would
// (column-major, op(A) = A^T, op(B) = B) with the kernels' activation and
// epilogue rules, and comparing with moert_experts / moert_router on the CPU
// backend.
//
//===----------------------------------------------------------------------===//

#include "runtime/cuda/Layout.h"
#include "runtime/common/Activation.h"

#include "runtime/common/Error.h"
#include "runtime/moert.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

using namespace moert;
using namespace moert::cuda;

namespace {

TEST(CudaLayout, VectorBytesPicksTheWidestLegalWidth) {
  EXPECT_EQ(vectorBytes(4096 * 2, 0x1000, 0x2000), 16); // bf16 H=4096
  EXPECT_EQ(vectorBytes(24, 0x1000, 0x2000), 8);        // 24 % 16 != 0
  EXPECT_EQ(vectorBytes(4096, 0x1008, 0x2000), 8);      // src 8-aligned only
  EXPECT_EQ(vectorBytes(4096, 0x1000, 0x2004), 4);
  EXPECT_EQ(vectorBytes(6, 0x1000, 0x2000), 2); // f16 H=3
  EXPECT_EQ(vectorBytes(7, 0x1000, 0x2000), 1);
  // Every width returned divides the row and both addresses.
  std::mt19937 rng(7);
  for (int i = 0; i < 1000; ++i) {
    int64_t row = 1 + rng() % 4096;
    uintptr_t a = rng() % 4096, b = rng() % 4096;
    int32_t w = vectorBytes(row, a, b);
    EXPECT_EQ(row % w, 0);
    EXPECT_EQ(a % w, 0u);
    EXPECT_EQ(b % w, 0u);
    EXPECT_TRUE(w == 16 || row % (2 * w) || a % (2 * w) || b % (2 * w));
  }
}

TEST(CudaLayout, RowIsUsedFollowsBlocksAndRows) {
  // E = 2, C = 6, blocks = 3 (2 rows each).
  std::vector<int32_t> rows = {2, 0, 1, 1, 2, 0};
  std::vector<bool> want = {1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0};
  for (int64_t r = 0; r < 12; ++r)
    EXPECT_EQ(rowIsUsed(r, 6, 3, rows.data()), want[r]) << "row " << r;
  EXPECT_TRUE(rowIsUsed(11, 6, 3, nullptr));
}

TEST(CudaLayout, PlanRejectsRowsBeyondTheBlock) {
  std::vector<int32_t> rows = {1, 3};
  EXPECT_THROW(planFfn(2, 2, 1, 4, 4, true, rows.data()), moert::Error);
  rows = {-1, 0};
  EXPECT_THROW(planFfn(2, 2, 1, 4, 4, true, rows.data()), moert::Error);
}

// What cublasGemmGroupedBatchedEx computes for one problem, transa = T and
// transb = N, column-major.
void runProblem(const GemmProblem &p, const float *a, const float *b,
                float *c) {
  a += p.aOffset;
  b += p.bOffset;
  c += p.cOffset;
  for (int64_t j = 0; j < p.n; ++j)
    for (int64_t i = 0; i < p.m; ++i) {
      double sum = 0;
      for (int64_t l = 0; l < p.k; ++l)
        sum += static_cast<double>(a[l + i * p.lda]) * b[l + j * p.ldb];
      c[i + j * p.ldc] = static_cast<float>(sum);
    }
}

std::vector<float> randomVector(std::mt19937 &rng, size_t n, float scale) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float &x : v)
    x = normal(rng);
  return v;
}

struct FfnCase {
  bool gated;
  moert_activation_t activation;
  int64_t experts, capacity, blocks;
  bool withRows, withBiases;
};

// Executes the plan as Ffn.cu does: first grouped GEMM, activation kernel,
// down grouped GEMM, epilogue.
std::vector<float> planned(const FfnCase &c, int64_t hidden, int64_t ffn,
                           const std::vector<float> &in,
                           const std::vector<float> &wGate,
                           const std::vector<float> &wUp,
                           const std::vector<float> &wDown,
                           const std::vector<float> &b1,
                           const std::vector<float> &b2, const int32_t *rows) {
  FfnPlan plan =
      planFfn(c.experts, c.capacity, c.blocks, hidden, ffn, c.gated, rows);
  int64_t totalRows = c.experts * c.capacity;
  std::vector<float> h(totalRows * ffn, NAN), u(totalRows * ffn, NAN);
  std::vector<float> act(totalRows * ffn, NAN), y(totalRows * hidden, NAN);
  size_t firstCount = plan.first.size() - plan.upProblems;
  for (size_t i = 0; i < plan.first.size(); ++i) {
    bool up = i >= firstCount;
    runProblem(plan.first[i], up ? wUp.data() : wGate.data(), in.data(),
               up ? u.data() : h.data());
  }
  for (int64_t i = 0; i < totalRows * ffn; ++i) {
    int64_t row = i / ffn, f = i % ffn;
    if (!rowIsUsed(row, c.capacity, c.blocks, rows))
      continue;
    float value = h[i];
    if (!b1.empty())
      value += b1[(row / c.capacity) * ffn + f];
    value = activate(c.activation, value);
    if (c.gated)
      value *= u[i];
    act[i] = value;
  }
  for (const GemmProblem &p : plan.down)
    runProblem(p, wDown.data(), act.data(), y.data());
  std::vector<float> out(totalRows * hidden);
  for (int64_t i = 0; i < totalRows * hidden; ++i) {
    int64_t row = i / hidden, col = i % hidden;
    out[i] = 0;
    if (rowIsUsed(row, c.capacity, c.blocks, rows))
      out[i] =
          y[i] + (b2.empty() ? 0.0f : b2[(row / c.capacity) * hidden + col]);
  }
  return out;
}

class CudaFfnPlan : public ::testing::TestWithParam<FfnCase> {};

TEST_P(CudaFfnPlan, ExecutedPlanMatchesCpuExperts) {
  FfnCase c = GetParam();
  const int64_t hidden = 24, ffn = 20;
  std::mt19937 rng(11);
  int64_t totalRows = c.experts * c.capacity;
  std::vector<float> in = randomVector(rng, totalRows * hidden, 1.0f);
  std::vector<float> wGate = randomVector(rng, c.experts * ffn * hidden, 0.3f);
  std::vector<float> wUp = randomVector(rng, c.experts * ffn * hidden, 0.3f);
  std::vector<float> wDown = randomVector(rng, c.experts * hidden * ffn, 0.3f);
  std::vector<float> b1, b2;
  if (c.withBiases) {
    b1 = randomVector(rng, c.experts * ffn, 0.5f);
    b2 = randomVector(rng, c.experts * hidden, 0.5f);
  }
  std::vector<int32_t> rows;
  int64_t blockRows = c.capacity / c.blocks;
  if (c.withRows) {
    for (int64_t i = 0; i < c.experts * c.blocks; ++i)
      rows.push_back(static_cast<int32_t>(rng() % (blockRows + 1)));
    rows[0] = 0;                                   // an empty block
    rows.back() = static_cast<int32_t>(blockRows); // a full one
  }
  const int32_t *rowData = c.withRows ? rows.data() : nullptr;
  std::vector<float> got =
      planned(c, hidden, ffn, in, wGate, wUp, wDown, b1, b2, rowData);

  std::vector<float> want;
  World world(1, 1);
  world.run([&](moert_context_t ctx) {
    Buffer inBuf(ctx, in, MOERT_F32), outBuf(ctx, in.size() * 4);
    Buffer g(ctx, wGate, MOERT_F32), u(ctx, wUp, MOERT_F32),
        d(ctx, wDown, MOERT_F32);
    std::vector<float> dummy(1);
    Buffer bias1(ctx, c.withBiases ? b1 : dummy, MOERT_F32),
        bias2(ctx, c.withBiases ? b2 : dummy, MOERT_F32);
    std::vector<int32_t> rowsOrOne =
        c.withRows ? rows : std::vector<int32_t>{0};
    Buffer rowsBuf(ctx, rowsOrOne, MOERT_I32);
    moert_ffn_desc_t desc{};
    desc.kind = c.gated ? MOERT_FFN_GATED : MOERT_FFN_PLAIN;
    desc.activation = c.activation;
    desc.hidden = hidden;
    desc.ffn = ffn;
    desc.w_gate = g.view(MOERT_F32);
    desc.w_up = c.gated ? u.view(MOERT_F32) : moert_absent_view();
    desc.w_down = d.view(MOERT_F32);
    desc.b1 = c.withBiases ? bias1.view(MOERT_F32) : moert_absent_view();
    desc.b2 = c.withBiases ? bias2.view(MOERT_F32) : moert_absent_view();
    check(moert_buffer_fill(ctx, outBuf.view(MOERT_F32), totalRows * hidden,
                            NAN));
    check(moert_experts(
        ctx, &desc, inBuf.view(MOERT_F32), outBuf.view(MOERT_F32),
        c.withRows ? rowsBuf.view(MOERT_I32) : moert_absent_view(), c.experts,
        c.capacity, c.blocks));
    want = outBuf.download<float>(MOERT_F32, totalRows * hidden);
  });
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-4f * (1.0f + std::fabs(want[i])))
        << "element " << i << " (row " << i / hidden << ")";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaFfnPlan,
    ::testing::Values(FfnCase{true, MOERT_ACT_SILU, 4, 6, 1, true, false},
                      FfnCase{true, MOERT_ACT_GELU_TANH, 3, 6, 3, true, false},
                      FfnCase{true, MOERT_ACT_RELU, 2, 5, 1, false, false},
                      FfnCase{false, MOERT_ACT_GELU, 4, 8, 2, true, true},
                      FfnCase{false, MOERT_ACT_RELU, 1, 7, 1, false, true},
                      FfnCase{false, MOERT_ACT_SILU, 2, 4, 4, true, false}));

TEST(CudaLayout, LinearProblemMatchesCpuRouter) {
  const int64_t tokens = 9, hidden = 16, experts = 5;
  std::mt19937 rng(5);
  std::vector<float> x = randomVector(rng, tokens * hidden, 1.0f);
  std::vector<float> wg = randomVector(rng, experts * hidden, 1.0f);
  std::vector<float> got(tokens * experts, NAN);
  runProblem(linearProblem(tokens, experts, hidden), wg.data(), x.data(),
             got.data());
  std::vector<float> want;
  World world(1, 1);
  world.run([&](moert_context_t ctx) {
    Buffer xb(ctx, x, MOERT_F32), wb(ctx, wg, MOERT_F32),
        out(ctx, got.size() * 4);
    check(moert_router(ctx, xb.view(MOERT_F32), wb.view(MOERT_F32),
                       moert_absent_view(), out.view(MOERT_F32), tokens, hidden,
                       experts));
    want = out.download<float>(MOERT_F32, tokens * experts);
  });
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-4f * (1.0f + std::fabs(want[i])));
}

// moert_fused_experts' plan executed as Ffn.cu's fusedExperts does: one
// grouped GEMM over packed [gate | up] weights (the shared expert as one more
// problem), the packed act(gate) * up pass, one grouped GEMM for down, the
// epilogue; compared with the CPU's moert_experts and moert_dense_ffn on the
// unpacked weights.
struct PackedCase {
  int64_t experts, capacity, blocks;
  bool withRows;
  int64_t sharedTokens, sharedFfn;
};

// [E, 2F, H] from [E, F, H] gate and up.
std::vector<float> packGateUp(const std::vector<float> &gate,
                              const std::vector<float> &up, int64_t experts,
                              int64_t panel) {
  std::vector<float> packed;
  for (int64_t e = 0; e < experts; ++e) {
    packed.insert(packed.end(), gate.begin() + e * panel,
                  gate.begin() + (e + 1) * panel);
    packed.insert(packed.end(), up.begin() + e * panel,
                  up.begin() + (e + 1) * panel);
  }
  return packed;
}

// act(gu[r, f]) * gu[r, F + f] on used rows (packedActivationKernel).
std::vector<float> packedActivation(const std::vector<float> &gateUp,
                                    int64_t ffn, int64_t capacity,
                                    int64_t blocks, const int32_t *rows,
                                    int64_t totalRows) {
  std::vector<float> act(totalRows * ffn, NAN);
  for (int64_t i = 0; i < totalRows * ffn; ++i) {
    int64_t row = i / ffn, f = i % ffn;
    if (rowIsUsed(row, capacity, blocks, rows))
      act[i] = activate(MOERT_ACT_SILU, gateUp[row * 2 * ffn + f]) *
               gateUp[row * 2 * ffn + ffn + f];
  }
  return act;
}

class CudaPackedPlan : public ::testing::TestWithParam<PackedCase> {};

TEST_P(CudaPackedPlan, ExecutedPlanMatchesCpuExpertsAndDenseFfn) {
  PackedCase c = GetParam();
  const int64_t hidden = 16, ffn = 12;
  const int64_t tokens = c.sharedTokens, sFfn = c.sharedFfn;
  std::mt19937 rng(13);
  int64_t totalRows = c.experts * c.capacity;
  auto in = randomVector(rng, totalRows * hidden, 1.0f);
  auto wGate = randomVector(rng, c.experts * ffn * hidden, 0.3f);
  auto wUp = randomVector(rng, c.experts * ffn * hidden, 0.3f);
  auto wDown = randomVector(rng, c.experts * hidden * ffn, 0.3f);
  auto sx = randomVector(rng, std::max<int64_t>(tokens, 1) * hidden, 1.0f);
  auto sGate = randomVector(rng, std::max<int64_t>(sFfn, 1) * hidden, 0.3f);
  auto sUp = randomVector(rng, std::max<int64_t>(sFfn, 1) * hidden, 0.3f);
  auto sDown = randomVector(rng, hidden * std::max<int64_t>(sFfn, 1), 0.3f);
  std::vector<int32_t> rows;
  int64_t blockRows = c.capacity / c.blocks;
  if (c.withRows) {
    for (int64_t i = 0; i < c.experts * c.blocks; ++i)
      rows.push_back(static_cast<int32_t>(rng() % (blockRows + 1)));
    rows[0] = 0;
    rows.back() = static_cast<int32_t>(blockRows);
  }
  const int32_t *rowData = c.withRows ? rows.data() : nullptr;

  PackedFfnPlan plan = planPackedFfn(c.experts, c.capacity, c.blocks, hidden,
                                     ffn, rowData, tokens, sFfn);
  std::vector<float> packed = packGateUp(wGate, wUp, c.experts, ffn * hidden);
  std::vector<float> sPacked = packGateUp(sGate, sUp, 1, sFfn * hidden);
  std::vector<float> gu(totalRows * 2 * ffn, NAN),
      sGu(tokens * 2 * sFfn, NAN);
  for (const PackedProblem &p : plan.gateUp)
    runProblem(p.gemm, p.shared ? sPacked.data() : packed.data(),
               p.shared ? sx.data() : in.data(),
               p.shared ? sGu.data() : gu.data());
  auto act = packedActivation(gu, ffn, c.capacity, c.blocks, rowData,
                              totalRows);
  auto sAct = packedActivation(sGu, sFfn, tokens, 1, nullptr, tokens);
  std::vector<float> y(totalRows * hidden, NAN), sY(tokens * hidden, NAN);
  for (const PackedProblem &p : plan.down)
    runProblem(p.gemm, p.shared ? sDown.data() : wDown.data(),
               p.shared ? sAct.data() : act.data(),
               p.shared ? sY.data() : y.data());
  for (int64_t i = 0; i < totalRows * hidden; ++i)
    if (!rowIsUsed(i / hidden, c.capacity, c.blocks, rowData))
      y[i] = 0; // the epilogue's unused rows

  std::vector<float> want, sWant;
  World world(1, 1);
  world.run([&](moert_context_t ctx) {
    Buffer inBuf(ctx, in, MOERT_F32), out(ctx, in.size() * 4 + 4);
    Buffer g(ctx, wGate, MOERT_F32), u(ctx, wUp, MOERT_F32),
        d(ctx, wDown, MOERT_F32);
    std::vector<int32_t> rowsOrOne = c.withRows ? rows : std::vector<int32_t>{0};
    Buffer rowsBuf(ctx, rowsOrOne, MOERT_I32);
    moert_ffn_desc_t desc{};
    desc.kind = MOERT_FFN_GATED;
    desc.activation = MOERT_ACT_SILU;
    desc.hidden = hidden;
    desc.ffn = ffn;
    desc.w_gate = g.view(MOERT_F32);
    desc.w_up = u.view(MOERT_F32);
    desc.w_down = d.view(MOERT_F32);
    desc.b1 = desc.b2 = moert_absent_view();
    check(moert_experts(
        ctx, &desc, inBuf.view(MOERT_F32), out.view(MOERT_F32),
        c.withRows ? rowsBuf.view(MOERT_I32) : moert_absent_view(), c.experts,
        c.capacity, c.blocks));
    want = out.download<float>(MOERT_F32, totalRows * hidden);
    if (tokens == 0)
      return;
    Buffer xBuf(ctx, sx, MOERT_F32), sOut(ctx, sx.size() * 4);
    Buffer sg(ctx, sGate, MOERT_F32), su(ctx, sUp, MOERT_F32),
        sd(ctx, sDown, MOERT_F32);
    desc.ffn = sFfn;
    desc.w_gate = sg.view(MOERT_F32);
    desc.w_up = su.view(MOERT_F32);
    desc.w_down = sd.view(MOERT_F32);
    check(moert_dense_ffn(ctx, &desc, xBuf.view(MOERT_F32), sOut.view(MOERT_F32),
                          tokens));
    sWant = sOut.download<float>(MOERT_F32, tokens * hidden);
  });
  ASSERT_EQ(y.size(), want.size());
  for (size_t i = 0; i < y.size(); ++i)
    ASSERT_NEAR(y[i], want[i], 1e-4f * (1.0f + std::fabs(want[i])))
        << "element " << i << " (row " << i / hidden << ")";
  ASSERT_EQ(sY.size(), sWant.size());
  for (size_t i = 0; i < sY.size(); ++i)
    ASSERT_NEAR(sY[i], sWant[i], 1e-4f * (1.0f + std::fabs(sWant[i])))
        << "shared element " << i;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaPackedPlan,
    ::testing::Values(PackedCase{4, 6, 1, true, 0, 0},
                      PackedCase{3, 6, 3, true, 7, 20},
                      PackedCase{2, 5, 1, false, 5, 12},
                      PackedCase{2, 0, 1, false, 3, 8}));

} // namespace
