//===- runtime/nccl/Plan.cpp - Send/receive plans -------------------------===//

#include "runtime/nccl/Plan.h"

#include "runtime/common/Error.h"

#include <cstring>

using namespace moert;
using namespace moert::nccl;

namespace {

void checkExtents(const Extents &x) {
  require(x.members >= 1 && x.member >= 0 && x.member < x.members &&
              x.expertsLocal >= 1 && x.capacity >= 0 && x.hidden >= 1,
          "all_to_all plan: bad extents: members ", x.members, ", member ",
          x.member, ", experts_local ", x.expertsLocal, ", capacity ",
          x.capacity, ", hidden ", x.hidden);
}

} // namespace

Exchange moert::nccl::flatAllToAll(moert_a2a_direction_t direction,
                                   const Extents &x, const int32_t *sendRows,
                                   const int32_t *recvRows) {
  checkExtents(x);
  const int64_t g = x.members, el = x.expertsLocal,
                rows = x.capacity * x.hidden;
  Exchange plan;
  auto rowsOr = [&](const int32_t *counts, int64_t index) {
    if (!counts)
      return rows;
    require(counts[index] >= 0 && counts[index] <= x.capacity,
            "all_to_all plan: ", counts[index], " rows exceed capacity ",
            x.capacity);
    return counts[index] * x.hidden;
  };
  for (int64_t peer = 0; peer < g; ++peer) {
    for (int64_t e = 0; e < el; ++e) {
      int32_t p = static_cast<int32_t>(peer);
      if (direction == MOERT_A2A_TO_EXPERTS) {
        // send [E, C, H]: expert peer*El + e; recv [El, G*C, H]: block (e, p).
        plan.sends.push_back(
            {p, (peer * el + e) * rows, rowsOr(sendRows, peer * el + e)});
        plan.recvs.push_back(
            {p, (e * g + peer) * rows, rowsOr(recvRows, e * g + peer)});
      } else {
        plan.sends.push_back(
            {p, (e * g + peer) * rows, rowsOr(sendRows, e * g + peer)});
        plan.recvs.push_back(
            {p, (peer * el + e) * rows, rowsOr(recvRows, peer * el + e)});
      }
    }
  }
  return plan;
}

Exchange moert::nccl::slicedAllToAll(moert_a2a_direction_t direction,
                                     const Extents &x, int32_t slices) {
  checkExtents(x);
  require(slices >= 1 && x.members % slices == 0,
          "sliced all_to_all: ", x.members, " members are not a multiple of ",
          slices, " slices");
  const int64_t g = x.members, el = x.expertsLocal, t = slices;
  const int64_t rows = x.capacity * x.hidden, ep = g / t;
  const int64_t experts = ep * el;
  Exchange plan;
  for (int64_t peer = 0; peer < g; ++peer) {
    int32_t p = static_cast<int32_t>(peer);
    int64_t peerEp = peer / t, peerSlice = peer % t;
    for (int64_t e = 0; e < el; ++e) {
      if (direction == MOERT_A2A_TO_EXPERTS) {
        // Every slice holder of peerEp gets the rows of its experts.
        plan.sends.push_back({p, (peerEp * el + e) * rows, rows});
        plan.recvs.push_back({p, (e * g + peer) * rows, rows});
      } else {
        // Partial rows back to their token rank; slice s lands in plane s.
        plan.sends.push_back({p, (e * g + peer) * rows, rows});
        plan.recvs.push_back(
            {p, (peerSlice * experts + peerEp * el + e) * rows, rows});
      }
    }
  }
  return plan;
}

HierarchicalPlan moert::nccl::hierarchicalChunks(int32_t nodes, int32_t perNode,
                                                 int32_t member,
                                                 int64_t chunk) {
  require(nodes >= 1 && perNode >= 1 && member >= 0 &&
              member < nodes * perNode && chunk >= 0,
          "hierarchical plan: bad extents");
  HierarchicalPlan plan{nodes, perNode, chunk, {}, {}};
  // Stage 1 (after transposing to [local dest][node dest]): local peer b
  // gets our `nodes` chunks for it; we get b's at b's position.
  for (int32_t b = 0; b < perNode; ++b) {
    plan.intra.sends.push_back({b, b * nodes * chunk, nodes * chunk});
    plan.intra.recvs.push_back({b, b * nodes * chunk, nodes * chunk});
  }
  // Stage 2 (after transposing to [node dest][local source]): node a gets
  // perNode chunks.
  for (int32_t a = 0; a < nodes; ++a) {
    plan.inter.sends.push_back({a, a * perNode * chunk, perNode * chunk});
    plan.inter.recvs.push_back({a, a * perNode * chunk, perNode * chunk});
  }
  return plan;
}

void moert::nccl::transposeChunksHost(const char *src, char *dst, int64_t rows,
                                      int64_t cols, size_t chunkBytes) {
  for (int64_t d = 0; d < rows * cols; ++d)
    std::memcpy(dst + d * chunkBytes,
                src + transposeSourceChunk(d, rows, cols) * chunkBytes,
                chunkBytes);
}
