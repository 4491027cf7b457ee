//===- runtime/cuda/Layout.h - Row, vector and GEMM bookkeeping -*- C++ -*-===//
//
// Host/device helpers for the permutation and FFN kernels, and the host plan
// of the grouped GEMMs. cuBLAS is column-major: the row-major nn.Linear
// product Y[n, out] = X[n, in] . W[out, in]^T is the column-major
// Y^T = op_T(W) . X^T, i.e. transa = T, transb = N, m = out, n = rows,
// k = in, lda = ldb = in, ldc = out. Every problem below uses that form.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CUDA_LAYOUT_H
#define MOERT_CUDA_LAYOUT_H

#include "runtime/common/HostDevice.h"

#include <cstdint>
#include <vector>

namespace moert::cuda {

// Widest of 16/8/4/2/1 bytes that divides the row size and both base
// addresses, so a row copy can use that vector type on every row.
MOERT_HD inline int32_t vectorBytes(int64_t rowBytes, uintptr_t src,
                                    uintptr_t dst) {
  for (int32_t width = 16; width > 1; width /= 2)
    if (rowBytes % width == 0 && src % width == 0 && dst % width == 0)
      return width;
  return 1;
}

// Rows that hold tokens in an expert-major buffer [E, C, H] split into
// `blocks` blocks per expert with rows[E, blocks] used rows each (null: all).
MOERT_HD inline bool rowIsUsed(int64_t row, int64_t capacity, int64_t blocks,
                               const int32_t *rows) {
  if (!rows)
    return true;
  int64_t blockRows = capacity / blocks;
  int64_t e = row / capacity, inExpert = row % capacity;
  int64_t b = inExpert / blockRows;
  return inExpert % blockRows < rows[e * blocks + b];
}

// One column-major GEMM C[m,n] = op_T(A)[m,k] . B[k,n]; offsets in elements
// from the operand's base pointer.
struct GemmProblem {
  int64_t m, n, k;
  int64_t lda, ldb, ldc;
  int64_t aOffset, bOffset, cOffset;
};

// The grouped GEMMs of an FFN over an expert-major buffer: first holds the
// gate (or fc1) problems, then, for gated FFNs, the up problems (one cuBLAS
// call for both); down holds the second projection. Intermediates are
// [E*C, F] row-major and outputs [E*C, H], both addressed by buffer row.
struct FfnPlan {
  std::vector<GemmProblem> first; // A: w_gate then w_up; B: in; C: h then u
  std::vector<GemmProblem> down;  // A: w_down; B: act; C: y
  int64_t upProblems = 0;         // first[first.size()-upProblems..] are up
};

// Throws moert::Error(MOERT_INVALID_ARGUMENT) when a rows entry is outside
// [0, C/blocks]. rows is host memory (null: every row used).
FfnPlan planFfn(int64_t experts, int64_t capacity, int64_t blocks,
                int64_t hidden, int64_t ffn, bool gated, const int32_t *rows);

// moert_fused_experts: gateUp holds, per used (expert, block), the product
// of the packed [2F, H] gate|up weights into [rows, 2F] fp32 rows (buffer
// row r at r * 2F), then, when sharedTokens > 0, one shared problem over
// shared_x [tokens, H] (its own operands: shared = true); down holds the
// [H, F] products into [rows, H], the shared one last. Offsets are from the
// routed (or shared) operands' bases. rows as planFfn.
struct PackedProblem {
  GemmProblem gemm;
  bool shared;
};
struct PackedFfnPlan {
  std::vector<PackedProblem> gateUp, down;
};
PackedFfnPlan planPackedFfn(int64_t experts, int64_t capacity, int64_t blocks,
                            int64_t hidden, int64_t ffn, const int32_t *rows,
                            int64_t sharedTokens, int64_t sharedFfn);

// The router: logits[S,E] = x[S,H] . wg[E,H]^T.
GemmProblem linearProblem(int64_t rows, int64_t out, int64_t in);

} // namespace moert::cuda

#endif // MOERT_CUDA_LAYOUT_H
