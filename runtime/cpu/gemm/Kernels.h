//===- runtime/cpu/gemm/Kernels.h - The kernels of each ISA -----*- C++ -*-===//
#ifndef MOERT_CPU_GEMM_KERNELS_H
#define MOERT_CPU_GEMM_KERNELS_H

#include "runtime/cpu/gemm/Kernel.h"

namespace moert::cpu::gemm {

// The kernels for weights of `weights` dtype (f32, f16 or bf16) on the
// ISA this process uses (gemm::isa()).
const KernelSet &kernelsFor(moert_dtype_t weights);

// Each ISA's sets; only kernelsFor picks among them.
const KernelSet &genericKernels(moert_dtype_t weights);
const KernelSet &avx2Kernels(moert_dtype_t weights);
const KernelSet &avx512Kernels(moert_dtype_t weights);
const KernelSet &avx512Bf16Kernels();
const KernelSet &amxKernels();

} // namespace moert::cpu::gemm

#endif // MOERT_CPU_GEMM_KERNELS_H
