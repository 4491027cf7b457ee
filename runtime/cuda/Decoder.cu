//===- runtime/cuda/Decoder.cu - Linear, embedding, RoPE, attention -------===//
//
// Simple, correct kernels for the decoder calls (semantics: runtime/moert.h,
// reference: runtime/cpu/Decoder.cpp). Linear goes through the router's
// cuBLAS GEMM; decode and prefill attention share one kernel: a block per
// (token, head), scores in shared memory, max-subtracted fp32 softmax. Not
// tuned (no flash tiling yet). Bad ids, sequences or positions are reported
// through the context's error word and their rows skipped.
//
//===----------------------------------------------------------------------===//

#include "runtime/common/Error.h"
#include "runtime/common/Rope.h"
#include "runtime/cuda/Device.cuh"
#include "runtime/cuda/Kernels.h"

using namespace moert;
using namespace moert::cuda;

namespace {

__global__ void embeddingKernel(const int32_t *ids, const void *table,
                                moert_dtype_t tableType, void *out,
                                moert_dtype_t outType, int64_t tokens,
                                int64_t vocab, int64_t hidden,
                                long long *errorWord) {
  for (int64_t s = blockIdx.x; s < tokens; s += gridDim.x) {
    int64_t id = ids[s];
    if (id < 0 || id >= vocab) {
      if (threadIdx.x == 0)
        reportBadChoice(errorWord, s);
      continue;
    }
    for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x)
      storeFloat(out, outType, s * hidden + h,
                 loadFloat(table, tableType, id * hidden + h));
  }
}

__global__ void ropeKernel(moert_rope_config_t cfg, void *x,
                           moert_dtype_t xType, const int32_t *positions,
                           int64_t tokens, int64_t heads, int64_t headDim) {
  const int64_t rotaryDim = ropeRotaryDim(cfg, headDim), half = rotaryDim / 2;
  // longrope picks its factors by the call's largest position: each block
  // finds it (a strided scan, then a shared atomicMax) before any rotation.
  __shared__ int maxPosition;
  bool longRegime = false;
  if (cfg.type == MOERT_ROPE_LONGROPE) {
    if (threadIdx.x == 0)
      maxPosition = 0;
    __syncthreads();
    int localMax = 0;
    for (int64_t s = threadIdx.x; s < tokens; s += blockDim.x)
      localMax = max(localMax, positions[s]);
    atomicMax(&maxPosition, localMax);
    __syncthreads();
    longRegime = ropeLongRegime(cfg, maxPosition);
  }
  const float scale = ropeCosSinScale(cfg, longRegime);
  MOERT_GRID_STRIDE(item, tokens * heads * half) {
    int64_t i = item % half, row = item / half, s = row / heads;
    float angle = static_cast<float>(positions[s]) *
                  ropeInvFreq(cfg, i, rotaryDim, longRegime);
    float c = cosf(angle) * scale;
    float sn = sinf(angle) * scale;
    int64_t a, b;
    ropePair(cfg, i, rotaryDim, a, b);
    a += row * headDim;
    b += row * headDim;
    float x1 = loadFloat(x, xType, a), x2 = loadFloat(x, xType, b);
    storeFloat(x, xType, a, x1 * c - x2 * sn);
    storeFloat(x, xType, b, x2 * c + x1 * sn);
  }
}

__device__ inline bool inCache(const KvCacheShape &shape, int64_t b,
                               int64_t p) {
  return b >= 0 && b < shape.maxBatch && p >= 0 && p < shape.maxSeq;
}

__global__ void kvAppendKernel(const void *k, moert_dtype_t kType,
                               const void *v, moert_dtype_t vType, void *cache,
                               moert_dtype_t cacheType,
                               const int32_t *sequences,
                               const int32_t *positions, int64_t tokens,
                               KvCacheShape shape, long long *errorWord) {
  int64_t row = shape.kvHeads * shape.headDim;
  MOERT_GRID_STRIDE(i, tokens * row) {
    int64_t s = i / row, b = sequences[s], p = positions[s];
    if (!inCache(shape, b, p)) {
      reportBadChoice(errorWord, s);
      continue;
    }
    int64_t at = shape.at(b, p, 0) + i % row;
    storeFloat(cache, cacheType, at, loadFloat(k, kType, i));
    storeFloat(cache, cacheType, shape.half() + at, loadFloat(v, vType, i));
  }
}

// One block per (token, head); scores [tokens * heads, maxSeq] in global
// scratch.
__global__ void attentionKernel(const void *q, moert_dtype_t qType,
                                const void *cache, moert_dtype_t cacheType,
                                const int32_t *sequences,
                                const int32_t *positions, const void *sinks,
                                moert_dtype_t sinkType, void *out,
                                moert_dtype_t outType, int64_t heads,
                                KvCacheShape shape, float scale, int64_t window,
                                float *scratch, long long *errorWord) {
  __shared__ float partial[32];
  int64_t item = blockIdx.x, s = item / heads, h = item % heads;
  int64_t dim = shape.headDim, kvHead = h / (heads / shape.kvHeads);
  int64_t b = sequences[s], last = positions[s];
  if (!inCache(shape, b, last)) {
    if (threadIdx.x == 0)
      reportBadChoice(errorWord, s);
    return;
  }
  // The sliding window: the token and the window - 1 positions before it.
  int64_t first = window > 0 && last - window + 1 > 0 ? last - window + 1 : 0;
  int64_t length = last + 1 - first;
  float *scores = scratch + item * shape.maxSeq;
  // A sink is one more logit in the maximum and the denominator.
  float sink = sinks ? loadFloat(sinks, sinkType, h) : -INFINITY;
  float top = sink;
  for (int64_t t = threadIdx.x; t < length; t += blockDim.x) {
    float dot = 0.0f;
    int64_t at = shape.at(b, first + t, kvHead);
    for (int64_t d = 0; d < dim; ++d)
      dot += loadFloat(q, qType, item * dim + d) *
             loadFloat(cache, cacheType, at + d);
    scores[t] = dot * scale;
    top = fmaxf(top, scores[t]);
  }
  float sum = blockSoftmaxNumerators(scores, length, top, partial);
  if (sinks)
    sum += expf(sink - blockMax(top, partial));
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int64_t t = 0; t < length; ++t)
      acc += scores[t] / sum *
             loadFloat(cache, cacheType,
                       shape.half() + shape.at(b, first + t, kvHead) + d);
    storeFloat(out, outType, item * dim + d, acc);
  }
}

