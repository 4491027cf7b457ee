//===- SaturatingSizes.h - size arithmetic that cannot overflow -*- C++ -*-===//
//
// Byte and element counts of absurd inputs (a fuzzed capacity of 2^62)
// saturate at kSaturatedSize instead of wrapping; plain C++, for the cost
// model and the lowering alike.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PASSES_SUPPORT_SATURATINGSIZES_H
#define MOE_PASSES_SUPPORT_SATURATINGSIZES_H

#include <algorithm>
#include <cstdint>

namespace mlir::moe {

/// Far above any buffer a plan may hold.
constexpr int64_t kSaturatedSize = int64_t(1) << 60;

/// a * b and a + b of sizes (>= 0), saturating at kSaturatedSize.
inline int64_t mulSizes(int64_t a, int64_t b) {
  int64_t product;
  return __builtin_mul_overflow(a, b, &product) || product > kSaturatedSize
             ? kSaturatedSize
             : product;
}
inline int64_t addSizes(int64_t a, int64_t b) {
  int64_t sum;
  return __builtin_add_overflow(a, b, &sum) ? kSaturatedSize
                                            : std::min(sum, kSaturatedSize);
}

} // namespace mlir::moe

#endif // MOE_PASSES_SUPPORT_SATURATINGSIZES_H
