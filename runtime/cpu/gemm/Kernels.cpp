//===- runtime/cpu/gemm/Kernels.cpp - Picking a weight dtype's kernels ----===//

#include "runtime/cpu/gemm/Kernels.h"

#include "runtime/cpu/gemm/Isa.h"
#include "runtime/cpu/gemm/Quantized.h"

using namespace moert;
using namespace moert::cpu::gemm;

const KernelSet &moert::cpu::gemm::kernelsFor(moert_dtype_t weights,
                                              int64_t rows) {
#if defined(__x86_64__)
  Isa level = isa();
  if (weights == MOERT_BF16 && level == Isa::Amx && rows >= amxBf16Rows)
    return amxKernels();
  if (weights == MOERT_BF16 && level >= Isa::Avx512Bf16)
    return avx512Bf16Kernels(decode());
  if (level >= Isa::Avx512)
    return avx512Kernels(weights, decode());
  if (level >= Isa::Avx2)
    return avx2Kernels(weights);
#endif
  return genericKernels(weights);
}

const KernelSet &moert::cpu::gemm::kernelsForQuantized(
    const std::vector<const Quantization *> &weights, int64_t rows) {
#if defined(__x86_64__)
  bool inPlace = isa() >= Isa::Avx512Bf16 && hasAvx512Vbmi();
  for (const Quantization *quant : weights)
    inPlace = inPlace && quant &&
              quant->format == MOERT_WEIGHTS_FP8_E4M3_BLOCK &&
              quant->blockCols % fp8InPlaceStep == 0;
  if (inPlace && !weights.empty())
    return isa() == Isa::Amx && rows >= amxFp8Rows ? amxFp8Kernels()
                                                   : avx512Bf16Fp8Kernels();
#endif
  return kernelsFor(MOERT_F32, rows);
}
