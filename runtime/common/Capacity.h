//===- runtime/common/Capacity.h - The gate's capacity rule -----*- C++ -*-===//
//
// C = max(min_capacity, ceil(top_k * tokens / experts * capacity_factor)) for
// capacity_factor > 0, in double as DeepSpeed computes it. The one home of
// the rule: the runtime's gates, the moe dialect's RoutingAttr and the
// compiler's cost model all call it. Plain C++, no dependency.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_CAPACITY_H
#define MOERT_COMMON_CAPACITY_H

#include <cmath>
#include <cstdint>

namespace moert {

inline int64_t capacityFor(int64_t topK, int64_t tokens, int64_t experts,
                           double capacityFactor, int64_t minCapacity) {
  double wanted = static_cast<double>(topK) * static_cast<double>(tokens) /
                  static_cast<double>(experts) * capacityFactor;
  int64_t c = static_cast<int64_t>(std::ceil(wanted));
  return c > minCapacity ? c : minCapacity;
}

} // namespace moert

#endif // MOERT_COMMON_CAPACITY_H
