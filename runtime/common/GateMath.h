//===- runtime/common/GateMath.h - Per-token gate formulas ------*- C++ -*-===//
//
// The formulas of moert_gate (runtime/moert.h) that act on one token or one
// group, written once for the reference gate (runtime/common/Gate.cpp, which
// owns the order of the steps and the slot assignment) and the CUDA kernels
// (runtime/cuda/GateIndex.h, which splits the steps across threads).
// Total order of every selection: higher value first, then the lower index.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_GATEMATH_H
#define MOERT_COMMON_GATEMATH_H

#include "runtime/common/Capacity.h"
#include "runtime/common/HostDevice.h"
#include "runtime/moert.h"

#include <cfloat>
#include <cmath>
#include <cstdint>

namespace moert {

MOERT_HD inline bool ranksBefore(float a, int64_t ia, float b, int64_t ib) {
  return a > b || (a == b && ia < ib);
}

// Step 1: scores[E] of one token from its logits[E]. expf: what std::exp on
// a float calls on the host, and CUDA's device function of that name.
MOERT_HD inline void scoreToken(moert_score_func_t func, int32_t experts,
                                const float *logits, float *scores) {
  if (func == MOERT_SCORE_SPARSEMIXER) {
    for (int32_t e = 0; e < experts; ++e)
      scores[e] = logits[e];
    return;
  }
  if (func == MOERT_SCORE_SIGMOID) {
    for (int32_t e = 0; e < experts; ++e)
      scores[e] = 1.0f / (1.0f + expf(-logits[e]));
    return;
  }
  float maxLogit = logits[0];
  for (int32_t e = 1; e < experts; ++e)
    maxLogit = logits[e] > maxLogit ? logits[e] : maxLogit;
  float sum = 0;
  for (int32_t e = 0; e < experts; ++e) {
    scores[e] = expf(logits[e] - maxLogit);
    sum += scores[e];
  }
  for (int32_t e = 0; e < experts; ++e)
    scores[e] /= sum;
}

// Step 3: the score of one group from its members' selection scores.
MOERT_HD inline float groupScore(moert_group_score_t kind, const float *member,
                                 int32_t size) {
  if (kind == MOERT_GROUP_SCORE_MAX) {
    float best = member[0];
    for (int32_t i = 1; i < size; ++i)
      best = member[i] > best ? member[i] : best;
    return best;
  }
  float best = -INFINITY, second = -INFINITY;
  for (int32_t i = 0; i < size; ++i) {
    if (member[i] > best) {
      second = best;
      best = member[i];
    } else if (member[i] > second) {
      second = member[i];
    }
  }
  return best + second;
}

// Step 5 of SPARSEMIXER, one choice (transformers' sparsemixer in eval):
// the softmax at `chosen` over the logits left unmasked, where l is masked
// when it belongs to `excluded` (-1: none) or (t - l) / max(|l|, t) >
// 2 * jitterEps, t = logits[chosen] (the largest of those not excluded).
// A 0/0 ratio is NaN, so not masked, as in torch.
MOERT_HD inline float sparsemixerWeight(int32_t experts, const float *logits,
                                        int32_t chosen, int32_t excluded,
                                        float jitterEps) {
  float top = logits[chosen], limit = 2.0f * jitterEps, sum = 0;
  for (int32_t e = 0; e < experts; ++e) {
    if (e == excluded)
      continue;
    float magnitude = fabsf(logits[e]);
    float factor = magnitude > top ? magnitude : top;
    if ((top - logits[e]) / factor > limit)
      continue;
    sum += expf(logits[e] - top);
  }
  return 1.0f / sum;
}

// Step 5 of SPARSEMIXER for one token whose scores are its logits and
// ids[2] its top-2: the first weight over all experts, the second over all
// but the first choice.
MOERT_HD inline void sparsemixerWeights(const moert_gate_config_t &cfg,
                                        const float *logits, const int32_t *ids,
                                        float *w) {
  w[0] = sparsemixerWeight(cfg.experts, logits, ids[0], -1, cfg.jitter_eps);
  w[1] = sparsemixerWeight(cfg.experts, logits, ids[1], ids[0], cfg.jitter_eps);
}

// Steps 6 (drops zeroed) to 8 on one token's weights[k], once its slots[k]
// are final (-1: dropped).
MOERT_HD inline void normalizeTokenWeights(const moert_gate_config_t &cfg,
                                           float *w, const int32_t *slots) {
  int32_t topK = cfg.top_k;
  if (cfg.norm == MOERT_NORM_SELECTED ||
      cfg.norm == MOERT_NORM_SELECTED_CLAMPED) {
    float sum = 0;
    for (int32_t j = 0; j < topK; ++j)
      sum += w[j];
    float denominator = cfg.norm == MOERT_NORM_SELECTED
                            ? sum + cfg.norm_epsilon
                            : (sum > cfg.norm_epsilon ? sum : cfg.norm_epsilon);
    for (int32_t j = 0; j < topK; ++j)
      w[j] = denominator > 0 ? w[j] / denominator : 0.0f;
  }
  if (cfg.norm == MOERT_NORM_PNORM) {
    // torch.norm(w, p): (sum |w|^p)^(1/p).
    float sum = 0;
    for (int32_t j = 0; j < topK; ++j)
      sum += powf(fabsf(w[j]), cfg.norm_p);
    float denominator = powf(sum, 1.0f / cfg.norm_p);
    for (int32_t j = 0; j < topK; ++j)
      w[j] = denominator > 0 ? w[j] / denominator : 0.0f;
  }
  for (int32_t j = 0; j < topK; ++j)
    if (slots[j] < 0)
      w[j] = 0;
  if (cfg.norm == MOERT_NORM_KEPT) {
    float sum = 0;
    for (int32_t j = 0; j < topK; ++j)
      sum += w[j];
    float denominator = sum > FLT_EPSILON ? sum : FLT_EPSILON;
    for (int32_t j = 0; j < topK; ++j)
      w[j] /= denominator;
  }
  for (int32_t j = 0; j < topK; ++j)
    w[j] *= cfg.routed_scaling_factor;
}

// C for capacity_factor > 0 (a dropless C is the largest count, or the
// static capacity).
inline int64_t capacityFor(const moert_gate_config_t &cfg, int64_t tokens) {
  return capacityFor(cfg.top_k, tokens, cfg.experts, cfg.capacity_factor,
                     cfg.min_capacity);
}

} // namespace moert

#endif // MOERT_COMMON_GATEMATH_H
