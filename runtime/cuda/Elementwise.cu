//===- runtime/cuda/Elementwise.cu - Mixes, shared add, add, RMSNorm -----===//

#include "runtime/common/Activation.h"
#include "runtime/cuda/Device.cuh"
#include "runtime/cuda/Kernels.h"

#include "runtime/common/Convert.h"
#include "runtime/common/Error.h"

#include <cstring>

using namespace moert;
using namespace moert::cuda;

size_t moert::cuda::dtypeBytes(moert_dtype_t dtype) {
  size_t bytes = dtypeSize(dtype);
  require(bytes != 0, "unknown dtype ", static_cast<int>(dtype));
  return bytes;
}

void moert::cuda::requireFloat(moert_dtype_t dtype, const char *name) {
  require(isFloatType(dtype), "operand '", name,
          "' must be f32, f16 or bf16, got ", dtypeName(dtype));
}

namespace {

// One block per token: coef = softmax(x . wc^T + bc) by block reductions,
// then out = moe * coef0 + mlp * coef1.
__global__ void residualMixKernel(const void *x, moert_dtype_t xType,
                                  const void *wc, moert_dtype_t wcType,
                                  const void *bc, moert_dtype_t bcType,
                                  const void *moe, moert_dtype_t moeType,
                                  const void *mlp, moert_dtype_t mlpType,
                                  void *out, moert_dtype_t outType,
                                  int64_t tokens, int64_t hidden) {
  __shared__ float partial[32];
  for (int64_t s = blockIdx.x; s < tokens; s += gridDim.x) {
    float dot0 = 0, dot1 = 0;
    for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x) {
      float v = loadFloat(x, xType, s * hidden + h);
      dot0 += v * loadFloat(wc, wcType, h);
      dot1 += v * loadFloat(wc, wcType, hidden + h);
    }
    float a = blockSum(dot0, partial), b = blockSum(dot1, partial);
    if (bc) {
      a += loadFloat(bc, bcType, 0);
      b += loadFloat(bc, bcType, 1);
    }
    float top = fmaxf(a, b), ea = expf(a - top), eb = expf(b - top);
    float c0 = ea / (ea + eb), c1 = eb / (ea + eb);
    for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x) {
      int64_t i = s * hidden + h;
      storeFloat(out, outType, i,
                 loadFloat(moe, moeType, i) * c0 +
                     loadFloat(mlp, mlpType, i) * c1);
    }
  }
}

// One block per token: g = sigmoid(x . w_sg) (or 1), out = routed + g *
// shared; out may alias routed (same element read then written by a thread).
__global__ void sharedAddKernel(const void *routed, moert_dtype_t routedType,
                                const void *shared, moert_dtype_t sharedType,
                                const void *x, moert_dtype_t xType,
                                const void *wSg, moert_dtype_t wType, void *out,
                                moert_dtype_t outType, int64_t tokens,
                                int64_t hidden) {
  __shared__ float partial[32];
  for (int64_t s = blockIdx.x; s < tokens; s += gridDim.x) {
    float g = 1.0f;
    if (wSg) {
      float dot = 0;
      for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x)
        dot += loadFloat(x, xType, s * hidden + h) * loadFloat(wSg, wType, h);
      g = 1.0f / (1.0f + expf(-blockSum(dot, partial)));
    }
    for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x) {
      int64_t i = s * hidden + h;
      storeFloat(out, outType, i,
                 loadFloat(routed, routedType, i) +
                     g * loadFloat(shared, sharedType, i));
    }
  }
}

// One block per token: y = x * rsqrt(mean(x^2) + epsilon), rounded to x's
// dtype, then out = weight * y; out may alias x (the sum of squares is
// complete before any element is written).
__global__ void rmsNormKernel(const void *x, moert_dtype_t xType,
                              const void *weight, moert_dtype_t weightType,
                              void *out, moert_dtype_t outType, int64_t tokens,
                              int64_t hidden, float epsilon) {
  __shared__ float partial[32];
  for (int64_t s = blockIdx.x; s < tokens; s += gridDim.x) {
    float squares = 0;
    for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x) {
      float v = loadFloat(x, xType, s * hidden + h);
      squares += v * v;
    }
    float inverse = rsqrtf(blockSum(squares, partial) / hidden + epsilon);
    for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x) {
      int64_t i = s * hidden + h;
      uint32_t rounded; // the normalised x in x's dtype
      storeFloat(&rounded, xType, 0, loadFloat(x, xType, i) * inverse);
      storeFloat(out, outType, i,
                 loadFloat(weight, weightType, h) *
                     loadFloat(&rounded, xType, 0));
    }
  }
}

