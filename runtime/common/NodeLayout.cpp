//===- runtime/common/NodeLayout.cpp - Nodes of a hierarchical group ------===//

#include "runtime/common/NodeLayout.h"

#include "runtime/common/Error.h"

#include <set>

moert::NodeLayout moert::nodeLayout(const std::vector<int32_t> &worldRanks,
                                    int32_t gpusPerNode) {
  require(gpusPerNode >= 1 && !worldRanks.empty(),
          "node layout: bad arguments");
  std::vector<int32_t> nodeOf;
  for (int32_t r : worldRanks)
    nodeOf.push_back(r / gpusPerNode);
  std::set<int32_t> distinct(nodeOf.begin(), nodeOf.end());
  size_t nodes = distinct.size(), size = worldRanks.size();
  size_t perNode = size / nodes;
  bool even = perNode * nodes == size;
  for (size_t i = 0; even && i < size; ++i) {
    even = nodeOf[i] == nodeOf[i / perNode * perNode];
    if (i % perNode == 0 && i > 0)
      even = even && nodeOf[i] != nodeOf[i - 1];
  }
  require(even, "hierarchical all_to_all needs a group sorted by node with "
                "the same number of members on each node");
  return {static_cast<int32_t>(nodes), static_cast<int32_t>(perNode)};
}
