//===- runtime/common/Gate.cpp - Scoring, top-k, capacity, normalisation --===//

#include "runtime/common/Gate.h"

#include "runtime/common/Error.h"
#include "runtime/common/GateMath.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

using namespace moert;

void moert::validateGateConfig(const moert_gate_config_t &cfg) {
  int32_t experts = cfg.experts, topK = cfg.top_k;
  require(experts >= 1, "gate: experts must be >= 1, got ", experts);
  require(topK >= 1 && topK <= experts, "gate: top_k must be in [1, ", experts,
          "], got ", topK);
  require(cfg.score_func == MOERT_SCORE_SOFTMAX ||
              cfg.score_func == MOERT_SCORE_SIGMOID ||
              cfg.score_func == MOERT_SCORE_SPARSEMIXER,
          "gate: unknown score_func ", static_cast<int>(cfg.score_func));
  require(std::isfinite(cfg.jitter_eps) && cfg.jitter_eps >= 0,
          "gate: jitter_eps must be finite and >= 0, got ", cfg.jitter_eps);
  require(cfg.score_func != MOERT_SCORE_SPARSEMIXER ||
              (topK == 2 && cfg.n_group <= 1),
          "gate: sparsemixer needs top_k 2 and no groups, got top_k ", topK,
          ", n_group ", cfg.n_group);
  require(cfg.norm == MOERT_NORM_NONE || cfg.norm == MOERT_NORM_SELECTED ||
              cfg.norm == MOERT_NORM_KEPT ||
              cfg.norm == MOERT_NORM_SELECTED_CLAMPED ||
              cfg.norm == MOERT_NORM_PNORM,
          "gate: unknown norm ", static_cast<int>(cfg.norm));
  require(cfg.drop_order == MOERT_DROP_CHOICE_MAJOR ||
              cfg.drop_order == MOERT_DROP_TOKEN_MAJOR ||
              cfg.drop_order == MOERT_DROP_PROBS,
          "gate: unknown drop_order ", static_cast<int>(cfg.drop_order));
  require(std::isfinite(cfg.capacity_factor) && cfg.capacity_factor >= 0,
          "gate: capacity_factor must be finite and >= 0, got ",
          cfg.capacity_factor);
  require(cfg.min_capacity >= 0, "gate: min_capacity must be >= 0, got ",
          cfg.min_capacity);
  require(cfg.static_capacity >= 0, "gate: static_capacity must be >= 0, got ",
          cfg.static_capacity);
  require(cfg.static_capacity == 0 || cfg.capacity_factor == 0.0,
          "gate: static_capacity bounds a dropless gate, but capacity_factor "
          "is ",
          cfg.capacity_factor);
  require(cfg.norm_epsilon >= 0, "gate: norm_epsilon must be >= 0, got ",
          cfg.norm_epsilon);
  require(cfg.norm != MOERT_NORM_PNORM ||
              (std::isfinite(cfg.norm_p) && cfg.norm_p > 0),
          "gate: norm_p must be finite and > 0, got ", cfg.norm_p);
  if (cfg.n_group > 1) {
    require(experts % cfg.n_group == 0, "gate: experts ", experts,
            " not divisible by n_group ", cfg.n_group);
    require(cfg.topk_group >= 1 && cfg.topk_group <= cfg.n_group,
            "gate: topk_group must be in [1, ", cfg.n_group, "], got ",
            cfg.topk_group);
    int32_t groupSize = experts / cfg.n_group;
    require(topK <= cfg.topk_group * groupSize, "gate: top_k ", topK,
            " exceeds the ", cfg.topk_group * groupSize,
            " experts of the kept groups");
    require(cfg.group_score == MOERT_GROUP_SCORE_MAX ||
                cfg.group_score == MOERT_GROUP_SCORE_TOP2_SUM,
            "gate: unknown group_score ", static_cast<int>(cfg.group_score));
    require(cfg.group_score != MOERT_GROUP_SCORE_TOP2_SUM || groupSize >= 2,
            "gate: top2_sum needs groups of >= 2 experts");
  }
}

