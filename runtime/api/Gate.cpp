//===- runtime/api/Gate.cpp - Router and gate -----------------------------===//

#include "runtime/common/Gate.h"
#include "runtime/api/Error.h"
#include "runtime/api/Validate.h"

using namespace moert;
using namespace moert::api;

namespace {

// The [S, k] choices and [E] counts of the slot assignment.
struct SlotOperands {
  Operand ids, weights, slots, counts;
};

SlotOperands slotOperands(const moert_gate_config_t &cfg, int64_t tokens,
                          moert_view_t ids, moert_view_t weights,
                          moert_view_t slots, moert_view_t counts) {
  int64_t choices = tokens * cfg.top_k;
  return {typedOperand(ids, MOERT_I32, choices, "ids"),
          typedOperand(weights, MOERT_F32, choices, "weights"),
          typedOperand(slots, MOERT_I32, choices, "slots"),
          typedOperand(counts, MOERT_I32, cfg.experts, "counts")};
}

// The checks every gate stage starts with; hasCapacity: the capacity
// output of moert_gate_slots is present.
void checkGateStage(moert_context_t ctx, const moert_gate_config_t *cfg,
                    int64_t tokens, bool hasCapacity = true) {
  checkContext(ctx);
  require(cfg != nullptr && hasCapacity && tokens >= 0, "bad arguments");
  validateGateConfig(*cfg);
}

// sparsemixer's weights are softmaxes around the chosen logits: a bias
// that moved the choices would break what they mean.
void requireNoSparsemixerBias(const moert_gate_config_t &cfg,
                              const Operand &bias) {
  require(cfg.score_func != MOERT_SCORE_SPARSEMIXER || !bias.present(),
          "gate: sparsemixer takes no correction_bias");
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
  cfg->norm_p = 1.0f;
  cfg->jitter_eps = 0.0f;
}

moert_status_t moert_router(moert_context_t ctx, moert_view_t x,
                            moert_view_t wg, moert_view_t bias,
                            moert_view_t logits, int64_t tokens, int64_t hidden,
                            int64_t experts) {
  return guard("moert_router", [&] {
    checkContext(ctx);
    require(tokens >= 0 && hidden >= 1 && experts >= 1, "bad extents: tokens ",
            tokens, ", hidden ", hidden, ", experts ", experts);
    Operand out = typedOperand(logits, MOERT_F32, tokens * experts, "logits");
    Operand in = floatOperand(x, tokens * hidden, "x");
    Operand weight = floatOperand(wg, experts * hidden, "wg");
    Operand b = optionalFloatOperand(bias, experts, "bias");
    ctx->backend().router(ctx->rank, in, weight, b, out, tokens, hidden,
                          experts);
  });
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
    int64_t experts = cfg->experts;
    Operand in = floatOperand(logits, tokens * experts, "logits");
    Operand bias =
        optionalFloatOperand(correctionBias, experts, "correction_bias");
    requireNoSparsemixerBias(*cfg, bias);
    SlotOperands out = slotOperands(*cfg, tokens, ids, weights, slots, counts);
    validateGateTokens(*cfg, tokens);
    *capacity = ctx->backend().gate(ctx->rank, *cfg, in, bias, tokens, out.ids,
                                    out.weights, out.slots, out.counts);
  });
}

moert_status_t moert_gate_scores(moert_context_t ctx,
                                 const moert_gate_config_t *cfg,
                                 moert_view_t logits, int64_t tokens,
                                 moert_view_t scores) {
  return guard("moert_gate_scores", [&] {
    checkGateStage(ctx, cfg, tokens);
    int64_t count = tokens * cfg->experts;
    Operand in = floatOperand(logits, count, "logits");
    Operand out = typedOperand(scores, MOERT_F32, count, "scores");
    ctx->backend().gateScores(ctx->rank, *cfg, in, tokens, out);
  });
}

moert_status_t moert_gate_select(moert_context_t ctx,
                                 const moert_gate_config_t *cfg,
                                 moert_view_t scores,
                                 moert_view_t correctionBias, int64_t tokens,
                                 moert_view_t ids, moert_view_t weights) {
  return guard("moert_gate_select", [&] {
    checkGateStage(ctx, cfg, tokens);
    int64_t choices = tokens * cfg->top_k;
    Operand bias =
        optionalFloatOperand(correctionBias, cfg->experts, "correction_bias");
    requireNoSparsemixerBias(*cfg, bias);
    Operand in =
        typedOperand(scores, MOERT_F32, tokens * cfg->experts, "scores");
    Operand idOut = typedOperand(ids, MOERT_I32, choices, "ids");
    Operand weightOut = typedOperand(weights, MOERT_F32, choices, "weights");
    ctx->backend().gateSelect(ctx->rank, *cfg, in, bias, tokens, idOut,
                              weightOut);
  });
}

moert_status_t moert_gate_slots(moert_context_t ctx,
                                const moert_gate_config_t *cfg,
                                moert_view_t ids, moert_view_t weights,
                                int64_t tokens, moert_view_t slots,
                                moert_view_t counts, int64_t *capacity) {
  return guard("moert_gate_slots", [&] {
    checkGateStage(ctx, cfg, tokens, capacity != nullptr);
    SlotOperands io = slotOperands(*cfg, tokens, ids, weights, slots, counts);
    validateGateTokens(*cfg, tokens);
    *capacity = ctx->backend().gateSlots(ctx->rank, *cfg, io.ids, io.weights,
                                         tokens, io.slots, io.counts);
  });
}

moert_status_t moert_gate_normalize(moert_context_t ctx,
                                    const moert_gate_config_t *cfg,
                                    moert_view_t slots, int64_t tokens,
                                    moert_view_t weights) {
  return guard("moert_gate_normalize", [&] {
    checkGateStage(ctx, cfg, tokens);
    int64_t choices = tokens * cfg->top_k;
    Operand slotIn = typedOperand(slots, MOERT_I32, choices, "slots");
    Operand weightOut = typedOperand(weights, MOERT_F32, choices, "weights");
    ctx->backend().gateNormalize(ctx->rank, *cfg, slotIn, tokens, weightOut);
  });
}

} // extern "C"
