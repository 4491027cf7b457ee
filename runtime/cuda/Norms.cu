//===- runtime/cuda/Norms.cu - LayerNorm, bias add, clamp and scale -------===//

#include "runtime/cuda/Device.cuh"
#include "runtime/cuda/Kernels.h"

#include "runtime/common/Error.h"

#include <algorithm>

using namespace moert;
using namespace moert::cuda;

namespace {

// One block per token: mean, then the variance around it (two passes, as
// torch), out = (x - mean) * rsqrt(var + epsilon) * weight + bias; out may
// alias x (both reductions end before any element is written).
__global__ void layerNormKernel(const void *x, moert_dtype_t xType,
                                const void *weight, moert_dtype_t weightType,
                                const void *bias, moert_dtype_t biasType,
                                void *out, moert_dtype_t outType,
                                int64_t tokens, int64_t hidden, float epsilon) {
  __shared__ float partial[32];
  for (int64_t s = blockIdx.x; s < tokens; s += gridDim.x) {
    float sum = 0;
    for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x)
      sum += loadFloat(x, xType, s * hidden + h);
    float mean = blockSum(sum, partial) / hidden;
    float squares = 0;
    for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x) {
      float d = loadFloat(x, xType, s * hidden + h) - mean;
      squares += d * d;
    }
    float inverse = rsqrtf(blockSum(squares, partial) / hidden + epsilon);
    for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x) {
      int64_t i = s * hidden + h;
      float y = (loadFloat(x, xType, i) - mean) * inverse *
                loadFloat(weight, weightType, h);
      if (bias)
        y += loadFloat(bias, biasType, h);
      storeFloat(out, outType, i, y);
    }
  }
}

// out[s, h] = x[s, h] + bias[h]; out may alias x.
__global__ void biasAddKernel(const void *x, moert_dtype_t xType,
                              const void *bias, moert_dtype_t biasType,
                              void *out, moert_dtype_t outType, int64_t count,
                              int64_t hidden) {
  MOERT_GRID_STRIDE(i, count) {
    storeFloat(out, outType, i,
               loadFloat(x, xType, i) + loadFloat(bias, biasType, i % hidden));
  }
}

// out[i] = f(x[i]) in fp32, rounded once to out's dtype; out may alias x.
template <typename Fn>
__global__ void mapKernel(const void *x, moert_dtype_t xType, void *out,
                          moert_dtype_t outType, int64_t count, Fn f) {
  MOERT_GRID_STRIDE(i, count) {
    storeFloat(out, outType, i, f(loadFloat(x, xType, i)));
  }
}

// Comparisons that keep a NaN, as the CPU backend's.
struct Clamp {
  float limit;
  __device__ float operator()(float v) const {
    return v < -limit ? -limit : (v > limit ? limit : v);
  }
};

struct Scale {
  float factor;
  __device__ float operator()(float v) const { return v * factor; }
};

template <typename Fn>
void mapFloats(Context &ctx, const char *name, Tensor x, MutableTensor out,
               int64_t count, Fn f) {
  require(count >= 0, name, ": bad count");
  requireFloat(x.dtype, "x");
  requireFloat(out.dtype, "out");
  if (count == 0)
    return;
  mapKernel<<<gridFor(count), threadsPerBlock, 0, ctx.stream()>>>(
      x.data, x.dtype, out.data, out.dtype, count, f);
  MOERT_CUDA_CHECK_LAUNCH();
}

unsigned rowGrid(int64_t tokens) {
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>(tokens, 1 << 20)));
}

} // namespace

void moert::cuda::layerNorm(Context &ctx, Tensor x, Tensor weight, Tensor bias,
                            MutableTensor out, int64_t tokens, int64_t hidden,
                            float epsilon) {
  require(tokens >= 0 && hidden >= 1, "layer_norm: bad extents");
  requireFloat(x.dtype, "x");
  requireFloat(weight.dtype, "weight");
  if (bias.data)
    requireFloat(bias.dtype, "bias");
  requireFloat(out.dtype, "out");
  if (tokens == 0)
    return;
  layerNormKernel<<<rowGrid(tokens), threadsPerBlock, 0, ctx.stream()>>>(
      x.data, x.dtype, weight.data, weight.dtype, bias.data, bias.dtype,
      out.data, out.dtype, tokens, hidden, epsilon);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::biasAdd(Context &ctx, Tensor x, Tensor bias,
                          MutableTensor out, int64_t tokens, int64_t hidden) {
  require(tokens >= 0 && hidden >= 1, "bias_add: bad extents");
  requireFloat(x.dtype, "x");
  requireFloat(bias.dtype, "bias");
  requireFloat(out.dtype, "out");
  if (tokens == 0)
    return;
  int64_t count = tokens * hidden;
  biasAddKernel<<<gridFor(count), threadsPerBlock, 0, ctx.stream()>>>(
      x.data, x.dtype, bias.data, bias.dtype, out.data, out.dtype, count,
      hidden);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::clamp(Context &ctx, Tensor x, MutableTensor out,
                        int64_t count, float limit) {
  mapFloats(ctx, "clamp", x, out, count, Clamp{limit});
}

void moert::cuda::scale(Context &ctx, Tensor x, MutableTensor out,
                        int64_t count, float factor) {
  mapFloats(ctx, "scale", x, out, count, Scale{factor});
}