namespace {

// Masks sel to -inf outside the topk_group best groups.
void limitGroups(const moert_gate_config_t &cfg, float *sel,
                 std::vector<float> &groupScores,
                 std::vector<int32_t> &groupOrder) {
  int32_t groups = cfg.n_group, groupSize = cfg.experts / groups;
  for (int32_t g = 0; g < groups; ++g)
    groupScores[g] =
        groupScore(cfg.group_score, sel + g * groupSize, groupSize);
  std::iota(groupOrder.begin(), groupOrder.end(), 0);
  std::stable_sort(
      groupOrder.begin(), groupOrder.end(),
      [&](int32_t a, int32_t b) { return groupScores[a] > groupScores[b]; });
  for (int32_t rank = cfg.topk_group; rank < groups; ++rank) {
    float *member = sel + groupOrder[rank] * groupSize;
    std::fill_n(member, groupSize, -std::numeric_limits<float>::infinity());
  }
}

// Per expert, keeps the `capacity` choices with the highest unbiased score
// (ties: lower token), then numbers the kept ones in token order.
void assignSlotsByProbs(int64_t tokens, int32_t topK, int32_t experts,
                        int64_t capacity, const int32_t *ids,
                        const float *scores, int32_t *slots) {
  std::vector<std::vector<int64_t>> choicesOf(experts); // flat s*k+j
  for (int64_t i = 0; i < tokens * topK; ++i)
    choicesOf[ids[i]].push_back(i); // token order: i is increasing
  for (auto &choices : choicesOf) {
    if (static_cast<int64_t>(choices.size()) > capacity) {
      std::stable_sort(
          choices.begin(), choices.end(),
          [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
      choices.resize(capacity);
      std::sort(choices.begin(), choices.end());
    }
    int32_t slot = 0;
    for (int64_t i : choices)
      slots[i] = slot++;
  }
}

} // namespace

void moert::scoreTokens(const moert_gate_config_t &cfg, const float *logits,
                        int64_t tokens, float *scores) {
  for (int64_t s = 0; s < tokens; ++s)
    scoreToken(cfg.score_func, cfg.experts, logits + s * cfg.experts,
               scores + s * cfg.experts);
}

void moert::selectTopK(const moert_gate_config_t &cfg, const float *scores,
                       const float *correctionBias, int64_t tokens,
                       int32_t *ids, float *weights) {
  const int32_t experts = cfg.experts, topK = cfg.top_k;
  std::vector<float> sel(experts);
  std::vector<float> groupScores(std::max(cfg.n_group, 1));
  std::vector<int32_t> groupOrder(std::max(cfg.n_group, 1));
  std::vector<int32_t> order(experts);
  for (int64_t s = 0; s < tokens; ++s) {
    const float *score = scores + s * experts;
    for (int32_t e = 0; e < experts; ++e)
      sel[e] = score[e] + (correctionBias ? correctionBias[e] : 0.0f);
    if (cfg.n_group > 1)
      limitGroups(cfg, sel.data(), groupScores, groupOrder);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + topK, order.end(),
                      [&](int32_t a, int32_t b) {
                        return sel[a] > sel[b] || (sel[a] == sel[b] && a < b);
                      });
    for (int32_t j = 0; j < topK; ++j) {
      ids[s * topK + j] = order[j];
      weights[s * topK + j] = score[order[j]];
    }
    if (cfg.score_func == MOERT_SCORE_SPARSEMIXER)
      sparsemixerWeights(cfg, score, ids + s * topK, weights + s * topK);
  }
}

void moert::validateGateTokens(const moert_gate_config_t &cfg, int64_t tokens) {
  require(tokens >= 0, "tokens must be >= 0, got ", tokens);
  require(cfg.static_capacity == 0 || tokens <= cfg.static_capacity,
          "gate: static_capacity ", cfg.static_capacity, " is below the ",
          tokens, " tokens of this step (an expert may get every token)");
}

int64_t moert::assignSlots(const moert_gate_config_t &cfg, int64_t tokens,
                           const int32_t *ids, const float *weights,
                           int32_t *slots, int32_t *counts) {
  validateGateTokens(cfg, tokens);
  const int32_t experts = cfg.experts, topK = cfg.top_k;
  int64_t choices = tokens * topK;
  bool dropless = cfg.capacity_factor == 0.0;
  int64_t capacity = dropless ? 0 : capacityFor(cfg, tokens);
  for (int64_t i = 0; i < choices; ++i)
    require(ids[i] >= 0 && ids[i] < experts, "gate: choice ", i,
            " names expert ", ids[i], " outside [0, ", experts, ")");
  std::fill_n(counts, experts, 0);
  std::fill_n(slots, choices, -1);
  if (dropless || cfg.drop_order == MOERT_DROP_TOKEN_MAJOR) {
    for (int64_t i = 0; i < choices; ++i)
      slots[i] = counts[ids[i]]++;
  } else if (cfg.drop_order == MOERT_DROP_CHOICE_MAJOR) {
    for (int32_t j = 0; j < topK; ++j)
      for (int64_t s = 0; s < tokens; ++s)
        slots[s * topK + j] = counts[ids[s * topK + j]]++;
  } else {
    assignSlotsByProbs(tokens, topK, experts, capacity, ids, weights, slots);
  }
  if (dropless) {
    capacity = cfg.static_capacity > 0 ? cfg.static_capacity
               : choices ? *std::max_element(counts, counts + experts)
                         : 0;
  } else {
    std::fill_n(counts, experts, 0);
    for (int64_t i = 0; i < choices; ++i) {
      if (slots[i] >= capacity)
        slots[i] = -1;
      if (slots[i] >= 0)
        ++counts[ids[i]];
    }
  }
  return capacity;
}

void moert::normalizeWeights(const moert_gate_config_t &cfg, int64_t tokens,
                             const int32_t *slots, float *weights) {
  for (int64_t s = 0; s < tokens; ++s)
    normalizeTokenWeights(cfg, weights + s * cfg.top_k, slots + s * cfg.top_k);
}

int64_t moert::computeGate(const moert_gate_config_t &cfg, const float *logits,
                           const float *correctionBias, int64_t tokens,
                           int32_t *ids, float *weights, int32_t *slots,
                           int32_t *counts) {
  validateGateConfig(cfg);
  // The stages the unfused lowering calls one by one; here the scores never
  // leave the call.
  std::vector<float> scores(tokens * cfg.experts);
  scoreTokens(cfg, logits, tokens, scores.data());
  selectTopK(cfg, scores.data(), correctionBias, tokens, ids, weights);
  int64_t capacity = assignSlots(cfg, tokens, ids, weights, slots, counts);
  normalizeWeights(cfg, tokens, slots, weights);
  return capacity;
}
