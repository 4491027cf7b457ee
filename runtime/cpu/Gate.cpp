//===- runtime/cpu/Gate.cpp - The gate on the CPU -------------------------===//
//
// The reference gate of runtime/common/Gate.h on host memory; float inputs
// other than f32 are widened first.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/Backend.h"

#include "runtime/common/Gate.h"

using namespace moert;
using namespace moert::cpu;

namespace {
// Scratch panels of the widened inputs.
enum GateSlot : size_t { slotLogits = 0, slotBias = 1 };

const float *widenedBias(Scratch &scratch, Operand correctionBias,
                         int32_t experts) {
  return correctionBias.present()
             ? floatInput(scratch, slotBias, correctionBias, experts)
             : nullptr;
}
} // namespace

int64_t CpuBackend::gate(int32_t rank, const moert_gate_config_t &cfg,
                         Operand logits, Operand correctionBias, int64_t tokens,
                         Operand ids, Operand weights, Operand slots,
                         Operand counts) {
  Scratch &s = scratch(rank);
  const float *logitData =
      floatInput(s, slotLogits, logits, tokens * cfg.experts);
  return computeGate(cfg, logitData,
                     widenedBias(s, correctionBias, cfg.experts), tokens,
                     ids.as<int32_t>(), weights.as<float>(),
                     slots.as<int32_t>(), counts.as<int32_t>());
}

void CpuBackend::gateScores(int32_t rank, const moert_gate_config_t &cfg,
                            Operand logits, int64_t tokens, Operand scores) {
  scoreTokens(
      cfg, floatInput(scratch(rank), slotLogits, logits, tokens * cfg.experts),
      tokens, scores.as<float>());
}

void CpuBackend::gateSelect(int32_t rank, const moert_gate_config_t &cfg,
                            Operand scores, Operand correctionBias,
                            int64_t tokens, Operand ids, Operand weights) {
  selectTopK(cfg, scores.as<const float>(),
             widenedBias(scratch(rank), correctionBias, cfg.experts), tokens,
             ids.as<int32_t>(), weights.as<float>());
}

int64_t CpuBackend::gateSlots(int32_t rank, const moert_gate_config_t &cfg,
                              Operand ids, Operand weights, int64_t tokens,
                              Operand slots, Operand counts) {
  return assignSlots(cfg, tokens, ids.as<const int32_t>(),
                     weights.as<const float>(), slots.as<int32_t>(),
                     counts.as<int32_t>());
}

void CpuBackend::gateNormalize(int32_t rank, const moert_gate_config_t &cfg,
                               Operand slots, int64_t tokens, Operand weights) {
  normalizeWeights(cfg, tokens, slots.as<const int32_t>(), weights.as<float>());
}
