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

// A gated FFN's hidden block: out[o * inner + i] = act(a) * b of the inputs'
// elements a = first[o * ld + i], b = second[o * ld + i], rounded to bf16
// (kept in fp32) when `bf16`: the bits of activateInPlace, the product and
// gemm::roundToBf16InPlace in sequence, in one pass. `out` may be `first`
// when ld == inner (the hidden formed in place).
void gatedHidden(moert_activation_t activation, const float *first,
                 const float *second, int64_t ld, int64_t outer, int64_t inner,
                 bool bf16, float *out);

} // namespace moert::cpu

#endif // MOERT_CPU_ACTIVATION_H
