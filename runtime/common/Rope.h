//===- runtime/common/Rope.h - Rotary frequencies ---------------*- C++ -*-===//
//
// The one home of the rotary-embedding formulas (Hugging Face
// ROPE_INIT_FUNCTIONS: default, linear, llama3, yarn, longrope), for the CPU
// backend and the CUDA kernels alike. Computed in fp32 as transformers does, so
// that positions * inv_freq rounds the same way.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_ROPE_H
#define MOERT_COMMON_ROPE_H

#include "runtime/common/HostDevice.h"
#include "runtime/moert.h"

#include <math.h>

namespace moert {

// YaRN's find_correction_dim.
MOERT_HD inline double yarnCorrectionDim(double rotations, int64_t dim,
                                         double base, double maxPosition) {
  return (dim * log(maxPosition / (rotations * 2.0 * 3.14159265358979323846))) /
         (2.0 * log(base));
}

// Whether a longrope call takes the long factors: transformers compares
// max(position_ids) + 1 of the forward with original_max_position_embeddings.
MOERT_HD inline bool ropeLongRegime(const moert_rope_config_t &cfg,
                                    int32_t maxPosition) {
  return cfg.type == MOERT_ROPE_LONGROPE &&
         static_cast<int64_t>(maxPosition) + 1 > cfg.original_max_position;
}

// What multiplies cos and sin.
MOERT_HD inline float ropeCosSinScale(const moert_rope_config_t &cfg,
                                      bool longRegime) {
  if (cfg.type == MOERT_ROPE_LONGROPE)
    return static_cast<float>(longRegime ? cfg.long_mscale : cfg.short_mscale);
  return static_cast<float>(cfg.attention_factor);
}

// The dims of a head_dim head that rotate (moert_rope_config_t.rotary_dim).
MOERT_HD inline int64_t ropeRotaryDim(const moert_rope_config_t &cfg,
                                      int64_t headDim) {
  return cfg.rotary_dim == 0 ? headDim : cfg.rotary_dim;
}

// Where dimension pair i of a head sits: (i, i + rotaryDim / 2) for
// rotate_half, (2i, 2i + 1) interleaved.
MOERT_HD inline void ropePair(const moert_rope_config_t &cfg, int64_t i,
                              int64_t rotaryDim, int64_t &first,
                              int64_t &second) {
  first = cfg.interleaved ? 2 * i : i;
  second = cfg.interleaved ? 2 * i + 1 : i + rotaryDim / 2;
}

// inv_freq of dimension pair i in [0, dim / 2); longRegime matters to
// longrope only.
MOERT_HD inline float ropeInvFreq(const moert_rope_config_t &cfg, int64_t i,
                                  int64_t dim, bool longRegime = false) {
  float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
  float posFreq = powf(static_cast<float>(cfg.theta), exponent);
  float base = 1.0f / posFreq;
  switch (cfg.type) {
  case MOERT_ROPE_DEFAULT:
    return base;
  case MOERT_ROPE_LINEAR:
    return base / static_cast<float>(cfg.factor);
  case MOERT_ROPE_LLAMA3: {
    double old = static_cast<double>(cfg.original_max_position);
    double lowWavelen = old / cfg.low_freq_factor;
    double highWavelen = old / cfg.high_freq_factor;
    float wavelen = 2.0f * 3.14159265358979323846f / base;
    float scaled =
        wavelen > lowWavelen ? base / static_cast<float>(cfg.factor) : base;
    if (wavelen < highWavelen || wavelen > lowWavelen)
      return scaled;
    float smooth =
        static_cast<float>((old / wavelen - cfg.low_freq_factor) /
                           (cfg.high_freq_factor - cfg.low_freq_factor));
    return (1.0f - smooth) * scaled / static_cast<float>(cfg.factor) +
           smooth * scaled;
  }
  case MOERT_ROPE_YARN: {
    double maxPos = static_cast<double>(cfg.original_max_position);
    double low = yarnCorrectionDim(cfg.beta_fast, dim, cfg.theta, maxPos);
    double high = yarnCorrectionDim(cfg.beta_slow, dim, cfg.theta, maxPos);
    if (cfg.truncate) {
      low = floor(low);
      high = ceil(high);
    }
    low = low > 0.0 ? low : 0.0;
    high = high < dim - 1 ? high : dim - 1;
    if (low == high)
      high += 0.001;
    float ramp = (static_cast<float>(i) - static_cast<float>(low)) /
                 static_cast<float>(high - low);
    ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
    float extrapolation = 1.0f - ramp;
    float interpolation = 1.0f / (static_cast<float>(cfg.factor) * posFreq);
    return interpolation * (1.0f - extrapolation) + base * extrapolation;
  }
  case MOERT_ROPE_LONGROPE: {
    // 1 / (ext * base^shape), the fp32 product first as transformers does.
    float ext = longRegime ? cfg.long_factor[i] : cfg.short_factor[i];
    return 1.0f / (ext * posFreq);
  }
  }
  return base;
}

} // namespace moert

#endif // MOERT_COMMON_ROPE_H
