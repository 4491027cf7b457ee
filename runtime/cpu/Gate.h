//===- runtime/cpu/Gate.h - Gating semantics --------------------*- C++ -*-===//
//
// The one home of the runtime's gating semantics (see moert_gate in
// runtime/moert.h for the exact rules). Plain fp32 arrays in and out so the
// CUDA backend can check itself against it.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_GATE_H
#define MOERT_CPU_GATE_H

#include "runtime/moert.h"

#include <cstdint>

namespace moert::cpu {

// Throws moert::Error(MOERT_INVALID_ARGUMENT) naming the bad attribute.
void validateGateConfig(const moert_gate_config_t &cfg);

// logits[S,E]; correctionBias[E] or null. Returns the capacity C.
int64_t computeGate(const moert_gate_config_t &cfg, const float *logits,
                    const float *correctionBias, int64_t tokens, int32_t *ids,
                    float *weights, int32_t *slots, int32_t *counts);

} // namespace moert::cpu

#endif // MOERT_CPU_GATE_H
