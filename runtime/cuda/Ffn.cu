//===- runtime/cuda/Ffn.cu - Router GEMM and grouped-GEMM FFNs ------------===//
//
// An FFN layer is three launches whatever the expert count: one grouped
// GEMM for the first projection (gate and up problems together), one fused
// activation (x) up kernel, one grouped GEMM for the down projection, plus
// an epilogue that adds b2, zeroes unused rows and rounds to out's dtype.
// The grouped GEMMs accumulate in fp32 and store in the weights' dtype:
// cublasGemmGroupedBatchedEx takes one dtype for A, B and C (16BF, 16F or
// 32F), unlike cublasGemmEx.
//
//===----------------------------------------------------------------------===//

#include "runtime/common/Activation.h"
#include "runtime/cuda/Device.cuh"
#include "runtime/cuda/Kernels.h"
#include "runtime/cuda/Layout.h"

#include "runtime/common/Error.h"

#include <climits>
#include <vector>

using namespace moert;
using namespace moert::cuda;

namespace {

cudaDataType_t blasType(moert_dtype_t dtype) {
  switch (dtype) {
  case MOERT_F32:
    return CUDA_R_32F;
  case MOERT_F16:
    return CUDA_R_16F;
  case MOERT_BF16:
    return CUDA_R_16BF;
  default:
    fail(MOERT_UNSUPPORTED, "no cuBLAS type for dtype ",
         static_cast<int>(dtype));
  }
}

int asInt(int64_t value, const char *what) {
  require(value >= 0 && value <= INT_MAX, "grouped GEMM ", what, " ", value,
          " exceeds the int range of cuBLAS");
  return static_cast<int>(value);
}

// C_i = op_T(A_i) . B_i for every problem, in ONE cublasGemmGroupedBatchedEx
// call (one group per problem: their row counts differ), A, B and C all of
// `type`, fp32 accumulation. aBase[i] / cBase[i] are the per-problem base
// pointers the offsets apply to. The pointer table is sized for
// `mostProblems` (every expert block used): a step captured after a direct
// one that skipped empty experts finds it large enough.
void groupedGemm(Context &ctx, const std::vector<GemmProblem> &problems,
                 const std::vector<const char *> &aBase,
                 const std::vector<const char *> &bBase,
                 const std::vector<char *> &cBase, moert_dtype_t type,
                 size_t mostProblems) {
  size_t n = problems.size();
  if (n == 0)
    return;
  std::vector<cublasOperation_t> transA(n, CUBLAS_OP_T), transB(n, CUBLAS_OP_N);
  std::vector<int> m(n), cols(n), k(n), lda(n), ldb(n), ldc(n), groupSize(n, 1);
  std::vector<float> alpha(n, 1.0f), beta(n, 0.0f);
  // Device pointer arrays: A[0..n), B[0..n), C[0..n).
  std::vector<const void *> pointers(3 * n);
  size_t elementBytes = dtypeBytes(type);
  for (size_t i = 0; i < n; ++i) {
    const GemmProblem &p = problems[i];
    m[i] = asInt(p.m, "m");
    cols[i] = asInt(p.n, "n");
    k[i] = asInt(p.k, "k");
    lda[i] = asInt(p.lda, "lda");
    ldb[i] = asInt(p.ldb, "ldb");
    ldc[i] = asInt(p.ldc, "ldc");
    pointers[i] = aBase[i] + p.aOffset * elementBytes;
    pointers[n + i] = bBase[i] + p.bOffset * elementBytes;
    pointers[2 * n + i] = cBase[i] + p.cOffset * elementBytes;
  }
  auto *devicePointers = static_cast<void **>(ctx.scratch(
      Scratch::Pointers, 3 * std::max(n, mostProblems) * sizeof(void *)));
  // The stream orders the upload after earlier users of the scratch.
  uploadSmall(ctx, devicePointers, pointers.data(),
              pointers.size() * sizeof(void *));
  MOERT_CUBLAS_CHECK(cublasGemmGroupedBatchedEx(
      ctx.blas(), transA.data(), transB.data(), m.data(), cols.data(), k.data(),
      alpha.data(), reinterpret_cast<const void *const *>(devicePointers),
      blasType(type), lda.data(),
      reinterpret_cast<const void *const *>(devicePointers + n),
      blasType(type), ldb.data(), beta.data(), devicePointers + 2 * n,
      blasType(type), ldc.data(), static_cast<int>(n), groupSize.data(),
      CUBLAS_COMPUTE_32F));
}

__global__ void convertKernel(const void *src, moert_dtype_t srcType, void *dst,
                              moert_dtype_t dstType, int64_t n) {
  MOERT_GRID_STRIDE(i, n) {
    storeFloat(dst, dstType, i, loadFloat(src, srcType, i));
  }
}

// act[r, f] = act(h) * u (gated) or act(h + b1[e, f]) (plain), rounded to
// the weights' dtype; unused rows are skipped (no GEMM reads them).
__global__ void activationKernel(const void *h, const void *u,
                                 moert_dtype_t hType, const void *b1,
                                 moert_dtype_t b1Type,
                                 moert_activation_t activation, int64_t ffn,
                                 int64_t capacity, int64_t blocks,
                                 const int32_t *rows, int64_t total, void *act,
                                 moert_dtype_t actType) {
  MOERT_GRID_STRIDE(i, total) {
    int64_t row = i / ffn, f = i % ffn;
    if (!rowIsUsed(row, capacity, blocks, rows))
      continue;
    float value = loadFloat(h, hType, i);
    if (b1)
      value += loadFloat(b1, b1Type, (row / capacity) * ffn + f);
    value = activate(activation, value);
    if (u)
      value *= loadFloat(u, hType, i);
    storeFloat(act, actType, i, value);
  }
}

// act[r, f] = act(gu[r, f]) * gu[r, F + f] over packed [gate | up] rows of
// 2F, rounded to the weights' dtype; unused rows are skipped.
__global__ void packedActivationKernel(const void *gateUp,
                                       moert_dtype_t gateUpType,
                                       moert_activation_t activation,
                                       int64_t ffn, int64_t capacity,
                                       int64_t blocks, const int32_t *rows,
                                       int64_t total, void *act,
                                       moert_dtype_t actType) {
  MOERT_GRID_STRIDE(i, total) {
    int64_t row = i / ffn, f = i % ffn;
    if (!rowIsUsed(row, capacity, blocks, rows))
      continue;
    int64_t packed = row * 2 * ffn;
    float gate = loadFloat(gateUp, gateUpType, packed + f);
    float up = loadFloat(gateUp, gateUpType, packed + ffn + f);
    storeFloat(act, actType, i, activate(activation, gate) * up);
  }
}

// out[r, :] = y + b2[e] on used rows, 0 elsewhere.
__global__ void epilogueKernel(const void *y, moert_dtype_t yType,
                               const void *b2,
                               moert_dtype_t b2Type, int64_t hidden,
                               int64_t capacity, int64_t blocks,
                               const int32_t *rows, int64_t total, void *out,
                               moert_dtype_t outType) {
  MOERT_GRID_STRIDE(i, total) {
    int64_t row = i / hidden, col = i % hidden;
    float value = 0.0f;
    if (rowIsUsed(row, capacity, blocks, rows)) {
      value = loadFloat(y, yType, i);
      if (b2)
        value += loadFloat(b2, b2Type, (row / capacity) * hidden + col);
    }
    storeFloat(out, outType, i, value);
  }
}

__global__ void addBiasKernel(float *rows, const void *bias,
                              moert_dtype_t biasType, int64_t width,
                              int64_t total) {
  MOERT_GRID_STRIDE(i, total) {
    rows[i] += loadFloat(bias, biasType, i % width);
  }
}

// The input in the GEMM's dtype: as is, or converted into scratch.
const char *gemmInput(Context &ctx, Tensor in, moert_dtype_t type,
                      int64_t count) {
  if (in.dtype == type)
    return static_cast<const char *>(in.data);
  void *converted = ctx.scratch(Scratch::Input, count * dtypeBytes(type));
  convertKernel<<<gridFor(count), threadsPerBlock, 0, ctx.stream()>>>(
      in.data, in.dtype, converted, type, count);
  MOERT_CUDA_CHECK_LAUNCH();
  return static_cast<const char *>(converted);
}

void checkPacked(const PackedFfnWeights &ffn, const char *which) {
  require(isActivation(ffn.activation), which, ": unknown activation ",
          static_cast<int>(ffn.activation));
  require(ffn.hidden >= 1 && ffn.ffn >= 1, which,
          ": needs hidden >= 1 and ffn >= 1, got ", ffn.hidden, " and ",
          ffn.ffn);
  require(ffn.wGateUp.present() && ffn.wDown.present(), which,
          ": needs w_gate_up and w_down");
  requireFloat(ffn.wGateUp.dtype, "w_gate_up");
  if (ffn.wDown.dtype != ffn.wGateUp.dtype)
    fail(MOERT_UNSUPPORTED, which,
         ": the CUDA FFN needs all weights in one dtype");
}

void checkFfn(const FfnWeights &ffn) {
  bool gated = ffn.kind == MOERT_FFN_GATED;
  require(gated || ffn.kind == MOERT_FFN_PLAIN, "unknown ffn kind ",
          static_cast<int>(ffn.kind));
  require(isActivation(ffn.activation), "unknown activation ",
          static_cast<int>(ffn.activation));
  require(ffn.hidden >= 1 && ffn.ffn >= 1,
          "ffn needs hidden >= 1 and ffn >= 1, got ", ffn.hidden, " and ",
          ffn.ffn);
  require(ffn.wGate.present() && ffn.wDown.present(),
          "ffn needs its first and down weights");
  requireFloat(ffn.wGate.dtype, gated ? "w_gate" : "w1");
  // One GEMM dtype per layer; mixed weight dtypes are a CPU-only case.
  if (ffn.wDown.dtype != ffn.wGate.dtype ||
      (gated && ffn.wUp.present() && ffn.wUp.dtype != ffn.wGate.dtype))
    fail(MOERT_UNSUPPORTED, "the CUDA FFN needs all weights in one dtype");
  if (gated) {
    require(ffn.wUp.present(), "gated ffn needs w_up");
    require(!ffn.b1.present() && !ffn.b2.present(),
            "gated ffn takes no biases");
  } else {
    require(!ffn.wUp.present(), "plain ffn takes no w_up");
    if (ffn.b1.present())
      requireFloat(ffn.b1.dtype, "b1");
    if (ffn.b2.present())
      requireFloat(ffn.b2.dtype, "b2");
  }
}

} // namespace