// out = act(x); out may alias x (each element read, then written, by one
// thread).
__global__ void activationOnlyKernel(const void *x, moert_dtype_t xType,
                                     moert_activation_t activation, void *out,
                                     moert_dtype_t outType, int64_t n) {
  MOERT_GRID_STRIDE(i, n) {
    storeFloat(out, outType, i, activate(activation, loadFloat(x, xType, i)));
  }
}

__global__ void multiplyKernel(const void *a, moert_dtype_t aType,
                               const void *b, moert_dtype_t bType, void *out,
                               moert_dtype_t outType, int64_t n) {
  MOERT_GRID_STRIDE(i, n) {
    storeFloat(out, outType, i,
               loadFloat(a, aType, i) * loadFloat(b, bType, i));
  }
}

// out may alias gate or up (each element read, then written, by one thread).
__global__ void swigluClampedKernel(const void *gate, moert_dtype_t gateType,
                                    const void *up, moert_dtype_t upType,
                                    void *out, moert_dtype_t outType, int64_t n,
                                    float alpha, float limit) {
  MOERT_GRID_STRIDE(i, n) {
    storeFloat(out, outType, i,
               swigluClamped(loadFloat(gate, gateType, i),
                             loadFloat(up, upType, i), alpha, limit));
  }
}

// x[e, c, :] + bias[e, :] on the rows `rows` selects; the other rows copy x.
__global__ void expertsBiasAddKernel(const void *bias, moert_dtype_t biasType,
                                     const void *x, moert_dtype_t xType,
                                     void *out, moert_dtype_t outType,
                                     const int32_t *rows, int64_t capacity,
                                     int64_t blocks, int64_t n, int64_t total) {
  int64_t blockRows = capacity / blocks;
  MOERT_GRID_STRIDE(i, total) {
    int64_t e = i / (capacity * n), c = i / n % capacity;
    bool used = !rows || c % blockRows < rows[e * blocks + c / blockRows];
    float value = loadFloat(x, xType, i);
    if (used)
      value += loadFloat(bias, biasType, e * n + i % n);
    storeFloat(out, outType, i, value);
  }
}

// The element's bytes travel by value: no host pointer reaches the device.
struct FillPattern {
  unsigned char bytes[8];
};

__global__ void fillKernel(unsigned char *dst, FillPattern pattern,
                           int32_t elementBytes, int64_t n) {
  MOERT_GRID_STRIDE(i, n) {
    for (int32_t b = 0; b < elementBytes; ++b)
      dst[i * elementBytes + b] = pattern.bytes[b];
  }
}

// A chunk of a small host table, by value (kernel arguments are copied into
// a captured graph; 4 KiB is the argument limit).
struct SmallChunk {
  unsigned char bytes[3584];
};

__global__ void uploadSmallKernel(unsigned char *dst, SmallChunk chunk,
                                  int32_t bytes) {
  for (int32_t i = threadIdx.x; i < bytes; i += blockDim.x)
    dst[i] = chunk.bytes[i];
}

__global__ void addKernel(const void *a, moert_dtype_t aType, const void *b,
                          moert_dtype_t bType, void *out, moert_dtype_t outType,
                          int64_t count) {
  MOERT_GRID_STRIDE(i, count) {
    storeFloat(out, outType, i,
               loadFloat(a, aType, i) + loadFloat(b, bType, i));
  }
}

__global__ void convertKernel(const void *src, moert_dtype_t srcType, void *dst,
                              moert_dtype_t dstType, int64_t n) {
  MOERT_GRID_STRIDE(i, n) {
    storeFloat(dst, dstType, i, loadFloat(src, srcType, i));
  }
}

unsigned tokenGrid(int64_t tokens) {
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>(tokens, 1 << 20)));
}

} // namespace

