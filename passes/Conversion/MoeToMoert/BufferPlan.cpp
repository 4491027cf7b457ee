//===- BufferPlan.cpp - static placement of buffers by live range ---------===//

#include "passes/Conversion/MoeToMoert/BufferPlan.h"

#include <algorithm>
#include <numeric>

using namespace mlir::moe;

int64_t mlir::moe::planBuffers(std::vector<PlannedBuffer> &buffers,
                               int64_t alignment) {
  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  // Big buffers first: the usual greedy that keeps small ones in the gaps.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return buffers[a].bytes > buffers[b].bytes;
  });
  auto alignUp = [&](int64_t v) {
    return (v + alignment - 1) / alignment * alignment;
  };
  int64_t peak = 0;
  std::vector<size_t> placed;
  for (size_t i : order) {
    PlannedBuffer &b = buffers[i];
    // Byte ranges of placed buffers alive at the same time, by offset.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t j : placed) {
      const PlannedBuffer &o = buffers[j];
      if (o.first <= b.last && b.first <= o.last)
        busy.push_back({o.offset, o.offset + o.bytes});
    }
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (auto [start, end] : busy) {
      if (offset + b.bytes <= start)
        break;
      offset = std::max(offset, alignUp(end));
    }
    b.offset = offset;
    peak = std::max(peak, offset + b.bytes);
    placed.push_back(i);
  }
  return alignUp(peak);
}
