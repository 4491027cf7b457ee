//===- runtime/common/Activation.h - FFN activations ------------*- C++ -*-===//
//
// The activations of moert_activation_t, one definition for the CPU backend
// and the CUDA kernels. Plain expf / erff / tanhf: what std::exp etc. on a
// float resolve to on the host, and CUDA's device functions of those names.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_ACTIVATION_H
#define MOERT_COMMON_ACTIVATION_H

#include "runtime/common/HostDevice.h"
#include "runtime/moert.h"

#include <cmath>

namespace moert {

MOERT_HD inline float activate(moert_activation_t activation, float x) {
  switch (activation) {
  case MOERT_ACT_SILU:
    return x / (1.0f + expf(-x));
  case MOERT_ACT_GELU:
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
  case MOERT_ACT_GELU_TANH: {
    float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
  }
  case MOERT_ACT_RELU:
    return x > 0.0f ? x : 0.0f;
  case MOERT_ACT_SWIGLU_CLAMPED: // binary: swigluClamped
    break;
  }
  return NAN; // unreachable: callers check isActivation first
}

// gpt-oss's gated combination of one gate and one up value (transformers'
// GptOssExperts): the gate clamped above at limit, the up value to
// [-limit, limit]; (up + 1) * gate * sigmoid(alpha * gate).
MOERT_HD inline float swigluClamped(float gate, float up, float alpha,
                                    float limit) {
  gate = fminf(gate, limit);
  up = fminf(fmaxf(up, -limit), limit);
  return (up + 1.0f) * (gate / (1.0f + expf(-alpha * gate)));
}

inline bool isActivation(moert_activation_t activation) {
  return activation == MOERT_ACT_SILU || activation == MOERT_ACT_GELU ||
         activation == MOERT_ACT_GELU_TANH || activation == MOERT_ACT_RELU;
}

} // namespace moert

#endif // MOERT_COMMON_ACTIVATION_H