void moert::cuda::residualMix(Context &ctx, Tensor x, Tensor wc, Tensor bc,
                              Tensor moeOut, Tensor mlpOut, MutableTensor out,
                              int64_t tokens, int64_t hidden) {
  require(tokens >= 0 && hidden >= 1, "residual_mix: bad extents");
  for (auto [t, name] : {std::pair<Tensor, const char *>{x, "x"},
                         {wc, "wc"},
                         {moeOut, "moe_out"},
                         {mlpOut, "mlp_out"}})
    requireFloat(t.dtype, name);
  requireFloat(out.dtype, "out");
  if (bc.present())
    requireFloat(bc.dtype, "bc");
  if (tokens == 0)
    return;
  residualMixKernel<<<tokenGrid(tokens), threadsPerBlock, 0, ctx.stream()>>>(
      x.data, x.dtype, wc.data, wc.dtype, bc.data, bc.dtype, moeOut.data,
      moeOut.dtype, mlpOut.data, mlpOut.dtype, out.data, out.dtype, tokens,
      hidden);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::sharedAdd(Context &ctx, Tensor routed, Tensor shared,
                            Tensor x, Tensor wSg, MutableTensor out,
                            int64_t tokens, int64_t hidden) {
  require(tokens >= 0 && hidden >= 1, "shared_add: bad extents");
  requireFloat(routed.dtype, "routed");
  requireFloat(shared.dtype, "shared");
  requireFloat(out.dtype, "out");
  if (wSg.present()) {
    require(x.present(), "shared_add: the gated form needs x");
    requireFloat(x.dtype, "x");
    requireFloat(wSg.dtype, "w_sg");
  }
  if (tokens == 0)
    return;
  sharedAddKernel<<<tokenGrid(tokens), threadsPerBlock, 0, ctx.stream()>>>(
      routed.data, routed.dtype, shared.data, shared.dtype, x.data, x.dtype,
      wSg.data, wSg.dtype, out.data, out.dtype, tokens, hidden);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::rmsNorm(Context &ctx, Tensor x, Tensor weight,
                          MutableTensor out, int64_t tokens, int64_t hidden,
                          float epsilon) {
  require(tokens >= 0 && hidden >= 1, "rms_norm: bad extents");
  requireFloat(x.dtype, "x");
  requireFloat(weight.dtype, "weight");
  requireFloat(out.dtype, "out");
  if (tokens == 0)
    return;
  rmsNormKernel<<<tokenGrid(tokens), threadsPerBlock, 0, ctx.stream()>>>(
      x.data, x.dtype, weight.data, weight.dtype, out.data, out.dtype, tokens,
      hidden, epsilon);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::add(Context &ctx, Tensor a, Tensor b, MutableTensor out,
                      int64_t count) {
  require(count >= 0, "add: count must be >= 0, got ", count);
  requireFloat(a.dtype, "a");
  requireFloat(b.dtype, "b");
  requireFloat(out.dtype, "out");
  if (count == 0)
    return;
  addKernel<<<gridFor(count), threadsPerBlock, 0, ctx.stream()>>>(
      a.data, a.dtype, b.data, b.dtype, out.data, out.dtype, count);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::convert(Context &ctx, Tensor src, MutableTensor dst,
                          int64_t count) {
  require(count >= 0, "convert: count must be >= 0, got ", count);
  dtypeBytes(src.dtype);
  dtypeBytes(dst.dtype);
  if (count == 0)
    return;
  convertKernel<<<gridFor(count), threadsPerBlock, 0, ctx.stream()>>>(
      src.data, src.dtype, dst.data, dst.dtype, count);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::activation(Context &ctx, moert_activation_t activation,
                             Tensor x, MutableTensor out, int64_t count) {
  require(count >= 0, "activation: count must be >= 0, got ", count);
  require(isActivation(activation), "unknown activation ",
          static_cast<int>(activation));
  requireFloat(x.dtype, "x");
  requireFloat(out.dtype, "out");
  if (count == 0)
    return;
  activationOnlyKernel<<<gridFor(count), threadsPerBlock, 0, ctx.stream()>>>(
      x.data, x.dtype, activation, out.data, out.dtype, count);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::multiply(Context &ctx, Tensor a, Tensor b, MutableTensor out,
                           int64_t count) {
  require(count >= 0, "multiply: count must be >= 0, got ", count);
  requireFloat(a.dtype, "a");
  requireFloat(b.dtype, "b");
  requireFloat(out.dtype, "out");
  if (count == 0)
    return;
  multiplyKernel<<<gridFor(count), threadsPerBlock, 0, ctx.stream()>>>(
      a.data, a.dtype, b.data, b.dtype, out.data, out.dtype, count);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::swigluClamped(Context &ctx, Tensor gate, Tensor up,
                                MutableTensor out, int64_t count, float alpha,
                                float limit) {
  require(count >= 0, "swiglu_clamped: count must be >= 0, got ", count);
  requireFloat(gate.dtype, "gate");
  requireFloat(up.dtype, "up");
  requireFloat(out.dtype, "out");
  if (count == 0)
    return;
  swigluClampedKernel<<<gridFor(count), threadsPerBlock, 0, ctx.stream()>>>(
      gate.data, gate.dtype, up.data, up.dtype, out.data, out.dtype, count,
      alpha, limit);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::expertsBiasAdd(Context &ctx, Tensor bias, Tensor x,
                                 MutableTensor out, Rows rows, int64_t experts,
                                 int64_t capacity, int64_t blocks, int64_t n) {
  requireFloat(bias.dtype, "bias");
  requireFloat(x.dtype, "x");
  requireFloat(out.dtype, "out");
  int64_t total = experts * capacity * n;
  if (total == 0)
    return;
  expertsBiasAddKernel<<<gridFor(total), threadsPerBlock, 0, ctx.stream()>>>(
      bias.data, bias.dtype, x.data, x.dtype, out.data, out.dtype, rows.device,
      capacity, blocks, n, total);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::fill(Context &ctx, void *dst, size_t elementBytes,
                       const void *element, int64_t count) {
  require(elementBytes >= 1 && elementBytes <= 8, "fill: element of ",
          elementBytes, " bytes");
  require(count >= 0, "fill: count must be >= 0, got ", count);
  if (count == 0)
    return;
  FillPattern pattern{};
  std::memcpy(pattern.bytes, element, elementBytes);
  fillKernel<<<gridFor(count), threadsPerBlock, 0, ctx.stream()>>>(
      static_cast<unsigned char *>(dst), pattern,
      static_cast<int32_t>(elementBytes), count);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::uploadSmall(Context &ctx, void *dst, const void *src,
                              size_t bytes) {
  auto *to = static_cast<unsigned char *>(dst);
  auto *from = static_cast<const unsigned char *>(src);
  for (size_t done = 0; done < bytes;) {
    SmallChunk chunk;
    size_t n = std::min(bytes - done, sizeof(chunk.bytes));
    std::memcpy(chunk.bytes, from + done, n);
    uploadSmallKernel<<<1, threadsPerBlock, 0, ctx.stream()>>>(
        to + done, chunk, static_cast<int32_t>(n));
    MOERT_CUDA_CHECK_LAUNCH();
    done += n;
  }
}

void moert::cuda::fusedCombine(Context &ctx, Tensor y, const int32_t *ids,
                               const int32_t *slots, const float *weights,
                               Tensor mlpOut, Tensor wc, Tensor bc,
                               Tensor shared, Tensor wSg, Tensor x,
                               Tensor addend, MutableTensor out, int64_t tokens,
                               int64_t hidden, int64_t topK, int64_t experts,
                               int64_t capacity) {
  require(mlpOut.present() == wc.present(),
          "fused_combine: the mix needs both mlp_out and wc");
  require(!wSg.present() || shared.present(),
          "fused_combine: the shared gate needs the shared output");
  requireFloat(out.dtype, "out");
  if (tokens == 0)
    return;
  // r in an fp32 panel; x and addend are read before out is written.
  MutableTensor r{ctx.scratch(Scratch::Output, tokens * hidden * sizeof(float)),
                  MOERT_F32};
  combine(ctx, y, ids, slots, weights, Tensor{}, r, tokens, hidden, topK,
          experts, capacity);
  if (mlpOut.present())
    residualMix(ctx, x, wc, bc, r, mlpOut, r, tokens, hidden);
  if (shared.present())
    sharedAdd(ctx, r, shared, x, wSg, r, tokens, hidden);
  if (addend.present())
    add(ctx, r, addend, out, tokens * hidden);
  else
    convert(ctx, r, out, tokens * hidden);
}
