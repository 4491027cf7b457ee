//===- runtime/common/Gate.h - Gating semantics -----------------*- C++ -*-===//
//
// The reference gate (see moert_gate in runtime/moert.h for the exact
// rules): the steps in order over runtime/common/GateMath.h's per-token
// formulas, and the rules of a configuration. Plain fp32 arrays in and out:
// the CPU backend runs it, the CUDA backend checks its configurations with
// it and its parallel decomposition against it.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_GATE_H
#define MOERT_COMMON_GATE_H

#include "runtime/moert.h"

#include <cstdint>

namespace moert {

// Throws moert::Error(MOERT_INVALID_ARGUMENT) naming the bad attribute.
void validateGateConfig(const moert_gate_config_t &cfg);
// The rules between the configuration and a step's token count.
void validateGateTokens(const moert_gate_config_t &cfg, int64_t tokens);

// The stages of moert_gate (steps of runtime/moert.h), each its own runtime
// call in the unfused lowering:
// 1. scores[S,E] from logits[S,E].
void scoreTokens(const moert_gate_config_t &cfg, const float *logits,
                 int64_t tokens, float *scores);
// 2-5. ids and unbiased weights [S,k] from scores; correctionBias[E] or null.
void selectTopK(const moert_gate_config_t &cfg, const float *scores,
                const float *correctionBias, int64_t tokens, int32_t *ids,
                float *weights);
// 6. slots [S,k] and counts [E]; returns the capacity C.
int64_t assignSlots(const moert_gate_config_t &cfg, int64_t tokens,
                    const int32_t *ids, const float *weights, int32_t *slots,
                    int32_t *counts);
// 7-8. normalisation (drops zeroed) and scaling of weights [S,k] in place.
void normalizeWeights(const moert_gate_config_t &cfg, int64_t tokens,
                      const int32_t *slots, float *weights);

// All of them. logits[S,E]; correctionBias[E] or null. Returns C.
int64_t computeGate(const moert_gate_config_t &cfg, const float *logits,
                    const float *correctionBias, int64_t tokens, int32_t *ids,
                    float *weights, int32_t *slots, int32_t *counts);

} // namespace moert

#endif // MOERT_COMMON_GATE_H