// One block per token: the first index of the largest logit; NaN reported.
__global__ void argmaxKernel(const float *logits, int32_t *ids, int64_t tokens,
                             int64_t vocab, long long *errorWord) {
  __shared__ float bestValue[256];
  __shared__ int64_t bestIndex[256];
  for (int64_t s = blockIdx.x; s < tokens; s += gridDim.x) {
    const float *row = logits + s * vocab;
    float value = -INFINITY;
    int64_t index = vocab;
    bool nan = false;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
      nan |= isnan(row[i]);
      if (index == vocab || row[i] > value) { // ascending: first wins a tie
        value = row[i];
        index = i;
      }
    }
    if (nan)
      reportBadChoice(errorWord, s);
    bestValue[threadIdx.x] = value;
    bestIndex[threadIdx.x] = index;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) {
        float v = bestValue[threadIdx.x + stride];
        int64_t j = bestIndex[threadIdx.x + stride];
        if (v > bestValue[threadIdx.x] ||
            (v == bestValue[threadIdx.x] && j < bestIndex[threadIdx.x])) {
          bestValue[threadIdx.x] = v;
          bestIndex[threadIdx.x] = j;
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0)
      ids[s] = static_cast<int32_t>(bestIndex[0]);
    __syncthreads();
  }
}

} // namespace

void moert::cuda::linear(Context &ctx, Tensor x, Tensor w, Tensor bias,
                         MutableTensor out, int64_t tokens, int64_t n,
                         int64_t k) {
  if (tokens == 0)
    return;
  if (out.dtype == MOERT_F32) {
    router(ctx, x, w, bias, static_cast<float *>(out.data), tokens, k, n);
    return;
  }
  auto *rows = static_cast<float *>(
      ctx.scratch(Scratch::Linear, tokens * n * sizeof(float)));
  router(ctx, x, w, bias, rows, tokens, k, n);
  convert(ctx, Tensor{rows, MOERT_F32}, out, tokens * n);
}

void moert::cuda::embedding(Context &ctx, const int32_t *ids, Tensor table,
                            MutableTensor out, int64_t tokens, int64_t vocab,
                            int64_t hidden) {
  if (tokens == 0)
    return;
  embeddingKernel<<<gridFor(tokens, 1), threadsPerBlock, 0, ctx.stream()>>>(
      ids, table.data, table.dtype, out.data, out.dtype, tokens, vocab, hidden,
      ctx.errorWord());
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::rope(Context &ctx, const moert_rope_config_t &cfg,
                       MutableTensor x, const int32_t *positions,
                       int64_t tokens, int64_t heads, int64_t headDim) {
  int64_t items = tokens * heads * (headDim / 2);
  if (items == 0)
    return;
  ropeKernel<<<gridFor(items), threadsPerBlock, 0, ctx.stream()>>>(
      cfg, x.data, x.dtype, positions, tokens, heads, headDim);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::kvAppend(Context &ctx, Tensor k, Tensor v,
                           MutableTensor cache, const int32_t *sequences,
                           const int32_t *positions, int64_t tokens,
                           const KvCacheShape &shape) {
  int64_t count = tokens * shape.kvHeads * shape.headDim;
  if (count == 0)
    return;
  kvAppendKernel<<<gridFor(count), threadsPerBlock, 0, ctx.stream()>>>(
      k.data, k.dtype, v.data, v.dtype, cache.data, cache.dtype, sequences,
      positions, tokens, shape, ctx.errorWord());
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::attention(Context &ctx, Tensor q, Tensor cache,
                            const int32_t *sequences, const int32_t *positions,
                            Tensor sinks, MutableTensor out, int64_t tokens,
                            int64_t heads, const KvCacheShape &shape,
                            float scale, int64_t window) {
  int64_t items = tokens * heads;
  if (items == 0)
    return;
  require(items <= 0x7fffffff, "attention: too many (token, head) pairs");
  auto *scores = static_cast<float *>(
      ctx.scratch(Scratch::Attention, items * shape.maxSeq * sizeof(float)));
  attentionKernel<<<static_cast<unsigned>(items), 128, 0, ctx.stream()>>>(
      q.data, q.dtype, cache.data, cache.dtype, sequences, positions,
      sinks.data, sinks.dtype, out.data, out.dtype, heads, shape, scale, window,
      scores, ctx.errorWord());
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::argmax(Context &ctx, const float *logits, int32_t *ids,
                         int64_t tokens, int64_t vocab) {
  if (tokens == 0)
    return;
  argmaxKernel<<<gridFor(tokens, 1), 256, 0, ctx.stream()>>>(
      logits, ids, tokens, vocab, ctx.errorWord());
  MOERT_CUDA_CHECK_LAUNCH();
}
