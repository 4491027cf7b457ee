//===- runtime/cpu/gemm/Quantized.h - Dequantizing GEMM items ---*- C++ -*-===//
//
// Quantized weights (FP8 e4m3 with block scales, MXFP4) stay quantized in
// memory. Where no kernel set reads them in place (kernelsForQuantized: FP8
// on AVX-512-BF16, Avx512Bf16Fp8.cpp), an item of such a GEMM first widens
// only its own weight rows (the 32 rows of its panel, or the 16 + 16 of a
// paired item) into an fp32 panel of the thread's, then runs the ISA's fp32
// kernel on that panel: the same sums as the fp32 GEMM of the dequantized
// weights, never the whole tensor widened.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_GEMM_QUANTIZED_H
#define MOERT_CPU_GEMM_QUANTIZED_H

#include "runtime/common/Quantized.h"
#include "runtime/cpu/gemm/Isa.h"
#include "runtime/cpu/gemm/Kernel.h"

namespace moert::cpu::gemm {

// The scales and block grid of one quantized weight [n, k] (Weights::first
// or second holds its data).
struct Quantization {
  moert_weight_format_t format;
  const void *scales;
  int64_t blockRows, blockCols;
  QuantizedLayout layout(int64_t n, int64_t k) const {
    return {format, n, k, blockRows, blockCols};
  }
};

// Rows [row0, row0 + count) of the quantized weight [n, k] at `data` as
// fp32 rows of k values at out, exactly QuantizedLayout::at, in loops
// vectorized for `level` (any level the CPU has; the tests run each).
void dequantizeRows(const Quantization &quant, const void *data, int64_t n,
                    int64_t k, int64_t row0, int64_t count, float *out,
                    Isa level = isa());

// Item `item` of the quantized weights w (w.quantFirst set; w.dtype is
// ignored) through the fp32 kernel set f32.
void runQuantized(const KernelSet &f32, const Weights &w, int64_t item,
                  const PackedRows &x, Workspace &workspace, Sink &sink);

} // namespace moert::cpu::gemm

#endif // MOERT_CPU_GEMM_QUANTIZED_H
