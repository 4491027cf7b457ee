//===- runtime/cpu/Gate.cpp - Scoring, top-k, capacity, normalisation -----===//

#include "runtime/cpu/Gate.h"

#include "runtime/cpu/Backend.h"

#include "runtime/common/GateMath.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

using namespace moert;
using namespace moert::cpu;

void moert::cpu::validateGateConfig(const moert_gate_config_t &cfg) {
  int32_t experts = cfg.experts, topK = cfg.top_k;
  require(experts >= 1, "gate: experts must be >= 1, got ", experts);
  require(topK >= 1 && topK <= experts, "gate: top_k must be in [1, ", experts,
          "], got ", topK);
  require(cfg.score_func == MOERT_SCORE_SOFTMAX ||
              cfg.score_func == MOERT_SCORE_SIGMOID,
          "gate: unknown score_func ", static_cast<int>(cfg.score_func));
  require(cfg.norm == MOERT_NORM_NONE || cfg.norm == MOERT_NORM_SELECTED ||
              cfg.norm == MOERT_NORM_KEPT,
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
  require(cfg.static_capacity >= 0,
          "gate: static_capacity must be >= 0, got ", cfg.static_capacity);
  require(cfg.static_capacity == 0 || cfg.capacity_factor == 0.0,
          "gate: static_capacity bounds a dropless gate, but capacity_factor "
          "is ", cfg.capacity_factor);
  require(cfg.norm_epsilon >= 0, "gate: norm_epsilon must be >= 0, got ",
          cfg.norm_epsilon);
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
    groupScores[g] = groupScore(cfg.group_score, sel + g * groupSize, groupSize);
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

void moert::cpu::scoreTokens(const moert_gate_config_t &cfg,
                             const float *logits, int64_t tokens,
                             float *scores) {
  for (int64_t s = 0; s < tokens; ++s)
    scoreToken(cfg.score_func, cfg.experts, logits + s * cfg.experts,
               scores + s * cfg.experts);
}

void moert::cpu::selectTopK(const moert_gate_config_t &cfg, const float *scores,
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
  }
}

void moert::cpu::validateGateTokens(const moert_gate_config_t &cfg,
                                    int64_t tokens) {
  require(tokens >= 0, "tokens must be >= 0, got ", tokens);
  require(cfg.static_capacity == 0 || tokens <= cfg.static_capacity,
          "gate: static_capacity ", cfg.static_capacity, " is below the ",
          tokens, " tokens of this step (an expert may get every token)");
}

int64_t moert::cpu::assignSlots(const moert_gate_config_t &cfg, int64_t tokens,
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

void moert::cpu::normalizeWeights(const moert_gate_config_t &cfg,
                                  int64_t tokens, const int32_t *slots,
                                  float *weights) {
  for (int64_t s = 0; s < tokens; ++s)
    normalizeTokenWeights(cfg, weights + s * cfg.top_k, slots + s * cfg.top_k);
}

int64_t moert::cpu::computeGate(const moert_gate_config_t &cfg,
                                const float *logits,
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

namespace {
// The checked [S, k] / [E] operands of the gate stages.
template <typename T>
T *gateArray(moert_view_t view, moert_dtype_t dtype, int64_t count,
             const char *name) {
  requireDtype(view, dtype, name);
  return reinterpret_cast<T *>(viewData(view, count, name));
}
} // namespace

extern "C" {

void moert_gate_config_init(moert_gate_config_t *cfg, int32_t experts,
                            int32_t topK) {
  if (!cfg)
    return;
  *cfg = moert_gate_config_t{};
  cfg->experts = experts;
  cfg->top_k = topK;
  cfg->score_func = MOERT_SCORE_SOFTMAX;
  cfg->n_group = 1;
  cfg->topk_group = 1;
  cfg->group_score = MOERT_GROUP_SCORE_MAX;
  cfg->norm = MOERT_NORM_NONE;
  cfg->norm_epsilon = 0.0f;
  cfg->routed_scaling_factor = 1.0f;
  cfg->capacity_factor = 0.0;
  cfg->min_capacity = 0;
  cfg->drop_order = MOERT_DROP_TOKEN_MAJOR;
  cfg->static_capacity = 0;
}

moert_status_t moert_gate(moert_context_t ctx, const moert_gate_config_t *cfg,
                          moert_view_t logits, moert_view_t correctionBias,
                          int64_t tokens, moert_view_t ids,
                          moert_view_t weights, moert_view_t slots,
                          moert_view_t counts, int64_t *capacity) {
  return guard("moert_gate", [&] {
    checkContext(ctx);
    require(cfg != nullptr && capacity != nullptr, "null argument");
    require(tokens >= 0, "tokens must be >= 0, got ", tokens);
    validateGateConfig(*cfg);
    int64_t experts = cfg->experts, choices = tokens * cfg->top_k;
    checkFloatView(logits, tokens * experts, "logits");
    checkOptionalFloatView(correctionBias, experts, "correction_bias");
    gateArray<int32_t>(ids, MOERT_I32, choices, "ids");
    gateArray<float>(weights, MOERT_F32, choices, "weights");
    gateArray<int32_t>(slots, MOERT_I32, choices, "slots");
    gateArray<int32_t>(counts, MOERT_I32, experts, "counts");
    MOERT_ROUTE_DEVICE(ctx, gate(ctx, *cfg, logits, correctionBias, tokens, ids,
                                 weights, slots, counts, capacity));
    const float *logitData =
        floatInput(ctx, 0, logits, tokens * experts, "logits");
    const float *biasData =
        isPresent(correctionBias)
            ? floatInput(ctx, 1, correctionBias, experts, "correction_bias")
            : nullptr;
    requireDtype(ids, MOERT_I32, "ids");
    requireDtype(weights, MOERT_F32, "weights");
    requireDtype(slots, MOERT_I32, "slots");
    requireDtype(counts, MOERT_I32, "counts");
    auto *idData = reinterpret_cast<int32_t *>(viewData(ids, choices, "ids"));
    auto *weightData =
        reinterpret_cast<float *>(viewData(weights, choices, "weights"));
    auto *slotData =
        reinterpret_cast<int32_t *>(viewData(slots, choices, "slots"));
    auto *countData =
        reinterpret_cast<int32_t *>(viewData(counts, experts, "counts"));
    *capacity = computeGate(*cfg, logitData, biasData, tokens, idData,
                            weightData, slotData, countData);
  });
}

moert_status_t moert_gate_scores(moert_context_t ctx,
                                 const moert_gate_config_t *cfg,
                                 moert_view_t logits, int64_t tokens,
                                 moert_view_t scores) {
  return guard("moert_gate_scores", [&] {
    checkContext(ctx);
    require(cfg != nullptr && tokens >= 0, "bad arguments");
    validateGateConfig(*cfg);
    int64_t count = tokens * cfg->experts;
    checkFloatView(logits, count, "logits");
    float *scoreData = gateArray<float>(scores, MOERT_F32, count, "scores");
    MOERT_ROUTE_DEVICE(ctx, gateScores(ctx, *cfg, logits, tokens, scores));
    scoreTokens(*cfg, floatInput(ctx, 0, logits, count, "logits"), tokens,
                scoreData);
  });
}

moert_status_t moert_gate_select(moert_context_t ctx,
                                 const moert_gate_config_t *cfg,
                                 moert_view_t scores,
                                 moert_view_t correctionBias, int64_t tokens,
                                 moert_view_t ids, moert_view_t weights) {
  return guard("moert_gate_select", [&] {
    checkContext(ctx);
    require(cfg != nullptr && tokens >= 0, "bad arguments");
    validateGateConfig(*cfg);
    int64_t choices = tokens * cfg->top_k;
    checkOptionalFloatView(correctionBias, cfg->experts, "correction_bias");
    const float *scoreData = gateArray<const float>(
        scores, MOERT_F32, tokens * cfg->experts, "scores");
    int32_t *idData = gateArray<int32_t>(ids, MOERT_I32, choices, "ids");
    float *weightData =
        gateArray<float>(weights, MOERT_F32, choices, "weights");
    MOERT_ROUTE_DEVICE(ctx, gateSelect(ctx, *cfg, scores, correctionBias,
                                       tokens, ids, weights));
    const float *biasData = isPresent(correctionBias)
                                ? floatInput(ctx, 1, correctionBias,
                                             cfg->experts, "correction_bias")
                                : nullptr;
    selectTopK(*cfg, scoreData, biasData, tokens, idData, weightData);
  });
}

moert_status_t moert_gate_slots(moert_context_t ctx,
                                const moert_gate_config_t *cfg,
                                moert_view_t ids, moert_view_t weights,
                                int64_t tokens, moert_view_t slots,
                                moert_view_t counts, int64_t *capacity) {
  return guard("moert_gate_slots", [&] {
    checkContext(ctx);
    require(cfg != nullptr && capacity != nullptr && tokens >= 0,
            "bad arguments");
    validateGateConfig(*cfg);
    int64_t choices = tokens * cfg->top_k;
    const int32_t *idData =
        gateArray<const int32_t>(ids, MOERT_I32, choices, "ids");
    const float *weightData =
        gateArray<const float>(weights, MOERT_F32, choices, "weights");
    int32_t *slotData = gateArray<int32_t>(slots, MOERT_I32, choices, "slots");
    int32_t *countData =
        gateArray<int32_t>(counts, MOERT_I32, cfg->experts, "counts");
    MOERT_ROUTE_DEVICE(ctx, gateSlots(ctx, *cfg, ids, weights, tokens, slots,
                                      counts, capacity));
    *capacity =
        assignSlots(*cfg, tokens, idData, weightData, slotData, countData);
  });
}

moert_status_t moert_gate_normalize(moert_context_t ctx,
                                    const moert_gate_config_t *cfg,
                                    moert_view_t slots, int64_t tokens,
                                    moert_view_t weights) {
  return guard("moert_gate_normalize", [&] {
    checkContext(ctx);
    require(cfg != nullptr && tokens >= 0, "bad arguments");
    validateGateConfig(*cfg);
    int64_t choices = tokens * cfg->top_k;
    const int32_t *slotData =
        gateArray<const int32_t>(slots, MOERT_I32, choices, "slots");
    float *weightData =
        gateArray<float>(weights, MOERT_F32, choices, "weights");
    MOERT_ROUTE_DEVICE(ctx,
                       gateNormalize(ctx, *cfg, slots, tokens, weights));
    normalizeWeights(*cfg, tokens, slotData, weightData);
  });
}

} // extern "C"
