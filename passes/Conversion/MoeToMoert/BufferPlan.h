//===- BufferPlan.h - static placement of buffers by live range -*- C++ -*-===//
//
// The one place that decides where activations live: every buffer has a
// size and a live range [first, last] of program points; two buffers whose
// ranges overlap get disjoint bytes, others may share.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PASSES_CONVERSION_MOETOMOERT_BUFFERPLAN_H
#define MOE_PASSES_CONVERSION_MOETOMOERT_BUFFERPLAN_H

#include <cstdint>
#include <vector>

namespace mlir::moe {

struct PlannedBuffer {
  int64_t bytes;
  int64_t first, last; // live range, inclusive program points
  int64_t offset = -1; // assigned byte offset
};

/// Assigns offsets (aligned to `alignment` bytes) first-fit in order of
/// decreasing size; returns the peak: the arena size that holds them all.
int64_t planBuffers(std::vector<PlannedBuffer> &buffers,
                    int64_t alignment = 64);

} // namespace mlir::moe

#endif // MOE_PASSES_CONVERSION_MOETOMOERT_BUFFERPLAN_H
