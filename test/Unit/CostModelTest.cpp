//===- CostModelTest.cpp - the cost model against hand-computed numbers ---===//

#include "passes/Parallelism/CostModel.h"

#include <gtest/gtest.h>

using namespace mlir::moe::cost;

namespace {

Mesh h100Nodes(int64_t nodes) {
  return Mesh{nodes, 8, int64_t(80) << 30, 3350.0, 989.0, 450.0, 50.0};
}

/// Mixtral-8x7B's MoE layer: 8 SwiGLU experts of 4096 -> 14336, top-2,
/// dropless, bf16.
LayerShape mixtral() {
  LayerShape layer;
  layer.hidden = 4096;
  layer.bytesPerElement = 2;
  layer.experts = 8;
  layer.topK = 2;
  layer.expertFfn = 14336;
  layer.replicatedBytes = 8 * 4096 * 2;
  return layer;
}

TEST(CostModel, Capacity) {
  LayerShape layer = mixtral();
  // Dropless is priced as balanced: ceil(2 * 30 / 8) = 8.
  EXPECT_EQ(expectedCapacity(layer, 30), 8);
  // ceil(2 * 30 / 8 * 1.25) = ceil(9.375) = 10.
  layer.capacityFactor = 1.25;
  layer.minCapacity = 4;
  EXPECT_EQ(expectedCapacity(layer, 30), 10);
  // max(4, ceil(2 * 3 / 8 * 1.25)) = max(4, 1) = 4.
  EXPECT_EQ(expectedCapacity(layer, 3), 4);
  layer.experts = 0;
  EXPECT_EQ(expectedCapacity(layer, 30), 0);
}

TEST(CostModel, MixtralOnOneNode) {
  Estimate e = estimate(mixtral(), h100Nodes(1), Plan{1, 8, 1}, 4096);
  // C = 2 * 4096 / 8 = 1024 rows; one expert per rank.
  EXPECT_EQ(e.capacity, 1024);
  // Each of 7 peers gets 1 expert x 1024 rows x 4096 x 2 B = 8 MiB.
  EXPECT_EQ(e.allToAllBytes, 7 * 8388608);
  // One expert: 3 x 14336 x 4096 x 2 B; plus the 8 x 4096 router.
  EXPECT_EQ(e.expertWeightBytes, 352321536);
  EXPECT_EQ(e.weightBytes, 352321536 + 65536);
  // 8 ranks x 4096 tokens x 2 choices / 8 experts = 8192 rows, each
  // 2 x 3 x 4096 x 14336 flops, plus the router GEMM 2 x 4096 x 8 x 4096.
  EXPECT_DOUBLE_EQ(e.flops, 2886486458368.0);
  // Two exchanges inside the node: 7 x 3 us + 7 x 8 MiB / 450 GB/s each.
  EXPECT_NEAR(e.allToAllSeconds, 302.97891555e-6, 1e-12);
  // Compute bound: 2.886e12 / 989e12 s.
  EXPECT_NEAR(e.computeSeconds, 2918.5909589e-6, 1e-9);
  EXPECT_NEAR(e.seconds, e.allToAllSeconds + e.computeSeconds, 1e-15);
}

TEST(CostModel, FlatAndHierarchicalAcrossTwoNodes) {
  LayerShape layer = mixtral();
  layer.experts = 16;
  Mesh mesh = h100Nodes(2);
  // C = 2 * 4096 / 16 = 512; per peer 512 x 4096 x 2 B = 4 MiB.
  double perPeer = 4194304.0;
  Estimate flat = estimate(layer, mesh, Plan{1, 16, 1, AllToAll::flat}, 4096);
  Estimate hier =
      estimate(layer, mesh, Plan{1, 16, 1, AllToAll::hierarchical}, 4096);
  // Flat: 7 NVLink and 8 NIC messages, links side by side.
  double flatOne = 7 * 3e-6 + 8 * 10e-6 + 8 * perPeer / 50e9;
  // Hierarchical: 7 NVLink messages of 2 node columns, a local transform of
  // 16 blocks (read + write), then one NIC message of 8 blocks.
  double hierOne = 7 * 3e-6 + 7 * 2 * perPeer / 450e9 +
                   2 * 16 * perPeer / 3350e9 + 10e-6 + 8 * perPeer / 50e9;
  EXPECT_NEAR(flat.allToAllSeconds, 2 * flatOne, 1e-12);
  EXPECT_NEAR(hier.allToAllSeconds, 2 * hierOne, 1e-12);
  // Large messages: the extra intra-node pass does not pay.
  EXPECT_LT(flat.allToAllSeconds, hier.allToAllSeconds);
  // A decode step: latency dominates and hierarchical wins.
  EXPECT_GT(
      estimate(layer, mesh, Plan{1, 16, 1, AllToAll::flat}, 8).allToAllSeconds,
      estimate(layer, mesh, Plan{1, 16, 1, AllToAll::hierarchical}, 8)
          .allToAllSeconds);
}

TEST(CostModel, ExpertSlicingHalvesWeightsAndDoublesTraffic) {
  Mesh mesh = h100Nodes(2);
  Estimate replicated = estimate(mixtral(), mesh, Plan{2, 8, 1}, 8);
  Estimate sliced = estimate(mixtral(), mesh, Plan{1, 8, 2}, 8);
  EXPECT_EQ(sliced.expertWeightBytes * 2, replicated.expertWeightBytes);
  // Group of 16 instead of 8: 15 peers instead of 7, same rows per peer.
  EXPECT_EQ(replicated.allToAllBytes, 7 * 1 * 2 * 4096 * 2);
  EXPECT_EQ(sliced.allToAllBytes, 15 * 1 * 2 * 4096 * 2);
  // Decode is bound by weight reads: slicing is faster.
  EXPECT_LT(sliced.computeSeconds, replicated.computeSeconds);
}

TEST(CostModel, PlanChecks) {
  LayerShape layer = mixtral();
  EXPECT_EQ(checkPlan(layer, h100Nodes(1), Plan{1, 3, 1}).value_or(""),
            "ep 3 x tp 1 does not divide the 8 ranks of the 1x8 mesh");
  EXPECT_EQ(checkPlan(layer, h100Nodes(2), Plan{1, 16, 1}).value_or(""),
            "ep 16 does not divide the 8 experts");
  layer.expertFfn = 14335;
  EXPECT_EQ(checkPlan(layer, h100Nodes(2), Plan{1, 8, 2}).value_or(""),
            "tp 2 does not divide the expert FFN width 14335");
  EXPECT_EQ(
      checkPlan(mixtral(), h100Nodes(1), Plan{1, 8, 1, AllToAll::hierarchical})
          .value_or(""),
      "a hierarchical all-to-all needs a group spanning nodes (group 8, "
      "8 GPUs per node)");
  EXPECT_FALSE(checkPlan(mixtral(), h100Nodes(2), Plan{2, 8, 1}));
  // ep 8 on 2x8: tp 1 (flat only, inside a node) and tp 2 (flat or
  // hierarchical, spanning both nodes).
  EXPECT_EQ(candidatePlans(mixtral(), h100Nodes(2), 8, std::nullopt).size(),
            3u);
}

TEST(CostModel, PyramidOn128Ranks) {
  // DeepSpeed-MoE's pyramid: 32, 64 and 128 experts on 16 x 8 ranks.
  std::vector<LayerShape> layers;
  for (int64_t experts : {32, 64, 128}) {
    LayerShape layer;
    layer.hidden = 1024;
    layer.experts = experts;
    layer.topK = 1;
    layer.capacityFactor = 1.0;
    layer.minCapacity = 4;
    layer.expertFfn = 4096;
    layer.expertGated = false;
    layer.expertBias = true;
    layer.denseFfn = 4096;
    layer.denseGated = false;
    layer.denseBias = true;
    layers.push_back(layer);
  }
  PlanChoice choice =
      choosePlans(layers, h100Nodes(16), Policy::throughput, 4096, {});
  ASSERT_FALSE(choice.failedLayer) << choice.error;
  EXPECT_EQ(choice.plans[0].ep, 32);
  EXPECT_EQ(choice.plans[0].dp, 4);
  EXPECT_EQ(choice.plans[1].ep, 64);
  EXPECT_EQ(choice.plans[1].dp, 2);
  EXPECT_EQ(choice.plans[2].ep, 128);
  EXPECT_EQ(choice.plans[2].dp, 1);
  for (const Plan &plan : choice.plans)
    EXPECT_EQ(plan.tp, 1);
}

TEST(CostModel, MemoryForcesSlicing) {
  // Weights of one Mixtral expert (336 MiB) do not fit in 300 MiB; slicing
  // each expert over 2 ranks (168 MiB) does.
  Mesh mesh = h100Nodes(2);
  mesh.memoryBytes = 300ll << 20;
  PlanChoice choice = choosePlans({mixtral()}, mesh, Policy::throughput, 8, {});
  ASSERT_FALSE(choice.failedLayer) << choice.error;
  EXPECT_EQ(choice.plans[0].tp, 2);
  mesh.memoryBytes = 100ll << 20;
  choice = choosePlans({mixtral()}, mesh, Policy::throughput, 8, {});
  ASSERT_TRUE(choice.failedLayer);
  EXPECT_EQ(*choice.failedLayer, 0u);
}

} // namespace

