//===- runtime/cuda/Device.cuh - Device loads, stores, launches -*- CUDA
//-*-===//
#ifndef MOERT_CUDA_DEVICE_CUH
#define MOERT_CUDA_DEVICE_CUH

#include "runtime/cuda/Check.h"
#include "runtime/moert.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

namespace moert::cuda {

// Element i of a storage-dtype array, widened to fp32.
__device__ inline float loadFloat(const void *data, moert_dtype_t dtype,
                                  int64_t i) {
  switch (dtype) {
  case MOERT_F32:
    return static_cast<const float *>(data)[i];
  case MOERT_F16:
    return __half2float(static_cast<const __half *>(data)[i]);
  case MOERT_BF16:
    return __bfloat162float(static_cast<const __nv_bfloat16 *>(data)[i]);
  case MOERT_I32:
    return static_cast<float>(static_cast<const int32_t *>(data)[i]);
  case MOERT_I64:
    return static_cast<float>(static_cast<const int64_t *>(data)[i]);
  }
  return 0.0f;
}

// Rounds to nearest even for f16/bf16; truncates toward zero for ints (as
// runtime/common/Convert does).
__device__ inline void storeFloat(void *data, moert_dtype_t dtype, int64_t i,
                                  float value) {
  switch (dtype) {
  case MOERT_F32:
    static_cast<float *>(data)[i] = value;
    return;
  case MOERT_F16:
    static_cast<__half *>(data)[i] = __float2half_rn(value);
    return;
  case MOERT_BF16:
    static_cast<__nv_bfloat16 *>(data)[i] = __float2bfloat16_rn(value);
    return;
  case MOERT_I32:
    static_cast<int32_t *>(data)[i] = static_cast<int32_t>(value);
    return;
  case MOERT_I64:
    static_cast<int64_t *>(data)[i] = static_cast<int64_t>(value);
    return;
  }
}

// Records the first bad routing entry; the host reads it at the next
// Context::synchronize().
__device__ inline void reportBadChoice(long long *errorWord, int64_t choice) {
  atomicCAS(reinterpret_cast<unsigned long long *>(errorWord),
            static_cast<unsigned long long>(-1LL),
            static_cast<unsigned long long>(choice));
}

constexpr int threadsPerBlock = 256;

// Blocks for a grid-stride loop over n items (at least 1).
inline unsigned gridFor(int64_t n, int threads = threadsPerBlock) {
  int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>(blocks, 65535 * 8)));
}

#define MOERT_GRID_STRIDE(i, n)                                                \
  for (int64_t i =                                                             \
           blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;        \
       i < (n); i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread
// gets the result.
__device__ inline float blockSum(float value, float *shared32) {
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_down_sync(0xffffffffu, value, offset);
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads(); // shared32 may still be read by a previous call
  if (lane == 0)
    shared32[warp] = value;
  __syncthreads();
  float total = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w)
    total += shared32[w];
  return total;
}

// Max over the block (as blockSum).
__device__ inline float blockMax(float value, float *shared32) {
  for (int offset = 16; offset > 0; offset /= 2)
    value = fmaxf(value, __shfl_down_sync(0xffffffffu, value, offset));
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0)
    shared32[warp] = value;
  __syncthreads();
  float top = -INFINITY;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w)
    top = fmaxf(top, shared32[w]);
  return top;
}

// Softmax numerators of scores[0, length) in place, from each thread's max
// over the scores it wrote: scores[t] = exp(scores[t] - block max). Returns
// their sum; its barriers publish the scores to the whole block.
__device__ inline float blockSoftmaxNumerators(float *scores, int64_t length,
                                               float threadTop,
                                               float *shared32) {
  float top = blockMax(threadTop, shared32);
  float sum = 0.0f;
  for (int64_t t = threadIdx.x; t < length; t += blockDim.x) {
    scores[t] = expf(scores[t] - top);
    sum += scores[t];
  }
  return blockSum(sum, shared32);
}

size_t dtypeBytes(moert_dtype_t dtype);
void requireFloat(moert_dtype_t dtype, const char *name);

} // namespace moert::cuda

#endif // MOERT_CUDA_DEVICE_CUH
