//===- runtime/nccl/Plan.h - Send/receive plans of the all-to-alls -*- C++
//-*-===//
//
// Host-side description of every expert-major exchange as lists of
// ncclSend / ncclRecv (peer, offset, count) issued inside one
// ncclGroupStart/End, plus the chunk transposes of the hierarchical variant.
// Offsets and counts are in elements. Peers of one pair list their transfers
// in the same order, which is how NCCL matches several messages between
// the same two ranks. Layouts are those of runtime/cpu/Collectives.cpp.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_NCCL_PLAN_H
#define MOERT_NCCL_PLAN_H

#include "runtime/common/HostDevice.h"
#include "runtime/moert.h"

#include <cstdint>
#include <vector>

namespace moert::nccl {

struct Transfer {
  int32_t peer; // member index in the exchanging group
  int64_t offset, count;
};

struct Exchange {
  std::vector<Transfer> sends, recvs;
};

struct Extents {
  int32_t members;      // G
  int32_t member;       // this rank's index
  int64_t expertsLocal; // E_local
  int64_t capacity;     // C
  int64_t hidden;       // H
};

// Flat expert-major all-to-all (moert_all_to_all, MOERT_A2A_FLAT): one
// C x H message per (peer, local expert), straight into the final layout.
// rows (optional, dropless): sendRows[E] rows this rank holds per global
// expert (to_experts) or per [E_local, G] block (from_experts), recvRows
// the same for what it receives (counts exchanged first); only those rows
// travel, at the padded offsets, so the layout stays [.., C, H].
Exchange flatAllToAll(moert_a2a_direction_t direction, const Extents &x,
                      const int32_t *sendRows = nullptr,
                      const int32_t *recvRows = nullptr);

// Expert slicing: the group is EP x T members, member m = ep * T + t holds
// slice t of experts [ep * E_local, (ep + 1) * E_local). to_experts: every
// member sends expert e's rows to all T slice holders of e, each receives
// [E_local, G * C, H] as in the flat layout. from_experts: each slice holder
// returns its partial rows; the token side receives T partials per expert
// into recv [T][E][C][H] (summed by sumSlices). x.members = EP * T.
Exchange slicedAllToAll(moert_a2a_direction_t direction, const Extents &x,
                        int32_t slices);

// Two-stage (hierarchical) exchange of G = nodes * perNode chunks of
// chunkElements, destination-major in, source-major out (the generic step
// of runtime/cpu's hierarchicalAllToAll).
struct HierarchicalPlan {
  int32_t nodes, perNode;
  int64_t chunk;
  Exchange intra; // members of this node, index = local rank
  Exchange inter; // same local rank on every node, index = node
};
HierarchicalPlan hierarchicalChunks(int32_t nodes, int32_t perNode,
                                    int32_t member, int64_t chunkElements);

// Chunk transpose dst[j][i] = src[i][j] over a rows x cols grid: source
// chunk of destination chunk `d`. The transform kernel and tests share it.
MOERT_HD inline int64_t transposeSourceChunk(int64_t d, int64_t rows,
                                             int64_t cols) {
  int64_t j = d / rows, i = d % rows;
  return i * cols + j;
}

// Host version of the layout transform (tests; the device one is a kernel).
void transposeChunksHost(const char *src, char *dst, int64_t rows, int64_t cols,
                         size_t chunkBytes);

} // namespace moert::nccl

#endif // MOERT_NCCL_PLAN_H
