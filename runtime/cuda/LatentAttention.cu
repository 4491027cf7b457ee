//===- runtime/cuda/LatentAttention.cu - DeepSeek MLA kernels -------------===//
//
// moert_latent_append and moert_latent_attention (semantics: runtime/moert.h,
// reference: runtime/cpu/LatentAttention.cpp). Simple, correct kernels: the
// append a block per token, the absorbed attention a block per (token,
// head) with the query, q_lat and the latent output in shared memory and the
// scores in global scratch. Not tuned. Bad sequences or positions are
// reported through the context's error word and their rows skipped.
//
//===----------------------------------------------------------------------===//

#include "runtime/common/Error.h"
#include "runtime/common/Rope.h"
#include "runtime/cuda/Device.cuh"
#include "runtime/cuda/Kernels.h"

using namespace moert;
using namespace moert::cuda;

namespace {

__device__ inline bool inLatentCache(const LatentCacheShape &shape, int64_t b,
                                     int64_t p) {
  return b >= 0 && b < shape.maxBatch && p >= 0 && p < shape.maxSeq;
}

// The rotation of pair i at `position` (cos, sin times attention_factor).
__device__ inline void pairAngle(const moert_rope_config_t &cfg, int64_t i,
                                 int64_t ropeDim, int32_t position, float &c,
                                 float &s) {
  float angle = static_cast<float>(position) * ropeInvFreq(cfg, i, ropeDim);
  c = cosf(angle) * static_cast<float>(cfg.attention_factor);
  s = sinf(angle) * static_cast<float>(cfg.attention_factor);
}

// A block per token: RMSNorm of the latent (rounded to kv's dtype before
// the weight), rope of k_pe, both stored at (sequence, position).
__global__ void latentAppendKernel(moert_rope_config_t cfg, const void *kv,
                                   moert_dtype_t kvType, const void *norm,
                                   moert_dtype_t normType, void *cache,
                                   moert_dtype_t cacheType,
                                   const int32_t *sequences,
                                   const int32_t *positions, int64_t tokens,
                                   LatentCacheShape shape, float epsilon,
                                   long long *errorWord) {
  __shared__ float partial[32];
  const int64_t r = shape.rank, row = shape.row();
  for (int64_t s = blockIdx.x; s < tokens; s += gridDim.x) {
    int64_t b = sequences[s], p = positions[s];
    if (!inLatentCache(shape, b, p)) {
      if (threadIdx.x == 0)
        reportBadChoice(errorWord, s);
      continue; // uniform over the block: blockSum is not reached
    }
    float squares = 0;
    for (int64_t i = threadIdx.x; i < r; i += blockDim.x) {
      float v = loadFloat(kv, kvType, s * row + i);
      squares += v * v;
    }
    float inverse = rsqrtf(blockSum(squares, partial) / r + epsilon);
    int64_t at = shape.at(b, p);
    for (int64_t i = threadIdx.x; i < r; i += blockDim.x) {
      uint32_t rounded; // the normalised latent in kv's dtype
      storeFloat(&rounded, kvType, 0,
                 loadFloat(kv, kvType, s * row + i) * inverse);
      storeFloat(cache, cacheType, at + i,
                 loadFloat(norm, normType, i) * loadFloat(&rounded, kvType, 0));
    }
    for (int64_t i = threadIdx.x; i < shape.ropeDim / 2; i += blockDim.x) {
      float c, sn;
      pairAngle(cfg, i, shape.ropeDim, static_cast<int32_t>(p), c, sn);
      float x0 = loadFloat(kv, kvType, s * row + r + 2 * i);
      float x1 = loadFloat(kv, kvType, s * row + r + 2 * i + 1);
      ropeInterleavedPair(x0, x1, c, sn);
      storeFloat(cache, cacheType, at + r + 2 * i, x0);
      storeFloat(cache, cacheType, at + r + 2 * i + 1, x1);
    }
  }
}

// A block per (token, head). Dynamic shared memory: the query (nope +
// rope), q_lat and the latent output (rank each).
__global__ void latentAttentionKernel(
    moert_rope_config_t cfg, const void *q, moert_dtype_t qType,
    const void *kvB, moert_dtype_t kvBType, const void *cache,
    moert_dtype_t cacheType, const int32_t *sequences, const int32_t *positions,
    void *out, moert_dtype_t outType, LatentHeads heads, LatentCacheShape shape,
    float scale, float *scratch, long long *errorWord) {
  extern __shared__ float shared[];
  __shared__ float partial[32];
  const int64_t r = shape.rank, dr = shape.ropeDim, dn = heads.nopeDim,
                dv = heads.vDim, qRow = dn + dr;
  int64_t item = blockIdx.x, s = item / heads.heads, h = item % heads.heads;
  int64_t b = sequences[s];
  int32_t position = positions[s];
  if (!inLatentCache(shape, b, position)) {
    if (threadIdx.x == 0)
      reportBadChoice(errorWord, s);
    return;
  }
  int64_t length = int64_t(position) + 1;
  float *query = shared, *qLat = query + qRow, *oLat = qLat + r;
  for (int64_t d = threadIdx.x; d < dn; d += blockDim.x)
    query[d] = loadFloat(q, qType, item * qRow + d);
  for (int64_t i = threadIdx.x; i < dr / 2; i += blockDim.x) {
    float c, sn;
    pairAngle(cfg, i, dr, position, c, sn);
    float x0 = loadFloat(q, qType, item * qRow + dn + 2 * i);
    float x1 = loadFloat(q, qType, item * qRow + dn + 2 * i + 1);
    ropeInterleavedPair(x0, x1, c, sn);
    query[dn + 2 * i] = x0;
    query[dn + 2 * i + 1] = x1;
  }
  __syncthreads();
  // Absorb W_UK into the query: q_lat = W_UK[h]^T q_nope.
  int64_t block = h * (dn + dv) * r;
  for (int64_t j = threadIdx.x; j < r; j += blockDim.x) {
    float acc = 0.0f;
    for (int64_t n = 0; n < dn; ++n)
      acc += query[n] * loadFloat(kvB, kvBType, block + n * r + j);
    qLat[j] = acc;
  }
  __syncthreads();
  float *scores = scratch + item * shape.maxSeq;
  float top = -INFINITY;
  for (int64_t t = threadIdx.x; t < length; t += blockDim.x) {
    int64_t at = shape.at(b, t);
    float dot = 0.0f;
    for (int64_t j = 0; j < r; ++j)
      dot += qLat[j] * loadFloat(cache, cacheType, at + j);
    for (int64_t d = 0; d < dr; ++d)
      dot += query[dn + d] * loadFloat(cache, cacheType, at + r + d);
    scores[t] = dot * scale;
    top = fmaxf(top, scores[t]);
  }
  float sum = blockSoftmaxNumerators(scores, length, top, partial);
  for (int64_t j = threadIdx.x; j < r; j += blockDim.x) {
    float acc = 0.0f;
    for (int64_t t = 0; t < length; ++t)
      acc += scores[t] / sum * loadFloat(cache, cacheType, shape.at(b, t) + j);
    oLat[j] = acc;
  }
  __syncthreads();
  // W_UV after the attention, on the latent.
  for (int64_t v = threadIdx.x; v < dv; v += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < r; ++j)
      acc += loadFloat(kvB, kvBType, block + (dn + v) * r + j) * oLat[j];
    storeFloat(out, outType, item * dv + v, acc);
  }
}

} // namespace