// Mixtral-8x7B attention: 32 heads, 8 kv heads of 128, hidden 4096, bf16.
TEST(CostModel, AttentionSplitsItsHeads) {
  LayerShape layer;
  layer.hidden = 4096;
  layer.bytesPerElement = 2;
  layer.attentionHeads = 32;
  layer.attentionKvHeads = 8;
  layer.headDim = 128;
  Mesh mesh = h100Nodes(1);
  Estimate dp = estimate(layer, mesh, Plan{8, 1, 1}, 512);
  Estimate tp = estimate(layer, mesh, Plan{4, 1, 2}, 512);
  // q and o [4096, 4096], k and v [1024, 4096], bf16.
  EXPECT_EQ(dp.weightBytes, 2 * (4096 + 1024) * 4096 * 2);
  EXPECT_EQ(tp.weightBytes, dp.weightBytes / 2);
  EXPECT_EQ(dp.kvCacheBytesPerToken, 2 * 1024 * 2);
  EXPECT_EQ(tp.kvCacheBytesPerToken, 1024 * 2);
  // Projections 4 S H (q + kv), scores and values 4 S^2 q.
  EXPECT_DOUBLE_EQ(dp.flops,
                   4.0 * 512 * 4096 * (4096 + 1024) + 4.0 * 512 * 512 * 4096);
  EXPECT_DOUBLE_EQ(tp.flops, dp.flops / 2);
  EXPECT_EQ(dp.denseCommSeconds, 0.0);
  EXPECT_GT(tp.denseCommSeconds, 0.0); // the all-reduce of the outputs
}

