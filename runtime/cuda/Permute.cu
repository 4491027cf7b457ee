//===- runtime/cuda/Permute.cu - Dispatch and combine ---------------------===//

#include "runtime/cuda/Device.cuh"
#include "runtime/cuda/Kernels.h"
#include "runtime/cuda/Layout.h"

#include "runtime/common/Error.h"

using namespace moert;
using namespace moert::cuda;

namespace {

// Routing entry of choice i, or false (and a reported error) when it points
// outside the [E, C] buffer. Dropped choices (slot < 0) return false quietly.
__device__ inline bool routedRow(const int32_t *ids, const int32_t *slots,
                                 int64_t i, int64_t experts, int64_t capacity,
                                 long long *errorWord, int64_t &row) {
  int32_t e = ids[i], slot = slots[i];
  if (slot < 0)
    return false;
  if (e < 0 || e >= experts || slot >= capacity) {
    reportBadChoice(errorWord, i);
    return false;
  }
  row = e * capacity + slot;
  return true;
}

// Same dtype: one block per choice copies the token's row with V-sized
// vectors (16 bytes when the row and both bases allow), coalesced.
template <typename V>
__global__ void
dispatchCopyKernel(const char *x, const int32_t *ids, const int32_t *slots,
                   char *buf, int64_t choices, int64_t topK, int64_t rowBytes,
                   int64_t experts, int64_t capacity, long long *errorWord) {
  int64_t vectors = rowBytes / sizeof(V);
  for (int64_t i = blockIdx.x; i < choices; i += gridDim.x) {
    int64_t row;
    if (!routedRow(ids, slots, i, experts, capacity, errorWord, row))
      continue;
    const V *src = reinterpret_cast<const V *>(x + (i / topK) * rowBytes);
    V *dst = reinterpret_cast<V *>(buf + row * rowBytes);
    for (int64_t v = threadIdx.x; v < vectors; v += blockDim.x)
      dst[v] = src[v];
  }
}

// Different dtypes, or weights present (x * w in fp32, one rounding).
__global__ void dispatchConvertKernel(const void *x, moert_dtype_t xType,
                                      const int32_t *ids, const int32_t *slots,
                                      const float *weights, void *buf,
                                      moert_dtype_t bufType, int64_t choices,
                                      int64_t topK, int64_t hidden,
                                      int64_t experts, int64_t capacity,
                                      long long *errorWord) {
  for (int64_t i = blockIdx.x; i < choices; i += gridDim.x) {
    int64_t row;
    if (!routedRow(ids, slots, i, experts, capacity, errorWord, row))
      continue;
    int64_t s = i / topK;
    for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x) {
      float value = loadFloat(x, xType, s * hidden + h);
      if (weights)
        value = __fmul_rn(value, weights[i]);
      storeFloat(buf, bufType, row * hidden + h, value);
    }
  }
}

// One block per token; each thread owns hidden columns, so reading addend
// and writing out element by element is safe when they alias.
__global__ void combineKernel(const void *y, moert_dtype_t yType,
                              const int32_t *ids, const int32_t *slots,
                              const float *weights, const void *addend,
                              moert_dtype_t addendType, void *out,
                              moert_dtype_t outType, int64_t tokens,
                              int64_t hidden, int64_t topK, int64_t experts,
                              int64_t capacity, long long *errorWord) {
  for (int64_t s = blockIdx.x; s < tokens; s += gridDim.x) {
    for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x) {
      // The CPU's order and roundings (no contraction into FMAs): the
      // choices in order, then the addend.
      float acc = 0.0f;
      for (int64_t j = 0; j < topK; ++j) {
        int64_t row;
        if (routedRow(ids, slots, s * topK + j, experts, capacity, errorWord,
                      row))
          acc =
              __fadd_rn(acc, __fmul_rn(weights ? weights[s * topK + j] : 1.0f,
                                       loadFloat(y, yType, row * hidden + h)));
      }
      if (addend)
        acc = __fadd_rn(acc, loadFloat(addend, addendType, s * hidden + h));
      storeFloat(out, outType, s * hidden + h, acc);
    }
  }
}

