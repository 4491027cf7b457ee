//===- runtime/common/NodeLayout.h - Nodes of a hierarchical group -*- C++
//-*-===//
//
// The hierarchical all-to-all exchanges within each node, then between
// nodes: it needs a group listed node by node with the same number of
// members on every node. The one home of that rule, for the CPU backend's
// shared-memory stages and the CUDA backend's NCCL splits.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_NODELAYOUT_H
#define MOERT_COMMON_NODELAYOUT_H

#include <cstdint>
#include <vector>

namespace moert {

struct NodeLayout {
  int32_t nodes;   // M: nodes the group spans
  int32_t perNode; // L: members on each node
};

// worldRanks: the group's members in order; a rank's node is
// rank / gpusPerNode. Throws moert::Error (MOERT_INVALID_ARGUMENT) when the
// group is not sorted by node or uneven.
NodeLayout nodeLayout(const std::vector<int32_t> &worldRanks,
                      int32_t gpusPerNode);

} // namespace moert

#endif // MOERT_COMMON_NODELAYOUT_H