void moert::cuda::router(Context &ctx, Tensor x, Tensor wg, Tensor bias,
                         float *logits, int64_t tokens, int64_t hidden,
                         int64_t experts) {
  require(tokens >= 0 && hidden >= 1 && experts >= 1, "bad extents: tokens ",
          tokens, ", hidden ", hidden, ", experts ", experts);
  requireFloat(x.dtype, "x");
  requireFloat(wg.dtype, "wg");
  if (bias.present())
    requireFloat(bias.dtype, "bias");
  if (tokens == 0)
    return;
  const char *input = gemmInput(ctx, x, wg.dtype, tokens * hidden);
  GemmProblem p = linearProblem(tokens, experts, hidden);
  const float alpha = 1.0f, beta = 0.0f;
  cudaDataType_t type = blasType(wg.dtype);
  MOERT_CUBLAS_CHECK(cublasGemmEx(
      ctx.blas(), CUBLAS_OP_T, CUBLAS_OP_N, asInt(p.m, "m"), asInt(p.n, "n"),
      asInt(p.k, "k"), &alpha, wg.data, type, asInt(p.lda, "lda"), input, type,
      asInt(p.ldb, "ldb"), &beta, logits, CUDA_R_32F, asInt(p.ldc, "ldc"),
      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  if (bias.present()) {
    addBiasKernel<<<gridFor(tokens * experts), threadsPerBlock, 0,
                    ctx.stream()>>>(logits, bias.data, bias.dtype, experts,
                                    tokens * experts);
    MOERT_CUDA_CHECK_LAUNCH();
  }
}

void moert::cuda::experts(Context &ctx, const FfnWeights &ffn, Tensor in,
                          MutableTensor out, Rows usedRows,
                          int64_t experts, int64_t capacity, int64_t blocks) {
  checkFfn(ffn);
  requireFloat(in.dtype, "in");
  requireFloat(out.dtype, "out");
  bool gated = ffn.kind == MOERT_FFN_GATED;
  int64_t hidden = ffn.hidden, width = ffn.ffn;
  FfnPlan plan =
      planFfn(experts, capacity, blocks, hidden, width, gated, usedRows.host);
  int64_t totalRows = experts * capacity;
  if (totalRows == 0)
    return;
  cudaStream_t stream = ctx.stream();
  moert_dtype_t wType = ffn.wGate.dtype;

  const int32_t *rows = usedRows.device;
  const char *input = gemmInput(ctx, in, wType, totalRows * hidden);
  size_t panel = totalRows * width;
  size_t wBytes = dtypeBytes(wType);
  auto *h = static_cast<char *>(ctx.scratch(Scratch::Hidden, panel * wBytes));
  char *u = gated ? static_cast<char *>(ctx.scratch(Scratch::Up, panel * wBytes))
                  : nullptr;
  auto *act = static_cast<char *>(ctx.scratch(Scratch::Act, panel * wBytes));
  auto *y = static_cast<char *>(
      ctx.scratch(Scratch::Output, totalRows * hidden * wBytes));

  // First projection: gate problems then up problems, one call.
  size_t firstCount = plan.first.size() - plan.upProblems;
  std::vector<const char *> aFirst(plan.first.size());
  std::vector<char *> cFirst(plan.first.size());
  for (size_t i = 0; i < plan.first.size(); ++i) {
    bool up = i >= firstCount;
    aFirst[i] = static_cast<const char *>(up ? ffn.wUp.data : ffn.wGate.data);
    cFirst[i] = up ? u : h;
  }
  std::vector<const char *> bFirst(plan.first.size(), input);
  groupedGemm(ctx, plan.first, aFirst, bFirst, cFirst, wType,
              (gated ? 2 : 1) * experts * blocks);

  activationKernel<<<gridFor(panel), threadsPerBlock, 0, stream>>>(
      h, u, wType, ffn.b1.data, ffn.b1.dtype, ffn.activation, width, capacity, blocks, rows,
      panel, act, wType);
  MOERT_CUDA_CHECK_LAUNCH();

  std::vector<const char *> aDown(plan.down.size(),
                                  static_cast<const char *>(ffn.wDown.data));
  std::vector<char *> cDown(plan.down.size(), y);
  std::vector<const char *> bDown(plan.down.size(), act);
  groupedGemm(ctx, plan.down, aDown, bDown, cDown, wType, experts * blocks);

  epilogueKernel<<<gridFor(totalRows * hidden), threadsPerBlock, 0, stream>>>(
      y, wType, ffn.b2.data, ffn.b2.dtype, hidden,
      capacity, blocks, rows, totalRows * hidden, out.data, out.dtype);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::denseFfn(Context &ctx, const FfnWeights &ffn, Tensor x,
                           MutableTensor out, int64_t tokens) {
  require(tokens >= 0, "tokens must be >= 0, got ", tokens);
  checkFfn(ffn);
  if (tokens == 0)
    return;
  // One expert whose capacity is the token count, every row used.
  experts(ctx, ffn, x, out, Rows{}, 1, tokens, 1);
}

void moert::cuda::expertsLinear(Context &ctx, Tensor w, Tensor in,
                                MutableTensor out, Rows usedRows,
                                int64_t experts, int64_t capacity,
                                int64_t blocks, int64_t n, int64_t k) {
  require(n >= 1 && k >= 1, "experts_linear: bad extents n ", n, ", k ", k);
  requireFloat(w.dtype, "w");
  requireFloat(in.dtype, "in");
  requireFloat(out.dtype, "out");
  // The plan of a plain FFN's first projection is exactly this product.
  FfnPlan plan =
      planFfn(experts, capacity, blocks, k, n, false, usedRows.host);
  int64_t totalRows = experts * capacity;
  if (totalRows == 0)
    return;
  const int32_t *rows = usedRows.device;
  const char *input = gemmInput(ctx, in, w.dtype, totalRows * k);
  auto *y = static_cast<char *>(
      ctx.scratch(Scratch::Output, totalRows * n * dtypeBytes(w.dtype)));
  std::vector<const char *> a(plan.first.size(),
                              static_cast<const char *>(w.data));
  std::vector<const char *> b(plan.first.size(), input);
  std::vector<char *> c(plan.first.size(), y);
  groupedGemm(ctx, plan.first, a, b, c, w.dtype, experts * blocks);
  epilogueKernel<<<gridFor(totalRows * n), threadsPerBlock, 0,
                   ctx.stream()>>>(y, w.dtype, nullptr, MOERT_F32, n,
                                   capacity, blocks, rows,
                                   totalRows * n, out.data, out.dtype);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::fusedExperts(Context &ctx, const PackedFfnWeights &ffn,
                               Tensor in, MutableTensor out,
                               Rows usedRows, int64_t experts,
                               int64_t capacity, int64_t blocks,
                               const PackedFfnWeights *shared, Tensor sharedX,
                               MutableTensor sharedOut, int64_t tokens) {
  checkPacked(ffn, "fused_experts");
  requireFloat(in.dtype, "in");
  requireFloat(out.dtype, "out");
  int64_t sharedTokens = shared ? tokens : 0;
  if (shared) {
    checkPacked(*shared, "fused_experts shared expert");
    require(shared->hidden == ffn.hidden, "fused_experts: shared hidden ",
            shared->hidden, " differs from the experts' ", ffn.hidden);
    // One grouped GEMM holds both: cuBLAS takes one A dtype per call.
    if (shared->wGateUp.dtype != ffn.wGateUp.dtype)
      fail(MOERT_UNSUPPORTED, "fused_experts: the shared expert's weights "
                              "must have the routed experts' dtype on CUDA");
    requireFloat(sharedX.dtype, "shared_x");
    requireFloat(sharedOut.dtype, "shared_out");
  }
  PackedFfnPlan plan =
      planPackedFfn(experts, capacity, blocks, ffn.hidden, ffn.ffn,
                    usedRows.host,
                    sharedTokens, shared ? shared->ffn : 0);
  int64_t hidden = ffn.hidden, width = ffn.ffn;
  int64_t totalRows = experts * capacity;
  moert_dtype_t wType = ffn.wGateUp.dtype;
  cudaStream_t stream = ctx.stream();
  const int32_t *rows = usedRows.device;

  // Operands of the routed problems, then of the shared one (if any).
  auto panel = [&](Scratch slot, int64_t count, size_t bytes) {
    return static_cast<char *>(ctx.scratch(slot, std::max<int64_t>(count, 1) *
                                                     bytes));
  };
  const char *input =
      totalRows ? gemmInput(ctx, in, wType, totalRows * hidden) : nullptr;
  size_t wBytes = dtypeBytes(wType);
  char *gateUp = panel(Scratch::Hidden, totalRows * 2 * width, wBytes);
  char *act = panel(Scratch::Act, totalRows * width, wBytes);
  char *y = panel(Scratch::Output, totalRows * hidden, wBytes);
  const char *sharedInput = nullptr;
  char *sharedGateUp = nullptr, *sharedAct = nullptr, *sharedY = nullptr;
  int64_t sharedWidth = shared ? shared->ffn : 0;
  if (sharedTokens > 0) {
    if (sharedX.dtype == wType) {
      sharedInput = static_cast<const char *>(sharedX.data);
    } else {
      char *converted =
          panel(Scratch::SharedInput, sharedTokens * hidden, wBytes);
      convert(ctx, sharedX, MutableTensor{converted, wType},
              sharedTokens * hidden);
      sharedInput = converted;
    }
    sharedGateUp = panel(Scratch::SharedHidden,
                         sharedTokens * 2 * sharedWidth, wBytes);
    sharedAct =
        panel(Scratch::SharedAct, sharedTokens * sharedWidth, wBytes);
    sharedY = panel(Scratch::SharedOutput, sharedTokens * hidden, wBytes);
  }
  auto operands = [&](const std::vector<PackedProblem> &problems,
                      const char *routedA, const char *sharedA,
                      const char *routedB, const char *sharedB, char *routedC,
                      char *sharedC, std::vector<GemmProblem> &gemms,
                      std::vector<const char *> &a,
                      std::vector<const char *> &b, std::vector<char *> &c) {
    for (const PackedProblem &p : problems) {
      gemms.push_back(p.gemm);
      a.push_back(p.shared ? sharedA : routedA);
      b.push_back(p.shared ? sharedB : routedB);
      c.push_back(p.shared ? sharedC : routedC);
    }
  };
  const char *sharedGateUpWeights =
      shared ? static_cast<const char *>(shared->wGateUp.data) : nullptr;
  const char *sharedDownWeights =
      shared ? static_cast<const char *>(shared->wDown.data) : nullptr;

  size_t mostProblems = experts * blocks + (shared ? 1 : 0);
  std::vector<GemmProblem> gemms;
  std::vector<const char *> a, b;
  std::vector<char *> c;
  operands(plan.gateUp, static_cast<const char *>(ffn.wGateUp.data),
           sharedGateUpWeights, input, sharedInput, gateUp, sharedGateUp, gemms,
           a, b, c);
  groupedGemm(ctx, gemms, a, b, c, wType, mostProblems);

  if (totalRows > 0) {
    packedActivationKernel<<<gridFor(totalRows * width), threadsPerBlock, 0,
                             stream>>>(
        gateUp, wType, ffn.activation, width,
        capacity, blocks, rows, totalRows * width, act, wType);
    MOERT_CUDA_CHECK_LAUNCH();
  }
  if (sharedTokens > 0) {
    packedActivationKernel<<<gridFor(sharedTokens * sharedWidth),
                             threadsPerBlock, 0, stream>>>(
        sharedGateUp, wType, shared->activation,
        sharedWidth, sharedTokens, 1, nullptr, sharedTokens * sharedWidth,
        sharedAct, wType);
    MOERT_CUDA_CHECK_LAUNCH();
  }

  gemms.clear();
  a.clear();
  b.clear();
  c.clear();
  operands(plan.down, static_cast<const char *>(ffn.wDown.data),
           sharedDownWeights, act, sharedAct, y, sharedY, gemms, a, b, c);
  groupedGemm(ctx, gemms, a, b, c, wType, mostProblems);

  if (totalRows > 0) {
    epilogueKernel<<<gridFor(totalRows * hidden), threadsPerBlock, 0,
                     stream>>>(y, wType, nullptr, MOERT_F32, hidden,
                               capacity, blocks, rows,
                               totalRows * hidden, out.data, out.dtype);
    MOERT_CUDA_CHECK_LAUNCH();
  }
  if (sharedTokens > 0) {
    epilogueKernel<<<gridFor(sharedTokens * hidden), threadsPerBlock, 0,
                     stream>>>(sharedY, wType, nullptr, MOERT_F32, hidden,
                               sharedTokens, 1,
                               nullptr, sharedTokens * hidden, sharedOut.data,
                               sharedOut.dtype);
    MOERT_CUDA_CHECK_LAUNCH();
  }
}
