//===- runtime/cpu/gemm/Kernels.h - The kernels of each ISA -----*- C++ -*-===//
#ifndef MOERT_CPU_GEMM_KERNELS_H
#define MOERT_CPU_GEMM_KERNELS_H

#include "runtime/cpu/gemm/Kernel.h"

#include <vector>

namespace moert::cpu::gemm {

// The kernels for weights of `weights` dtype (f32, f16 or bf16) on the
// ISA this process uses (gemm::isa()).
const KernelSet &kernelsFor(moert_dtype_t weights);
// For quantized weights: the set that reads every one of them in place
// (FP8 e4m3 whose scale blocks span whole steps of fp8InPlaceStep columns,
// on AVX-512-BF16 with VBMI), else the fp32 set, whose items runQuantized
// widens.
const KernelSet &
kernelsForQuantized(const std::vector<const Quantization *> &weights);
constexpr int64_t fp8InPlaceStep = 64;

// Each ISA's sets; only kernelsFor picks among them.
const KernelSet &genericKernels(moert_dtype_t weights);
const KernelSet &avx2Kernels(moert_dtype_t weights);
const KernelSet &avx512Kernels(moert_dtype_t weights);
const KernelSet &avx512Bf16Kernels();
// FP8 e4m3 block-scaled weights read in place (kernelsForQuantized).
const KernelSet &avx512Bf16Fp8Kernels();
const KernelSet &amxKernels();

} // namespace moert::cpu::gemm

#endif // MOERT_CPU_GEMM_KERNELS_H
