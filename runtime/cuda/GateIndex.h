//===- runtime/cuda/GateIndex.h - Gate steps per thread ---------*- C++ -*-===//
//
// The gate of runtime/moert.h (reference: runtime/common/Gate.cpp) split into
// per-thread steps over runtime/common/GateMath.h's formulas. Each kernel in
// Gate.cu is one of these functions applied to one token, expert, chunk or
// position; runtime/cuda/test runs the same functions in the same phase
// order on the CPU and compares with the reference.
//
// Capacity slots without atomics, so they are deterministic: positions are
// visited in drop order (token-major: p = s*k + j; choice-major: p = j*S + s)
// and cut into chunks; slot(p) = (choices of the same expert in earlier
// chunks) + (those earlier in p's chunk).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CUDA_GATEINDEX_H
#define MOERT_CUDA_GATEINDEX_H

#include "runtime/common/GateMath.h"

#include <cstdint>

namespace moert::cuda {

// Groups kept in registers per token (DeepSeek-V3 uses 8).
constexpr int32_t maxGateGroups = 64;
// Drop-order positions per chunk of the slot scan.
constexpr int64_t slotChunk = 256;

// Step 3: sel = -inf outside the topk_group best groups.
MOERT_HD inline void limitGroups(const moert_gate_config_t &cfg, float *sel) {
  int32_t groups = cfg.n_group, size = cfg.experts / groups;
  float score[maxGateGroups];
  bool kept[maxGateGroups];
  for (int32_t g = 0; g < groups; ++g) {
    score[g] = groupScore(cfg.group_score, sel + g * size, size);
    kept[g] = false;
  }
  for (int32_t r = 0; r < cfg.topk_group; ++r) {
    int32_t best = -1;
    for (int32_t g = 0; g < groups; ++g)
      if (!kept[g] && (best < 0 || ranksBefore(score[g], g, score[best], best)))
        best = g;
    kept[best] = true;
  }
  for (int32_t g = 0; g < groups; ++g)
    if (!kept[g])
      for (int32_t i = 0; i < size; ++i)
        sel[g * size + i] = -INFINITY;
}

// Steps 2-5 for one token: ids[k] by descending sel (ties: lower expert),
// weights[k] the unbiased scores. sel is scratch of E floats.
MOERT_HD inline void selectToken(const moert_gate_config_t &cfg,
                                 const float *scores, const float *bias,
                                 float *sel, int32_t *ids, float *weights) {
  int32_t experts = cfg.experts;
  for (int32_t e = 0; e < experts; ++e)
    sel[e] = scores[e] + (bias ? bias[e] : 0.0f);
  if (cfg.n_group > 1)
    limitGroups(cfg, sel);
  for (int32_t j = 0; j < cfg.top_k; ++j) {
    int32_t best = -1;
    for (int32_t e = 0; e < experts; ++e) {
      bool taken = false;
      for (int32_t i = 0; i < j; ++i)
        taken = taken || ids[i] == e;
      if (!taken && (best < 0 || ranksBefore(sel[e], e, sel[best], best)))
        best = e;
    }
    ids[j] = best;
    weights[j] = scores[best];
  }
  if (cfg.score_func == MOERT_SCORE_SPARSEMIXER)
    sparsemixerWeights(cfg, scores, ids, weights);
}

// Flat (s*k + j) index of drop-order position p.
MOERT_HD inline int64_t flatIndexAt(int64_t p, bool choiceMajor, int64_t tokens,
                                    int32_t topK) {
  return choiceMajor ? (p % tokens) * topK + p / tokens : p;
}

// Choices of expert e at drop-order positions [p0, p1).
MOERT_HD inline int32_t countExpertInRange(const int32_t *ids, bool choiceMajor,
                                           int64_t tokens, int32_t topK,
                                           int64_t p0, int64_t p1, int32_t e) {
  int32_t count = 0;
  for (int64_t p = p0; p < p1; ++p)
    count += ids[flatIndexAt(p, choiceMajor, tokens, topK)] == e;
  return count;
}

// Phase 1, one (chunk, expert): counts[chunk * E + e].
MOERT_HD inline void countChunk(const int32_t *ids, bool choiceMajor,
                                int64_t tokens, int32_t topK, int32_t experts,
                                int64_t chunk, int32_t e, int32_t *counts) {
  int64_t total = tokens * topK, p0 = chunk * slotChunk;
  int64_t p1 = p0 + slotChunk < total ? p0 + slotChunk : total;
  counts[chunk * experts + e] =
      countExpertInRange(ids, choiceMajor, tokens, topK, p0, p1, e);
}

// Phase 2, one expert: exclusive scan of its column over chunks (in place:
// counts become offsets); returns the expert's total.
MOERT_HD inline int32_t scanChunkColumn(int32_t *counts, int64_t chunks,
                                        int32_t experts, int32_t e) {
  int32_t running = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    int32_t n = counts[c * experts + e];
    counts[c * experts + e] = running;
    running += n;
  }
  return running;
}

// Phase 3, one position: its slot before capacity, written at its flat index.
MOERT_HD inline void assignSlot(const int32_t *ids, bool choiceMajor,
                                int64_t tokens, int32_t topK, int32_t experts,
                                const int32_t *offsets, int64_t p,
                                int32_t *slots) {
  int64_t flat = flatIndexAt(p, choiceMajor, tokens, topK);
  int32_t e = ids[flat];
  int64_t chunk = p / slotChunk;
  slots[flat] = offsets[chunk * experts + e] +
                countExpertInRange(ids, choiceMajor, tokens, topK,
                                   chunk * slotChunk, p, e);
}

// PROBS, one pass: starts[e] = where expert e's members begin in the member
// table (exclusive scan of the per-expert totals).
MOERT_HD inline void memberStarts(const int32_t *totals, int32_t experts,
                                  int32_t *starts) {
  int32_t running = 0;
  for (int32_t e = 0; e < experts; ++e) {
    starts[e] = running;
    running += totals[e];
  }
}

// PROBS, one choice i of expert e: members[0..n) are e's choices (flat
// indices) in flat order. Kept iff fewer than `capacity` members rank
// before it by (weight desc, flat index asc): the token order, and within a
// token (an expert may repeat in moert_gate_slots) the choice order.
MOERT_HD inline bool probsKept(const int32_t *members, int32_t n,
                               const float *weights, int64_t i,
                               int64_t capacity) {
  int64_t before = 0;
  for (int32_t m = 0; m < n; ++m)
    before += ranksBefore(weights[members[m]], members[m], weights[i], i);
  return before < capacity;
}

// PROBS: slot of a kept member at flat-order position `position`.
MOERT_HD inline int32_t probsSlot(const int32_t *members, int32_t position,
                                  const uint8_t *kept) {
  int32_t slot = 0;
  for (int32_t m = 0; m < position; ++m)
    slot += kept[members[m]];
  return slot;
}

} // namespace moert::cuda

#endif // MOERT_CUDA_GATEINDEX_H
