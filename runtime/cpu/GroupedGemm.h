//===- runtime/cpu/GroupedGemm.h - GEMMs over many experts' rows -*- C++ -*-===//
//
// One call runs a GEMM, or a whole FFN, over several problems (the used
// experts of a grouped call, a folded shared expert, a dense layer) on the
// rank's threads: every problem's rows are packed once, then the kernels'
// items of all problems are spread over the threads. An FFN's first GEMM
// forms act(gate) * up (or act(x W1 + b1)) on each output block while it is
// in registers and packs it straight into the second GEMM's operand; the
// second GEMM then runs over the same problems. At decode sizes each used
// expert's weights are read exactly once.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_GROUPEDGEMM_H
#define MOERT_CPU_GROUPEDGEMM_H

#include "runtime/cpu/ThreadPool.h"
#include "runtime/cpu/gemm/Kernel.h"
#include "runtime/cpu/gemm/Quantized.h"
#include "runtime/moert.h"

#include <cstdint>
#include <vector>

namespace moert::cpu {

// A rank's threads and the packed operands its grouped GEMMs reuse.
struct GemmContext {
  explicit GemmContext(int threads) : pool(threads) {}
  ThreadPool pool;
  gemm::Workspace packedInput, packedHidden;
};

// Runs of consecutive rows [first, first + count) of a problem's in and
// out buffers (row-major, `in` of K and `out` of N columns).
struct RowRun {
  int64_t first, count;
};

struct ProblemRows {
  const char *in;
  moert_dtype_t inType;
  char *out;
  moert_dtype_t outType;
  std::vector<RowRun> runs;
  int64_t count() const;
};

// out[r] = in[r] . w^T (+ bias) over a problem's rows; w is [n, k].
struct LinearProblem {
  ProblemRows rows;
  const void *w;
  const float *bias; // fp32 [n] or null
  // A quantized w: its scales (then weightType is ignored).
  const gemm::Quantization *quant = nullptr;
};

// Problems sharing the weights' dtype and extents, all quantized or none.
void groupedLinear(GemmContext &context, const std::vector<LinearProblem> &problems,
                   moert_dtype_t weightType, int64_t n, int64_t k);

// out[r] = down(act(in[r] . first^T) * (in[r] . second^T)) when second is
// present (gated), else down(act(in[r] . first^T + b1)) + b2.
struct FfnProblem {
  ProblemRows rows;
  int64_t hidden, ffn;
  moert_activation_t activation;
  const void *first, *second; // [ffn, hidden]
  const void *down;           // [hidden, ffn]
  moert_dtype_t firstType, downType;
  const float *b1, *b2; // fp32 or null
  // Quantized weights: first/second/down hold the data, these the scales
  // (all three set, or none); firstType and downType are then ignored.
  const gemm::Quantization *firstQuant = nullptr, *secondQuant = nullptr,
                           *downQuant = nullptr;
};

// Problems all quantized or all of the first problem's dtypes.
void groupedFfn(GemmContext &context, const std::vector<FfnProblem> &problems);

} // namespace moert::cpu

#endif // MOERT_CPU_GROUPEDGEMM_H
