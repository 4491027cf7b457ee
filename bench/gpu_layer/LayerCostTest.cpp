//===- bench/gpu_layer/LayerCostTest.cpp - Bytes, flops, floors -----------===//
//
// Expected values computed by hand (Python) from the rules in LayerCost.h:
// bytes = 2 * (router E*H + touched * (3 or 2) * H*F [+ plain biases, shared,
// residual MLP]) + 2 * 2*T*H [+ 4*E correction bias], flops = 2*T*H*E +
// 2 * kept * (3 or 2) * H*F [+ shared, residual MLP, coefficients].

#include "bench/gpu_layer/LayerCost.h"

#include <gtest/gtest.h>

using namespace moe::bench;

namespace {

const MoeLayerShape &shape(const std::string &name) {
  static const std::vector<MoeLayerShape> shapes = benchmarkShapes();
  for (const MoeLayerShape &s : shapes)
    if (s.name == name)
      return s;
  ADD_FAILURE() << "no shape " << name;
  return shapes.front();
}

TEST(LayerCost, Shapes) {
  std::vector<MoeLayerShape> shapes = benchmarkShapes();
  ASSERT_EQ(shapes.size(), 4u);
  const MoeLayerShape &ds = shape("DeepSeek-V3");
  EXPECT_EQ(ds.experts, 256);
  EXPECT_EQ(ds.hidden, 7168);
  EXPECT_EQ(ds.ffn, 2048);
  EXPECT_EQ(ds.topK, 8);
  EXPECT_EQ(ds.groups, 8);
  EXPECT_EQ(ds.keptGroups, 4);
  EXPECT_EQ(ds.sharedExperts, 1);
  EXPECT_EQ(shape("Qwen3-30B-A3B").experts, 128);
  EXPECT_EQ(shape("Qwen3-30B-A3B").ffn, 768);
  EXPECT_EQ(benchmarkTokens(),
            (std::vector<int64_t>{1, 8, 64, 512, 4096, 8192}));
}

TEST(LayerCost, MixtralOneToken) {
  LayerCost c = layerCost(shape("Mixtral-8x7B"), 1);
  EXPECT_EQ(c.expertsTouched, 2);
  EXPECT_EQ(c.bytes, 704724992);
  EXPECT_EQ(c.flops, 704708608);
}

TEST(LayerCost, DeepSeekEveryExpertTouched) {
  LayerCost c = layerCost(shape("DeepSeek-V3"), 8192);
  EXPECT_EQ(c.expertsTouched, 256);
  EXPECT_EQ(c.bytes, 22875210752);
  EXPECT_EQ(c.flops, 6524055322624);
}

TEST(LayerCost, PrMoePlainWithResidualMlp) {
  LayerCost c = layerCost(shape("PR-MoE-1.3B"), 64);
  EXPECT_EQ(c.expertsTouched, 64);
  EXPECT_EQ(c.bytes, 4364464132);
  EXPECT_EQ(c.flops, 8624013312);
}

TEST(LayerCost, RoutingFromCounts) {
  Routing r = measuredRouting({0, 3, 0, 5});
  EXPECT_EQ(r.expertRows, 8);
  EXPECT_EQ(r.expertsTouched, 2);
  Routing a = assumedRouting(shape("Qwen3-30B-A3B"), 8);
  EXPECT_EQ(a.expertRows, 64);
  EXPECT_EQ(a.expertsTouched, 64);
  EXPECT_EQ(assumedRouting(shape("Qwen3-30B-A3B"), 64).expertsTouched, 128);
}

// A capacity-factor run: 12 of the 512 choices dropped, 120 experts touched
// (20 with 5 choices, 100 with 4): bytes 2 * (128*2048 + 120*3*2048*768)
// + 4*64*2048, flops 2*64*2048*128 + 2*500*3*2048*768.
TEST(LayerCost, MeasuredRoutingCountsKeptRowsOnly) {
  std::vector<int32_t> counts(128, 0);
  for (int e = 0; e < 120; ++e)
    counts[e] = e < 20 ? 5 : 4;
  LayerCost c = layerCost(shape("Qwen3-30B-A3B"), 64, measuredRouting(counts));
  EXPECT_EQ(c.expertsTouched, 120);
  EXPECT_EQ(c.bytes, 1133510656);
  EXPECT_EQ(c.flops, 4752146432);
  LayerCost all = layerCost(shape("Qwen3-30B-A3B"), 64); // dropless, all 128
  EXPECT_EQ(all.bytes, 1209008128);
  EXPECT_EQ(all.flops, 4865392640);
}

// DeepSeek-V3 at T = 1 captured with C = 1: all 256 experts, 256 rows, so
// bytes 2 * (256*7168 + 256*3*7168*2048 + 3*7168*2048) + 4*7168 + 4*256 and
// flops 2*7168*256 + 2*256*3*7168*2048 + 2*3*7168*2048; the direct forward
// (8 experts, 8 rows) by the same rules.
TEST(LayerCost, CapturedForwardRunsEveryRow) {
  const MoeLayerShape &ds = shape("DeepSeek-V3");
  Routing r = capturedRouting(ds, 1);
  EXPECT_EQ(r.expertRows, 256);
  EXPECT_EQ(r.expertsTouched, 256);
  LayerCost c = layerCost(ds, 1, r);
  EXPECT_EQ(c.bytes, 22640358400);
  EXPECT_EQ(c.flops, 22640328704);
  EXPECT_EQ(layerCost(ds, 1).bytes, 796423168);
  EXPECT_EQ(layerCost(ds, 1).flops, 796393472);
}

TEST(LayerCost, FloorIsTheSlowerRoof) {
  LayerCost c;
  c.bytes = 1000;
  c.flops = 4000;
  EXPECT_DOUBLE_EQ(rooflineFloorSeconds(c, 100.0, 1000.0), 10.0); // memory
  EXPECT_DOUBLE_EQ(rooflineFloorSeconds(c, 1000.0, 100.0), 40.0); // compute
}

TEST(LayerCost, TableHasEveryShapeAndTokenCount) {
  std::string table = costTable(benchmarkShapes(), benchmarkTokens());
  size_t rows = 0;
  for (char ch : table)
    rows += ch == '\n';
  EXPECT_EQ(rows, 1 + 4 * 6);
  EXPECT_NE(table.find("Mixtral-8x7B"), std::string::npos);
  EXPECT_NE(table.find("0.705      704.725"), std::string::npos)
      << table; // Mixtral at T=1: GFLOP, MB
}

} // namespace
