//===- runtime/common/LatentCache.h - MLA latent cache layout ---*- C++ -*-===//
//
// The layout of a latent cache view (moert.h "DeepSeek multi-head latent
// attention"), for the API layer, the CPU backend and the CUDA kernels: per
// (sequence, position) the compressed KV c (rank values), then the rotated
// shared key k_pe (ropeDim values): [maxBatch, maxSeq, rank + ropeDim].
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_LATENTCACHE_H
#define MOERT_COMMON_LATENTCACHE_H

#include "runtime/common/HostDevice.h"

#include <stdint.h>

namespace moert {

struct LatentCacheShape {
  int64_t rank, ropeDim, maxBatch, maxSeq;
  MOERT_HD int64_t row() const { return rank + ropeDim; }
  MOERT_HD int64_t elements() const { return maxBatch * maxSeq * row(); }
  // Element offset of (sequence, position): c there, k_pe `rank` further.
  MOERT_HD int64_t at(int64_t sequence, int64_t position) const {
    return (sequence * maxSeq + position) * row();
  }
};

// The heads of a latent attention call: q rows are heads x (nopeDim +
// ropeDim), kv_b rows heads x (nopeDim + vDim) of `rank` columns, out rows
// heads x vDim.
struct LatentHeads {
  int64_t heads, nopeDim, vDim;
};

// DeepSeek's rotary embedding pairs neighbouring dimensions: (x[2i],
// x[2i+1]) rotated by angle i (V2's complex multiply; V3's rope_interleave
// permutes q and k alike before rotate_half, which leaves q . k the same).
MOERT_HD inline void ropeInterleavedPair(float &x0, float &x1, float c,
                                         float s) {
  float a = x0, b = x1;
  x0 = a * c - b * s;
  x1 = b * c + a * s;
}

} // namespace moert

#endif // MOERT_COMMON_LATENTCACHE_H
