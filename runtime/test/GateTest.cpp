//===- runtime/test/GateTest.cpp - Gate semantics edge cases --------------===//

#include "TestUtil.h"

#include <cfloat>

using namespace moert;
using namespace moert::test;

namespace {

struct GateResult {
  std::vector<int32_t> ids, slots, counts;
  std::vector<float> weights;
  int64_t capacity = -1;
};

// Runs moert_gate through the C ABI on one rank, then its four stage calls,
// which must agree exactly; outputs are poisoned first.
GateResult runGate(const moert_gate_config_t &cfg,
                   const std::vector<float> &logits,
                   const std::vector<float> &bias = {}) {
  int64_t experts = cfg.experts, tokens = logits.size() / experts;
  int64_t choices = tokens * cfg.top_k;
  GateResult result;
  onOneRank([&](moert_context_t ctx) {
    Buffer logitBuf(ctx, logits, MOERT_F32);
    Buffer biasBuf(ctx, bias.empty() ? std::vector<float>{0} : bias, MOERT_F32);
    Buffer ids(ctx, choices * 4 + 4), weights(ctx, choices * 4 + 4),
        slots(ctx, choices * 4 + 4), counts(ctx, experts * 4);
    check(moert_buffer_fill(ctx, ids.view(MOERT_I32), choices, -77));
    check(moert_buffer_fill(ctx, weights.view(MOERT_F32), choices, NAN));
    check(moert_buffer_fill(ctx, slots.view(MOERT_I32), choices, -77));
    check(moert_buffer_fill(ctx, counts.view(MOERT_I32), experts, -77));
    check(moert_gate(
        ctx, &cfg, logitBuf.view(MOERT_F32),
        bias.empty() ? moert_absent_view() : biasBuf.view(MOERT_F32), tokens,
        ids.view(MOERT_I32), weights.view(MOERT_F32), slots.view(MOERT_I32),
        counts.view(MOERT_I32), &result.capacity));
    result.ids = ids.download<int32_t>(MOERT_I32, choices);
    result.weights = weights.download<float>(MOERT_F32, choices);
    result.slots = slots.download<int32_t>(MOERT_I32, choices);
    result.counts = counts.download<int32_t>(MOERT_I32, experts);

    // The unfused lowering's stage calls give exactly the same outputs.
    Buffer scores(ctx, tokens * experts * 4 + 4);
    check(
        moert_buffer_fill(ctx, scores.view(MOERT_F32), tokens * experts, NAN));
    check(moert_buffer_fill(ctx, ids.view(MOERT_I32), choices, -77));
    check(moert_buffer_fill(ctx, weights.view(MOERT_F32), choices, NAN));
    check(moert_buffer_fill(ctx, slots.view(MOERT_I32), choices, -77));
    check(moert_buffer_fill(ctx, counts.view(MOERT_I32), experts, -77));
    int64_t capacity = -1;
    check(moert_gate_scores(ctx, &cfg, logitBuf.view(MOERT_F32), tokens,
                            scores.view(MOERT_F32)));
    check(moert_gate_select(
        ctx, &cfg, scores.view(MOERT_F32),
        bias.empty() ? moert_absent_view() : biasBuf.view(MOERT_F32), tokens,
        ids.view(MOERT_I32), weights.view(MOERT_F32)));
    check(moert_gate_slots(
        ctx, &cfg, ids.view(MOERT_I32), weights.view(MOERT_F32), tokens,
        slots.view(MOERT_I32), counts.view(MOERT_I32), &capacity));
    check(moert_gate_normalize(ctx, &cfg, slots.view(MOERT_I32), tokens,
                               weights.view(MOERT_F32)));
    EXPECT_EQ(capacity, result.capacity);
    EXPECT_EQ(ids.download<int32_t>(MOERT_I32, choices), result.ids);
    EXPECT_EQ(weights.download<float>(MOERT_F32, choices), result.weights);
    EXPECT_EQ(slots.download<int32_t>(MOERT_I32, choices), result.slots);
    EXPECT_EQ(counts.download<int32_t>(MOERT_I32, experts), result.counts);
  });
  return result;
}

moert_gate_config_t config(int32_t experts, int32_t topK) {
  moert_gate_config_t cfg;
  moert_gate_config_init(&cfg, experts, topK);
  return cfg;
}

using Ints = std::vector<int32_t>;

TEST(Gate, TiesGoToTheLowerExpert) {
  auto cfg = config(4, 2);
  GateResult r = runGate(cfg, {0, 0, 0, 0, /**/ 1, 3, 3, 0, /**/ 2, 1, 2, 2});
  EXPECT_EQ(r.ids, (Ints{0, 1, 1, 2, 0, 2}));
  EXPECT_FLOAT_EQ(r.weights[0], 0.25f);
  EXPECT_EQ(r.weights[2], r.weights[3]);
}

TEST(Gate, SoftmaxSelectedSumsToOne) {
  auto cfg = config(5, 3);
  cfg.norm = MOERT_NORM_SELECTED;
  GateResult r = runGate(cfg, {0.5f, -1, 2, 0.25f, 1});
  EXPECT_EQ(r.ids, (Ints{2, 4, 0}));
  EXPECT_NEAR(r.weights[0] + r.weights[1] + r.weights[2], 1.0f, 1e-6);
  EXPECT_NEAR(r.weights[0] / r.weights[1], std::exp(1.0f), 1e-5);
}

TEST(Gate, AllNegativeLogitsGiveNoNaNAndNoDrops) {
  for (auto score : {MOERT_SCORE_SOFTMAX, MOERT_SCORE_SIGMOID}) {
    for (auto norm : {MOERT_NORM_NONE, MOERT_NORM_SELECTED, MOERT_NORM_KEPT}) {
      auto cfg = config(4, 2);
      cfg.score_func = score;
      cfg.norm = norm;
      cfg.capacity_factor = 2.0f; // C = ceil(2*3/4*2) = 3: room for all
      std::vector<float> logits = {-1e4f,  -2e4f,  -3e4f,  -4e4f, //
                                   -50,    -60,    -70,    -80,   //
                                   -1e30f, -1e30f, -1e30f, -1e30f};
      GateResult r = runGate(cfg, logits);
      EXPECT_EQ(r.capacity, 3);
      for (size_t i = 0; i < r.weights.size(); ++i) {
        EXPECT_FALSE(std::isnan(r.weights[i])) << i;
        EXPECT_GE(r.slots[i], 0) << "spurious drop of choice " << i;
      }
      EXPECT_EQ(r.ids, (Ints{0, 1, 0, 1, 0, 1}));
      if (score == MOERT_SCORE_SOFTMAX && norm != MOERT_NORM_NONE)
        EXPECT_NEAR(r.weights[0] + r.weights[1], 1.0f, 1e-6);
    }
  }
}

TEST(Gate, DroplessCapacityIsTheLargestCount) {
  auto cfg = config(4, 1);
  GateResult r = runGate(cfg, {5, 0, 0, 0, //
                               5, 0, 0, 0, //
                               0, 0, 5, 0, //
                               5, 0, 0, 0, //
                               0, 5, 0, 0});
  EXPECT_EQ(r.ids, (Ints{0, 0, 2, 0, 1}));
  EXPECT_EQ(r.counts, (Ints{3, 1, 1, 0})); // expert 3 gets no tokens
  EXPECT_EQ(r.slots, (Ints{0, 1, 0, 2, 0}));
  EXPECT_EQ(r.capacity, 3);
}

TEST(Gate, StaticCapacityKeepsEveryChoiceWithoutReadingCounts) {
  const std::vector<float> logits = {5, 0, 0, 0, //
                                     5, 0, 0, 0, //
                                     0, 0, 5, 0, //
                                     5, 0, 0, 0, //
                                     0, 5, 0, 0};
  auto cfg = config(4, 1);
  GateResult dynamic = runGate(cfg, logits);
  for (int64_t bound : {5, 16}) {
    cfg.static_capacity = bound;
    GateResult fixed = runGate(cfg, logits);
    EXPECT_EQ(fixed.capacity, bound);
    EXPECT_EQ(fixed.ids, dynamic.ids);
    EXPECT_EQ(fixed.slots, dynamic.slots);
    EXPECT_EQ(fixed.counts, dynamic.counts);
    EXPECT_EQ(fixed.weights, dynamic.weights);
  }
}

TEST(Gate, StaticCapacityMustHoldEveryTokenOfADroplessGate) {
  onOneRank([](moert_context_t ctx) {
    Buffer scratch(ctx, 4096);
    moert_view_t f = scratch.view(MOERT_F32), i = scratch.view(MOERT_I32);
    int64_t capacity;
    auto cfg = config(4, 2);
    cfg.static_capacity = 3;
    EXPECT_MOERT_ERROR(
        moert_gate(ctx, &cfg, f, moert_absent_view(), 4, i, f, i, i, &capacity),
        MOERT_INVALID_ARGUMENT, "static_capacity 3 is below the 4 tokens");
    cfg.capacity_factor = 1.25;
    EXPECT_MOERT_ERROR(
        moert_gate(ctx, &cfg, f, moert_absent_view(), 2, i, f, i, i, &capacity),
        MOERT_INVALID_ARGUMENT, "static_capacity bounds a dropless gate");
  });
}

// Three tokens, three experts, k = 2, capacity 2: expert 0 is wanted by all
// three tokens (as second choice of token 0, first choice of tokens 1, 2).
const std::vector<float> overflowLogits = {2, 3, 0, //
                                           3, 0, 2, //
                                           3, 2, 0};

moert_gate_config_t overflowConfig(moert_drop_order_t order) {
  auto cfg = config(3, 2);
  cfg.capacity_factor = 1.0f; // ceil(2 * 3 / 3 * 1) = 2
  cfg.drop_order = order;
  return cfg;
}

TEST(Gate, CapacityOverflowTokenMajor) {
  GateResult r =
      runGate(overflowConfig(MOERT_DROP_TOKEN_MAJOR), overflowLogits);
  EXPECT_EQ(r.capacity, 2);
  EXPECT_EQ(r.ids, (Ints{1, 0, 0, 2, 0, 1}));
  // Token 2's first choice comes third in line for expert 0: dropped.
  EXPECT_EQ(r.slots, (Ints{0, 0, 1, 0, -1, 1}));
  EXPECT_EQ(r.counts, (Ints{2, 2, 1}));
  EXPECT_EQ(r.weights[4], 0.0f);
  EXPECT_GT(r.weights[1], 0.0f);
}

TEST(Gate, CapacityOverflowChoiceMajor) {
  GateResult r =
      runGate(overflowConfig(MOERT_DROP_CHOICE_MAJOR), overflowLogits);
  // First choices fill expert 0 (tokens 1, 2); token 0's second choice drops.
  EXPECT_EQ(r.slots, (Ints{0, -1, 0, 0, 1, 1}));
  EXPECT_EQ(r.counts, (Ints{2, 2, 1}));
  EXPECT_EQ(r.weights[1], 0.0f);
}

TEST(Gate, CapacityOverflowByProbs) {
  // Token 0 scores expert 0 lowest (it is its second choice): dropped.
  GateResult r = runGate(overflowConfig(MOERT_DROP_PROBS), overflowLogits);
  EXPECT_EQ(r.slots, (Ints{0, -1, 0, 0, 1, 1}));
  // Kept choices are numbered in token order, not by probability.
  auto cfg = config(2, 1);
  cfg.capacity_factor = 1.0f; // ceil(1 * 3 / 2) = 2
  cfg.drop_order = MOERT_DROP_PROBS;
  r = runGate(cfg, {1, 0, /**/ 3, 0, /**/ 2, 0});
  EXPECT_EQ(r.slots, (Ints{-1, 0, 1}));
  EXPECT_EQ(r.counts, (Ints{2, 0}));
  // Equal probabilities: the lower tokens win.
  r = runGate(cfg, {1, 0, /**/ 1, 0, /**/ 1, 0});
  EXPECT_EQ(r.slots, (Ints{0, 1, -1}));
}

TEST(Gate, MinCapacityAndCeil) {
  auto cfg = config(8, 2);
  cfg.capacity_factor = 0.01f;
  cfg.min_capacity = 4;
  std::vector<float> logits(3 * 8, 0.0f);
  EXPECT_EQ(runGate(cfg, logits).capacity, 4);
  cfg.min_capacity = 0;
  cfg.capacity_factor = 1.25f; // 2 * 3 / 8 * 1.25 = 0.9375 -> 1
  EXPECT_EQ(runGate(cfg, logits).capacity, 1);
}

TEST(Gate, SelectedNormalisesBeforeDropsKeptAfter) {
  auto cfg = overflowConfig(MOERT_DROP_TOKEN_MAJOR);
  cfg.norm = MOERT_NORM_SELECTED;
  GateResult selected = runGate(cfg, overflowLogits);
  cfg.norm = MOERT_NORM_KEPT;
  GateResult kept = runGate(cfg, overflowLogits);
  // Token 2 lost its first choice: SELECTED keeps the survivor's share of
  // both, KEPT gives the survivor all of it.
  float s0 = std::exp(3.0f), s1 = std::exp(2.0f);
  EXPECT_EQ(selected.weights[4], 0.0f);
  EXPECT_NEAR(selected.weights[5], s1 / (s0 + s1), 1e-6);
  EXPECT_EQ(kept.weights[4], 0.0f);
  EXPECT_NEAR(kept.weights[5], 1.0f, 1e-6);
  // Tokens with both kept agree.
  EXPECT_NEAR(selected.weights[0], kept.weights[0], 1e-6);
}

TEST(Gate, SelectedClampedDividesByTheFloorOfASmallSum) {
  // ERNIE-4.5: w / max(sum, norm_epsilon). Softmax over 4, top-1.
  auto cfg = config(4, 1);
  cfg.norm = MOERT_NORM_SELECTED_CLAMPED;
  cfg.norm_epsilon = 0.5f;
  float e1 = std::exp(1.0f), total = e1 + 3.0f;
  // p = e / (e + 3) = 0.475 < 0.5: divided by 0.5, not by itself.
  GateResult small = runGate(cfg, {1, 0, 0, 0});
  EXPECT_NEAR(small.weights[0], (e1 / total) / 0.5f, 1e-6);
  // p = 0.71 > 0.5: divided by itself, as `selected` with epsilon 0.
  float e2 = std::exp(2.0f);
  GateResult large = runGate(cfg, {2, 0, 0, 0});
  EXPECT_NEAR(large.weights[0], 1.0f, 1e-6);
  EXPECT_GT(e2 / (e2 + 3.0f), 0.5f);
}

TEST(Gate, PnormDividesByTheNormOfTheSelected) {
  // DBRX's moe_normalize_expert_weights = p: w / (sum_j |w_j|^p)^(1/p).
  auto cfg = config(4, 2);
  cfg.norm = MOERT_NORM_PNORM;
  cfg.norm_p = 2.0f;
  float e2 = std::exp(2.0f), e1 = std::exp(1.0f), total = e2 + e1 + 2.0f;
  float p0 = e2 / total, p1 = e1 / total, norm = std::sqrt(p0 * p0 + p1 * p1);
  GateResult r = runGate(cfg, {2, 1, 0, 0});
  EXPECT_NEAR(r.weights[0], p0 / norm, 1e-6);
  EXPECT_NEAR(r.weights[1], p1 / norm, 1e-6);
  // p = 1 is `selected`: the weights sum to 1.
  cfg.norm_p = 1.0f;
  GateResult one = runGate(cfg, {2, 1, 0, 0});
  EXPECT_NEAR(one.weights[0] + one.weights[1], 1.0f, 1e-6);
  EXPECT_NEAR(one.weights[0], p0 / (p0 + p1), 1e-6);
}

TEST(Gate, SparsemixerSoftmaxesOverTheLogitsNearEachChoice) {
  // PhiMoE: 2 * jitter_eps = 0.1. Token 0: expert 1 is within 0.1 of the
  // first choice (0.1 / 2), experts 2 and 3 are not; the second choice
  // (1.9) stands alone. Token 1: the first stands alone (1 / 3 > 0.1); the
  // second (2) shares its softmax with expert 2 (0.1 / 2).
  auto cfg = config(4, 2);
  cfg.score_func = MOERT_SCORE_SPARSEMIXER;
  cfg.jitter_eps = 0.05f;
  float shared = 1.0f / (1.0f + std::exp(-0.1f));
  GateResult r = runGate(cfg, {2.0f, 1.9f, 1.0f, -1.0f, //
                               3.0f, 2.0f, 1.9f, -1.0f});
  EXPECT_EQ(r.ids, (std::vector<int32_t>{0, 1, 0, 1}));
  EXPECT_NEAR(r.weights[0], shared, 1e-6);
  EXPECT_FLOAT_EQ(r.weights[1], 1.0f);
  EXPECT_FLOAT_EQ(r.weights[2], 1.0f);
  EXPECT_NEAR(r.weights[3], shared, 1e-6);
  // jitter_eps 0: only exact ties share a softmax.
  cfg.jitter_eps = 0.0f;
  GateResult tie = runGate(cfg, {1.0f, 1.0f, 0.5f, 1.0f});
  EXPECT_EQ(tie.ids, (std::vector<int32_t>{0, 1}));
  EXPECT_NEAR(tie.weights[0], 1.0f / 3.0f, 1e-6);
  EXPECT_NEAR(tie.weights[1], 0.5f, 1e-6);
}

TEST(Gate, SparsemixerRefusesOtherThanTop2AndABias) {
  onOneRank([](moert_context_t ctx) {
    Buffer scratch(ctx, 4096);
    moert_view_t f = scratch.view(MOERT_F32), i = scratch.view(MOERT_I32);
    int64_t capacity;
    auto cfg = config(4, 3);
    cfg.score_func = MOERT_SCORE_SPARSEMIXER;
    EXPECT_MOERT_ERROR(
        moert_gate(ctx, &cfg, f, moert_absent_view(), 1, i, f, i, i, &capacity),
        MOERT_INVALID_ARGUMENT, "sparsemixer needs top_k 2 and no groups");
    cfg.top_k = 2;
    EXPECT_MOERT_ERROR(moert_gate(ctx, &cfg, f, f, 1, i, f, i, i, &capacity),
                       MOERT_INVALID_ARGUMENT,
                       "sparsemixer takes no correction_bias");
    EXPECT_MOERT_ERROR(moert_gate_select(ctx, &cfg, f, f, 1, i, f),
                       MOERT_INVALID_ARGUMENT,
                       "sparsemixer takes no correction_bias");
  });
}

TEST(Gate, KeptWithEverythingDroppedIsZeroNotNaN) {
  auto cfg = config(2, 1);
  cfg.capacity_factor = 0.5f; // ceil(1 * 2 / 2 * 0.5) = 1
  cfg.norm = MOERT_NORM_KEPT;
  GateResult r = runGate(cfg, {1, 0, /**/ 1, 0});
  EXPECT_EQ(r.slots, (Ints{0, -1}));
  EXPECT_EQ(r.weights[0], 1.0f);
  EXPECT_EQ(r.weights[1], 0.0f);
}

TEST(Gate, SigmoidUnderflowWithZeroEpsilonIsNotNaN) {
  auto cfg = config(4, 2);
  cfg.score_func = MOERT_SCORE_SIGMOID;
  cfg.norm = MOERT_NORM_SELECTED;
  GateResult r = runGate(cfg, {-200, -300, -400, -500});
  EXPECT_EQ(r.weights[0], 0.0f);
  EXPECT_EQ(r.weights[1], 0.0f);
}

TEST(Gate, GroupLimitedTop2SumWithCorrectionBias) {
  // DeepSeek-V3 style: 8 experts, 4 groups of 2, keep 2 groups, top-2.
  auto cfg = config(8, 2);
  cfg.score_func = MOERT_SCORE_SIGMOID;
  cfg.n_group = 4;
  cfg.topk_group = 2;
  cfg.group_score = MOERT_GROUP_SCORE_TOP2_SUM;
  cfg.norm = MOERT_NORM_SELECTED;
  cfg.norm_epsilon = 1e-20f;
  cfg.routed_scaling_factor = 2.5f;
  // Group sums of sel: g0 = s0+s1, g1 = s2+s3 (highest single expert 2 but a
  // weak partner), g2 strong pair, g3 strong only through the bias.
  std::vector<float> logits = {1.0f, 1.0f, 4.0f,  -4.0f,
                               2.0f, 2.0f, -1.0f, -1.0f};
  std::vector<float> bias = {0, 0, 0, 0, 0, 0, 0.6f, 0.6f};
  GateResult r = runGate(cfg, logits, bias);
  auto sigmoid = [](float x) { return 1 / (1 + std::exp(-x)); };
  // g0 = 1.46, g1 = 0.999, g2 = 1.76, g3 = 1.738: keep g2 and g3; the top
  // expert 2 (g1) is masked out.
  EXPECT_EQ(r.ids, (Ints{4, 5}));
  float w4 = sigmoid(2), w5 = sigmoid(2);
  EXPECT_NEAR(r.weights[0], 2.5f * w4 / (w4 + w5 + 1e-20f), 1e-6);
  // With MAX group score, g1 (max 0.98) wins over g3 (max 0.87).
  cfg.group_score = MOERT_GROUP_SCORE_MAX;
  r = runGate(cfg, logits, bias);
  EXPECT_EQ(r.ids, (Ints{2, 4}));
}

TEST(Gate, CorrectionBiasSelectsButDoesNotWeigh) {
  auto cfg = config(3, 1);
  cfg.score_func = MOERT_SCORE_SIGMOID;
  GateResult r = runGate(cfg, {0, 1, 0}, {0.5f, 0, 0});
  EXPECT_EQ(r.ids, (Ints{0}));
  EXPECT_NEAR(r.weights[0], 0.5f, 1e-7); // sigmoid(0), unbiased
}

TEST(Gate, RejectsBadConfigs) {
  onOneRank([](moert_context_t ctx) {
    Buffer scratch(ctx, 1024);
    moert_view_t f = scratch.view(MOERT_F32), i = scratch.view(MOERT_I32);
    int64_t capacity;
    auto cfg = config(4, 5);
    EXPECT_MOERT_ERROR(
        moert_gate(ctx, &cfg, f, moert_absent_view(), 1, i, f, i, i, &capacity),
        MOERT_INVALID_ARGUMENT, "top_k");
    cfg = config(6, 2);
    cfg.n_group = 4;
    cfg.topk_group = 2;
    EXPECT_MOERT_ERROR(
        moert_gate(ctx, &cfg, f, moert_absent_view(), 1, i, f, i, i, &capacity),
        MOERT_INVALID_ARGUMENT, "n_group");
    cfg = config(4, 2);
    EXPECT_MOERT_ERROR(moert_gate(ctx, &cfg, f, moert_absent_view(), 1000, i, f,
                                  i, i, &capacity),
                       MOERT_INVALID_ARGUMENT, "runs past its buffer");
  });
}

} // namespace
