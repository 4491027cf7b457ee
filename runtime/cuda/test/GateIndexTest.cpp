//===- runtime/cuda/test/GateIndexTest.cpp - Gate phases vs the reference -===//
//
// Runs GateIndex.h's per-thread steps in the phase order of Gate.cu
// (one loop per kernel) and expects exactly the reference gate
// (runtime/common/Gate.h, which the CPU backend runs).
//
//===----------------------------------------------------------------------===//

#include "runtime/cuda/GateIndex.h"

#include "runtime/common/Gate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

using namespace moert;
using namespace moert::cuda;

namespace {

struct GateResult {
  std::vector<int32_t> ids, slots, counts;
  std::vector<float> weights;
  int64_t capacity = 0;
};

// Mirrors orderSlots in runtime/cuda/Gate.cu launch by launch: slots in
// drop order, not yet cut at the capacity; returns the per-expert totals.
std::vector<int32_t> phasedOrderSlots(const moert_gate_config_t &cfg,
                                      const std::vector<int32_t> &ids,
                                      const std::vector<float> &weights,
                                      int64_t tokens, int64_t capacity,
                                      std::vector<int32_t> &slots) {
  int32_t experts = cfg.experts, topK = cfg.top_k;
  int64_t choices = tokens * topK;
  bool dropless = cfg.capacity_factor == 0.0;
  bool probs = !dropless && cfg.drop_order == MOERT_DROP_PROBS;
  bool choiceMajor = !dropless && cfg.drop_order == MOERT_DROP_CHOICE_MAJOR;
  int64_t chunks = (choices + slotChunk - 1) / slotChunk;
  std::vector<int32_t> chunkCounts(chunks * experts, -7), totals(experts);
  std::vector<int32_t> tmSlots(choices, -7);
  std::vector<int32_t> &orderSlots = probs ? tmSlots : slots;
  for (int64_t i = 0; i < chunks * experts; ++i) // countChunksKernel
    countChunk(ids.data(), choiceMajor, tokens, topK, experts, i / experts,
               static_cast<int32_t>(i % experts), chunkCounts.data());
  for (int32_t e = 0; e < experts; ++e) // scanChunksKernel
    totals[e] = scanChunkColumn(chunkCounts.data(), chunks, experts, e);
  for (int64_t p = 0; p < choices; ++p) // assignSlotsKernel
    assignSlot(ids.data(), choiceMajor, tokens, topK, experts,
               chunkCounts.data(), p, orderSlots.data());
  if (probs) {
    std::vector<int32_t> starts(experts), members(choices, -7);
    std::vector<uint8_t> kept(choices);
    memberStarts(totals.data(), experts, starts.data()); // memberStartsKernel
    for (int64_t i = 0; i < choices; ++i)                // buildMembersKernel
      members[starts[ids[i]] + tmSlots[i]] = static_cast<int32_t>(i);
    for (int64_t i = 0; i < choices; ++i) // probsKeepKernel
      kept[i] = probsKept(members.data() + starts[ids[i]], totals[ids[i]],
                          weights.data(), i, capacity);
    for (int64_t i = 0; i < choices; ++i) // probsSlotKernel
      slots[i] = kept[i] ? probsSlot(members.data() + starts[ids[i]],
                                     tmSlots[i], kept.data())
                         : -1;
  }
  return totals;
}

// Mirrors moert::cuda::gate in runtime/cuda/Gate.cu launch by launch.
GateResult phasedGate(const moert_gate_config_t &cfg,
                      const std::vector<float> &logits, const float *bias,
                      int64_t tokens) {
  int32_t experts = cfg.experts, topK = cfg.top_k;
  int64_t choices = tokens * topK;
  bool dropless = cfg.capacity_factor == 0.0;
  GateResult r;
  r.capacity = dropless ? 0 : capacityFor(cfg, tokens);
  r.ids.assign(choices, -7);
  r.weights.assign(choices, -7.0f);
  r.slots.assign(choices, -7);
  r.counts.assign(experts, -7);
  if (choices == 0) {
    std::fill(r.counts.begin(), r.counts.end(), 0);
    return r;
  }
  std::vector<float> scores(tokens * experts), sel(tokens * experts);
  for (int64_t s = 0; s < tokens; ++s) { // scoreSelectKernel
    scoreToken(cfg.score_func, experts, logits.data() + s * experts,
               scores.data() + s * experts);
    selectToken(cfg, scores.data() + s * experts, bias,
                sel.data() + s * experts, r.ids.data() + s * topK,
                r.weights.data() + s * topK);
  }
  std::vector<int32_t> totals =
      phasedOrderSlots(cfg, r.ids, r.weights, tokens, r.capacity, r.slots);
  if (dropless)
    r.capacity = *std::max_element(totals.begin(), totals.end());
  for (int64_t s = 0; s < tokens; ++s) { // finishKernel
    int32_t *slot = r.slots.data() + s * topK;
    for (int32_t j = 0; !dropless && j < topK; ++j)
      if (slot[j] >= r.capacity)
        slot[j] = -1;
    normalizeTokenWeights(cfg, r.weights.data() + s * topK, slot);
  }
  for (int32_t e = 0; e < experts; ++e) // countsKernel
    r.counts[e] = dropless || totals[e] < r.capacity
                      ? totals[e]
                      : static_cast<int32_t>(r.capacity);
  return r;
}

GateResult referenceGate(const moert_gate_config_t &cfg,
                         const std::vector<float> &logits, const float *bias,
                         int64_t tokens) {
  GateResult r;
  int64_t choices = tokens * cfg.top_k;
  r.ids.resize(choices);
  r.weights.resize(choices);
  r.slots.resize(choices);
  r.counts.resize(cfg.experts);
  r.capacity = computeGate(cfg, logits.data(), bias, tokens, r.ids.data(),
                           r.weights.data(), r.slots.data(), r.counts.data());
  return r;
}

void expectSameGate(const GateResult &got, const GateResult &want) {
  EXPECT_EQ(got.capacity, want.capacity);
  EXPECT_EQ(got.ids, want.ids);
  EXPECT_EQ(got.slots, want.slots);
  EXPECT_EQ(got.counts, want.counts);
  ASSERT_EQ(got.weights.size(), want.weights.size());
  for (size_t i = 0; i < got.weights.size(); ++i)
    ASSERT_EQ(got.weights[i], want.weights[i]) << "choice " << i;
}

TEST(CudaGateIndex, MatchesCpuGateOnRandomConfigs) {
  std::mt19937 rng(1234);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  int configs = 0;
  for (int trial = 0; trial < 400; ++trial) {
    static const int32_t expertChoices[] = {4, 8, 16, 64};
    int32_t experts = expertChoices[pick(4)];
    int32_t topK = 1 + pick(std::min(experts, 6));
    moert_gate_config_t cfg;
    moert_gate_config_init(&cfg, experts, topK);
    cfg.score_func = pick(2) ? MOERT_SCORE_SIGMOID : MOERT_SCORE_SOFTMAX;
    cfg.norm = static_cast<moert_gate_norm_t>(pick(5));
    cfg.norm_epsilon = pick(2) ? 1e-20f : 0.0f;
    // A floor that binds for small top-k sums, or ERNIE's 1e-12.
    if (cfg.norm == MOERT_NORM_SELECTED_CLAMPED)
      cfg.norm_epsilon = pick(2) ? 0.5f : 1e-12f;
    if (cfg.norm == MOERT_NORM_PNORM) {
      cfg.norm_epsilon = 0.0f;
      cfg.norm_p = pick(2) ? 2.0f : 0.5f;
    }
    cfg.routed_scaling_factor = pick(2) ? 2.5f : 1.0f;
    static const double factors[] = {0.0, 0.25, 0.5, 1.0, 1.25, 2.0};
    cfg.capacity_factor = factors[pick(6)];
    cfg.min_capacity = pick(3);
    cfg.drop_order = static_cast<moert_drop_order_t>(pick(3));
    if (pick(3) == 0 && experts >= 8) {
      cfg.n_group = pick(2) ? 4 : 2;
      int32_t groupSize = experts / cfg.n_group;
      cfg.topk_group = 1 + pick(cfg.n_group);
      cfg.group_score = static_cast<moert_group_score_t>(pick(2));
      if (topK > cfg.topk_group * groupSize)
        cfg.topk_group = cfg.n_group;
    }
    // PhiMoE's sparsemixer where it applies: top-2, ungrouped.
    if (topK == 2 && cfg.n_group <= 1 && pick(3) == 0) {
      cfg.score_func = MOERT_SCORE_SPARSEMIXER;
      cfg.jitter_eps = pick(2) ? 0.01f : 0.3f;
    }
    // Up to ~3000 choices: several chunks of the slot scan.
    int64_t tokens = pick(5) == 0 ? pick(4) : 1 + pick(500);
    // Coarse logits make equal scores (ties) common; fine ones are generic.
    bool coarse = pick(2);
    std::normal_distribution<float> normal(0.0f, 2.0f);
    std::vector<float> logits(tokens * experts);
    for (float &v : logits)
      v = coarse ? static_cast<float>(pick(5)) - 4.0f : normal(rng);
    std::vector<float> bias(experts);
    for (float &v : bias)
      v = coarse ? 0.25f * pick(3) : 0.1f * normal(rng);
    const float *biasData = pick(2) ? bias.data() : nullptr;
    SCOPED_TRACE(::testing::Message()
                 << "trial " << trial << ": E " << experts << " k " << topK
                 << " S " << tokens << " cf " << cfg.capacity_factor
                 << " order " << cfg.drop_order << " groups " << cfg.n_group
                 << "/" << cfg.topk_group << " norm " << cfg.norm);
    expectSameGate(phasedGate(cfg, logits, biasData, tokens),
                   referenceGate(cfg, logits, biasData, tokens));
    if (HasFatalFailure())
      return;
    ++configs;
  }
  EXPECT_EQ(configs, 400);
}

TEST(CudaGateIndex, AllNegativeLogitsGiveNoNaNAndNoDrops) {
  moert_gate_config_t cfg;
  moert_gate_config_init(&cfg, 8, 2);
  cfg.norm = MOERT_NORM_KEPT;
  cfg.capacity_factor = 4.0;
  std::vector<float> logits(16 * 8, -1e30f);
  GateResult got = phasedGate(cfg, logits, nullptr, 16);
  expectSameGate(got, referenceGate(cfg, logits, nullptr, 16));
  for (float w : got.weights)
    EXPECT_FALSE(std::isnan(w));
  for (int32_t slot : got.slots)
    EXPECT_GE(slot, 0);
}

TEST(CudaGateIndex, TiesGoToTheLowerExpert) {
  moert_gate_config_t cfg;
  moert_gate_config_init(&cfg, 6, 3);
  std::vector<float> logits = {1, 2, 2, 0, 2, 1};
  GateResult got = phasedGate(cfg, logits, nullptr, 1);
  EXPECT_EQ(got.ids, (std::vector<int32_t>{1, 2, 4}));
}

TEST(CudaGateIndex, ChoiceMajorSlotsCrossChunks) {
  // 300 tokens x 2 choices all on expert 0 then 1: positions span 3 chunks,
  // so offsets from earlier chunks matter.
  moert_gate_config_t cfg;
  moert_gate_config_init(&cfg, 4, 2);
  cfg.drop_order = MOERT_DROP_CHOICE_MAJOR;
  cfg.capacity_factor = 1.0; // C = 150: half of each expert's choices drop
  std::vector<float> logits(300 * 4, 0.0f);
  for (int s = 0; s < 300; ++s) {
    logits[s * 4 + 0] = 3;
    logits[s * 4 + 1] = 2;
  }
  GateResult got = phasedGate(cfg, logits, nullptr, 300);
  expectSameGate(got, referenceGate(cfg, logits, nullptr, 300));
  EXPECT_EQ(got.capacity, 150);
  EXPECT_EQ(got.slots[149 * 2], 149);
  EXPECT_EQ(got.slots[150 * 2], -1);
}

// moert_gate_slots takes any in-range ids: an expert may repeat within a
// token. The slot phase alone (with gateSlots' drop) against the CPU.
TEST(CudaGateIndex, SlotsOfRepeatedExpertsMatchCpu) {
  std::mt19937 rng(99);
  for (int trial = 0; trial < 200; ++trial) {
    int32_t experts = 1 + static_cast<int32_t>(rng() % 4);
    int32_t topK = 1 + static_cast<int32_t>(rng() % experts);
    int64_t tokens = 1 + static_cast<int64_t>(rng() % 300);
    moert_gate_config_t cfg;
    moert_gate_config_init(&cfg, experts, topK);
    static const double factors[] = {0.0, 0.5, 1.0, 2.0};
    cfg.capacity_factor = factors[rng() % 4];
    cfg.drop_order = static_cast<moert_drop_order_t>(rng() % 3);
    int64_t choices = tokens * topK;
    std::vector<int32_t> ids(choices);
    std::vector<float> weights(choices);
    for (int64_t i = 0; i < choices; ++i) {
      ids[i] = static_cast<int32_t>(rng() % experts);
      weights[i] = 0.25f * static_cast<float>(rng() % 4); // many ties
    }
    SCOPED_TRACE(::testing::Message()
                 << "trial " << trial << ": E " << experts << " k " << topK
                 << " S " << tokens << " cf " << cfg.capacity_factor
                 << " order " << cfg.drop_order);
    int64_t capacity =
        cfg.capacity_factor == 0.0 ? 0 : capacityFor(cfg, tokens);
    std::vector<int32_t> got(choices, -7);
    phasedOrderSlots(cfg, ids, weights, tokens, capacity, got);
    for (int32_t &slot : got) // dropKernel
      if (cfg.capacity_factor != 0.0 && slot >= capacity)
        slot = -1;
    std::vector<int32_t> want(choices), counts(experts);
    int64_t wantCapacity = assignSlots(cfg, tokens, ids.data(), weights.data(),
                                       want.data(), counts.data());
    if (cfg.capacity_factor != 0.0)
      EXPECT_EQ(capacity, wantCapacity);
    ASSERT_EQ(got, want);
  }
}

TEST(CudaGateIndex, ProbsTiesWithinATokenKeepTheEarlierChoice) {
  // Expert 0 twice in token 0 at 0.5 and once in token 1 at 0.9; C = 2:
  // the CPU keeps flat choices 2 (0.9) and 0 (0.5, before choice 1).
  moert_gate_config_t cfg;
  moert_gate_config_init(&cfg, 2, 2);
  cfg.capacity_factor = 1.0;
  cfg.drop_order = MOERT_DROP_PROBS;
  std::vector<int32_t> ids = {0, 0, 0, 1};
  std::vector<float> weights = {0.5f, 0.5f, 0.9f, 0.1f};
  std::vector<int32_t> slots(4, -7);
  phasedOrderSlots(cfg, ids, weights, 2, 2, slots);
  EXPECT_EQ(slots, (std::vector<int32_t>{0, -1, 1, 0}));
  std::vector<int32_t> want(4), counts(2);
  EXPECT_EQ(assignSlots(cfg, 2, ids.data(), weights.data(), want.data(),
                        counts.data()),
            2);
  EXPECT_EQ(slots, want);
}

} // namespace
