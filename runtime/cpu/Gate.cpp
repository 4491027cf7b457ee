//===- runtime/cpu/Gate.cpp - The gate entry points
//------------------------===//

#include "runtime/cpu/Backend.h"

#include "runtime/common/Gate.h"

using namespace moert;
using namespace moert::cpu;

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
    MOERT_ROUTE_DEVICE(ctx, gateNormalize(ctx, *cfg, slots, tokens, weights));
    normalizeWeights(*cfg, tokens, slotData, weightData);
  });
}

} // extern "C"
