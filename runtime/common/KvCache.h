//===- runtime/common/KvCache.h - KV cache layout ---------------*- C++ -*-===//
//
// The layout of a KV cache view (runtime/moert.h), for the API layer, the
// CPU backend and the CUDA kernels: keys [maxBatch, maxSeq, kvHeads,
// headDim], then values of the same shape.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_KVCACHE_H
#define MOERT_COMMON_KVCACHE_H

#include "runtime/common/HostDevice.h"

#include <stdint.h>

namespace moert {

struct KvCacheShape {
  int64_t kvHeads, headDim, maxBatch, maxSeq;
  MOERT_HD int64_t half() const {
    return maxBatch * maxSeq * kvHeads * headDim;
  }
  // Element offset of (sequence, position, head) in the keys.
  MOERT_HD int64_t at(int64_t sequence, int64_t position, int64_t head) const {
    return ((sequence * maxSeq + position) * kvHeads + head) * headDim;
  }
};

} // namespace moert

#endif // MOERT_COMMON_KVCACHE_H
