//===- runtime/cpu/gemm/Kernels.h - The kernels of each ISA -----*- C++ -*-===//
#ifndef MOERT_CPU_GEMM_KERNELS_H
#define MOERT_CPU_GEMM_KERNELS_H

#include "runtime/cpu/gemm/Isa.h"
#include "runtime/cpu/gemm/Kernel.h"

#include <vector>

namespace moert::cpu::gemm {

// The kernels for `rows` rows of X against weights of `weights` dtype (f32,
// f16 or bf16) on the ISA this process uses (gemm::isa()) and this CPU's
// Decode. On AMX, bf16 weights meet fewer than amxBf16Rows rows through
// VDPBF16PS: a row's bits then depend on which side of it its expert's row
// count falls, as for FP8 (expert-parallel runs still equal single-rank
// runs: the choice is per expert).
const KernelSet &kernelsFor(moert_dtype_t weights, int64_t rows);
// A tile step reads 32 weight rows at once, a line each, which the
// prefetchers follow more slowly than 8 rows asking ahead (DotKernel.h,
// ownLineAhead). Xeon, 1 core, from DRAM, in turn in one process
// (moe-bench-cpu-gemm, Qwen3's, Mixtral's and DeepSeek-V3's expert
// matrices): VDPBF16PS with GroupsAhead against AMX at 1 row 0.73 to 0.96
// of AMX's time, 2 rows 0.75 to 0.96, 3 rows 0.80 to 1.06, 4 rows (half
// groups) 0.97 to 1.23.
constexpr int64_t amxBf16Rows = 3;
// For quantized weights met by `rows` rows of X: the set that reads every
// one of them in place (FP8 e4m3 whose scale blocks span whole steps of
// fp8InPlaceStep columns, on AVX-512-BF16 with VBMI; on AMX tiles from
// amxFp8Rows rows where the CPU has them), else the fp32 set, whose items
// runQuantized widens.
const KernelSet &
kernelsForQuantized(const std::vector<const Quantization *> &weights,
                    int64_t rows);
constexpr int64_t fp8InPlaceStep = 64;
// AMX widens each item into tiles and scales per block, which a few rows
// pay for; fewer stream faster through VDPBF16PS. Qwen3's layer, 1 core,
// cold, tokens 1 / 32 / 64 / 128 (ms): AMX from 1 row 6.7 / 89 / 106 /
// 109, from 4 rows 3.8 / 67 / 94 / 104, from 16 rows 3.9 / 69 / 122 / 230.
// A row's bits then depend on which side of it its expert's row count
// falls.
constexpr int64_t amxFp8Rows = 4;

// Each ISA's sets; only kernelsFor picks among them.
const KernelSet &genericKernels(moert_dtype_t weights);
const KernelSet &avx2Kernels(moert_dtype_t weights);
const KernelSet &avx512Kernels(moert_dtype_t weights, Decode decode);
const KernelSet &avx512Bf16Kernels(Decode decode);
// FP8 e4m3 block-scaled weights read in place (kernelsForQuantized).
const KernelSet &avx512Bf16Fp8Kernels();
const KernelSet &amxKernels();
// The same FP8 weights on AMX tiles, widened per chunk (Amx.cpp).
const KernelSet &amxFp8Kernels();

} // namespace moert::cpu::gemm

#endif // MOERT_CPU_GEMM_KERNELS_H