void moert::cuda::latentAppend(Context &ctx, const moert_rope_config_t &cfg,
                               Tensor kv, Tensor norm, MutableTensor cache,
                               const int32_t *sequences,
                               const int32_t *positions, int64_t tokens,
                               const LatentCacheShape &shape, float epsilon) {
  if (tokens == 0)
    return;
  latentAppendKernel<<<gridFor(tokens, 1), threadsPerBlock, 0, ctx.stream()>>>(
      cfg, kv.data, kv.dtype, norm.data, norm.dtype, cache.data, cache.dtype,
      sequences, positions, tokens, shape, epsilon, ctx.errorWord());
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::latentAttention(Context &ctx, const moert_rope_config_t &cfg,
                                  Tensor q, Tensor kvB, Tensor cache,
                                  const int32_t *sequences,
                                  const int32_t *positions, MutableTensor out,
                                  int64_t tokens, const LatentHeads &heads,
                                  const LatentCacheShape &shape, float scale) {
  int64_t items = tokens * heads.heads;
  if (items == 0)
    return;
  require(items <= 0x7fffffff,
          "latent attention: too many (token, head) pairs");
  size_t sharedBytes =
      (heads.nopeDim + shape.ropeDim + 2 * shape.rank) * sizeof(float);
  require(sharedBytes <= 48 * 1024, "latent attention: rank ", shape.rank,
          " needs ", sharedBytes, " bytes of shared memory, more than 48 KiB");
  auto *scores = static_cast<float *>(ctx.scratch(
      Scratch::LatentAttention, items * shape.maxSeq * sizeof(float)));
  latentAttentionKernel<<<static_cast<unsigned>(items), 128, sharedBytes,
                          ctx.stream()>>>(
      cfg, q.data, q.dtype, kvB.data, kvB.dtype, cache.data, cache.dtype,
      sequences, positions, out.data, out.dtype, heads, shape, scale, scores,
      ctx.errorWord());
  MOERT_CUDA_CHECK_LAUNCH();
}
