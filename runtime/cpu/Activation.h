//===- runtime/cpu/Activation.h - Activations over fp32 rows ----*- C++ -*-===//
//
// The FFN activations over fp32 data, one implementation for every caller
// (moert_activation and the GEMM epilogues), so the stage calls of
// moert_experts give its fused outputs exactly. SiLU is vectorized where
// the GEMM kernels are AVX-512; the others apply runtime/common/Activation.h.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_ACTIVATION_H
#define MOERT_CPU_ACTIVATION_H

#include "runtime/moert.h"

#include <cstdint>

namespace moert::cpu {

void activateInPlace(moert_activation_t activation, float *data,
                     int64_t count);

} // namespace moert::cpu

#endif // MOERT_CPU_ACTIVATION_H