unsigned rowGrid(int64_t rows) {
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>(rows, 1 << 20)));
}

} // namespace

void moert::cuda::dispatch(Context &ctx, Tensor x, const int32_t *ids,
                           const int32_t *slots, const float *weights,
                           MutableTensor buf, int64_t tokens, int64_t hidden,
                           int64_t topK, int64_t experts, int64_t capacity) {
  require(tokens >= 0 && hidden >= 1 && topK >= 1 && experts >= 1 &&
              capacity >= 0,
          "dispatch: bad extents");
  requireFloat(x.dtype, "x");
  requireFloat(buf.dtype, "buf");
  cudaStream_t stream = ctx.stream();
  int64_t bufBytes = experts * capacity * hidden * dtypeBytes(buf.dtype);
  if (bufBytes > 0)
    MOERT_CUDA_CHECK(cudaMemsetAsync(buf.data, 0, bufBytes, stream));
  int64_t choices = tokens * topK;
  if (choices == 0) // with C = 0 a kept choice still has to be reported
    return;
  unsigned grid = rowGrid(choices);
  if (x.dtype != buf.dtype || weights) {
    dispatchConvertKernel<<<grid, 128, 0, stream>>>(
        x.data, x.dtype, ids, slots, weights, buf.data, buf.dtype, choices,
        topK, hidden, experts, capacity, ctx.errorWord());
    MOERT_CUDA_CHECK_LAUNCH();
    return;
  }
  int64_t rowBytes = hidden * dtypeBytes(x.dtype);
  auto *src = static_cast<const char *>(x.data);
  auto *dst = static_cast<char *>(buf.data);
  switch (vectorBytes(rowBytes, reinterpret_cast<uintptr_t>(src),
                      reinterpret_cast<uintptr_t>(dst))) {
  case 16:
    dispatchCopyKernel<uint4><<<grid, 128, 0, stream>>>(
        src, ids, slots, dst, choices, topK, rowBytes, experts, capacity,
        ctx.errorWord());
    break;
  case 8:
    dispatchCopyKernel<uint2><<<grid, 128, 0, stream>>>(
        src, ids, slots, dst, choices, topK, rowBytes, experts, capacity,
        ctx.errorWord());
    break;
  case 4:
    dispatchCopyKernel<uint32_t><<<grid, 128, 0, stream>>>(
        src, ids, slots, dst, choices, topK, rowBytes, experts, capacity,
        ctx.errorWord());
    break;
  case 2:
    dispatchCopyKernel<uint16_t><<<grid, 128, 0, stream>>>(
        src, ids, slots, dst, choices, topK, rowBytes, experts, capacity,
        ctx.errorWord());
    break;
  default:
    fail(MOERT_INVALID_ARGUMENT, "dispatch: x or buf is not aligned to its ",
         dtypeBytes(x.dtype), "-byte dtype");
  }
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::combine(Context &ctx, Tensor y, const int32_t *ids,
                          const int32_t *slots, const float *weights,
                          Tensor addend, MutableTensor out, int64_t tokens,
                          int64_t hidden, int64_t topK, int64_t experts,
                          int64_t capacity) {
  require(tokens >= 0 && hidden >= 1 && topK >= 1 && experts >= 1 &&
              capacity >= 0,
          "combine: bad extents");
  requireFloat(y.dtype, "y");
  requireFloat(out.dtype, "out");
  if (addend.present())
    requireFloat(addend.dtype, "addend");
  if (tokens == 0)
    return;
  combineKernel<<<rowGrid(tokens), threadsPerBlock, 0, ctx.stream()>>>(
      y.data, y.dtype, ids, slots, weights, addend.data, addend.dtype, out.data,
      out.dtype, tokens, hidden, topK, experts, capacity, ctx.errorWord());
  MOERT_CUDA_CHECK_LAUNCH();
}