TEST(CostModel, DuplicateTokenDroppingHalvesTheExchange) {
  // Mixtral's layer after attention split over tp 2: each rank of a pair
  // dispatches half of the pair's 4096 tokens, then the pair all-gathers.
  Mesh mesh = h100Nodes(1);
  Plan all{1, 8, 1};
  Plan share = all;
  share.tokenShare = 2;
  Estimate whole = estimate(mixtral(), mesh, all, 4096);
  Estimate half = estimate(mixtral(), mesh, share, 4096);
  EXPECT_EQ(half.capacity, whole.capacity / 2);
  EXPECT_EQ(half.allToAllBytes, whole.allToAllBytes / 2);
  // 2 x 3 x 4096 x 14336 flops per row: half the rows, half the router.
  EXPECT_DOUBLE_EQ(half.flops, whole.flops / 2);
  // The all-gather: 3 us + 2048 x 4096 x 2 B / 450 GB/s.
  EXPECT_NEAR(half.denseCommSeconds, 3e-6 + 2048.0 * 4096 * 2 / 450e9, 1e-12);
  EXPECT_LT(half.seconds, whole.seconds);
}

// DeepSeek-V3 multi-head latent attention: 128 heads, q_lora_rank 1536,
// kv_lora_rank 512, nope 128 + rope 64, v 128, hidden 7168, bf16.
TEST(CostModel, LatentAttentionCachesTheLatent) {
  LayerShape layer;
  layer.hidden = 7168;
  layer.bytesPerElement = 2;
  layer.attentionHeads = 128;
  layer.attentionKvHeads = 128;
  layer.headDim = 192;
  layer.qLoraRank = 1536;
  layer.latentRank = 512;
  layer.ropeDim = 64;
  layer.vHeadDim = 128;
  Mesh mesh = h100Nodes(1);
  const int64_t S = 256;
  Estimate e = estimate(layer, mesh, Plan{8, 1, 1}, S);
  // q_a [1536, 7168] + its norm, q_b [24576, 1536], kv_a [576, 7168] + its
  // norm, kv_b [32768, 512], o [7168, 16384]: DeepSeek-V3's 187 M per layer.
  int64_t q = 1536 * 7168 + 1536 + 24576 * 1536;
  int64_t kvA = 576 * 7168 + 512, kvB = 32768 * 512, o = 7168 * 16384;
  EXPECT_EQ(e.weightBytes, 2 * (q + kvA + kvB + o));
  // The compressed cache: 512 + 64 values per position, not 128 x (192 +
  // 128).
  EXPECT_EQ(e.kvCacheBytesPerToken, (512 + 64) * 2);
  // Projections, the absorption (W_UK, W_UV) and the attention over the
  // latent rows (scores rank + rope wide, values rank wide).
  EXPECT_DOUBLE_EQ(e.flops, 2.0 * S * (q + kvA + o) +
                                2.0 * S * 128 * (128 + 128) * 512 +
                                2.0 * S * S * 128 * (2 * 512 + 64));
  EXPECT_EQ(e.denseCommSeconds, 0.0);
}
