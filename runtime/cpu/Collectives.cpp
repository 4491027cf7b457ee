//===- runtime/cpu/Collectives.cpp - Shared-memory collectives ------------===//
//
// Every collective is: publish a pointer, barrier, read the peers' published
// data, barrier (so nobody reuses a buffer a peer still reads).
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/Backend.h"

#include "runtime/common/Error.h"
#include "runtime/common/NodeLayout.h"

#include <algorithm>
#include <cstring>

using namespace moert;
using namespace moert::cpu;

namespace {

// send holds one chunk per destination member; recv chunk p is the chunk
// member p addressed to us.
void exchangeChunks(CpuBackend &backend, int32_t rank, Group &group,
                    const char *send, char *recv, size_t chunkBytes,
                    const char *what) {
  Rendezvous &rv = *group.rendezvous;
  size_t members = group.ranks.size();
  rv.published[group.member] = send;
  backend.synchronize(rank, rv, what);
  for (size_t p = 0; p < members; ++p)
    std::memcpy(recv + p * chunkBytes,
                static_cast<const char *>(rv.published[p]) +
                    group.member * chunkBytes,
                chunkBytes);
  backend.synchronize(rank, rv, what);
}

// dst[j][i] = src[i][j] for an rows x cols grid of chunkBytes-sized chunks.
void transposeChunks(const char *src, char *dst, size_t rows, size_t cols,
                     size_t chunkBytes) {
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j)
      std::memcpy(dst + (j * rows + i) * chunkBytes,
                  src + (i * cols + j) * chunkBytes, chunkBytes);
}

// Generic all-to-all on chunks in destination-major order, producing chunks
// in source-major order, in two stages (intra-node, then inter-node).
void hierarchicalAllToAll(CpuBackend &backend, int32_t rank, Group &group,
                          const char *send, char *recv, size_t chunkBytes) {
  NodeLayout layout = nodeLayout(group.ranks, backend.gpusPerNode());
  size_t nodes = layout.nodes, perNode = layout.perNode;
  size_t node = group.member / perNode, local = group.member % perNode;
  if (!group.intraNode) {
    std::vector<int32_t> intra(group.ranks.begin() + node * perNode,
                               group.ranks.begin() + (node + 1) * perNode);
    std::vector<int32_t> inter;
    for (size_t a = 0; a < nodes; ++a)
      inter.push_back(group.ranks[a * perNode + local]);
    group.intraNode = backend.makeGroup(intraNodeTag, std::move(intra),
                                        static_cast<int32_t>(local));
    group.interNode = backend.makeGroup(interNodeTag, std::move(inter),
                                        static_cast<int32_t>(node));
  }
  size_t total = nodes * perNode * chunkBytes;
  Scratch &scratch = backend.scratch(rank);
  char *byDestLocal = scratch.bytes(0, total);
  char *fromNodePeers = scratch.bytes(1, total);
  char *byDestNode = scratch.bytes(2, total);
  // Destinations (a', b') -> [b'][a'] so each node peer b' gets one block.
  transposeChunks(send, byDestLocal, nodes, perNode, chunkBytes);
  exchangeChunks(backend, rank, *group.intraNode, byDestLocal, fromNodePeers,
                 nodes * chunkBytes, "hierarchical all_to_all (intra-node)");
  // [source b][dest a'] -> [dest a'][source b] for the inter-node stage.
  transposeChunks(fromNodePeers, byDestNode, perNode, nodes, chunkBytes);
  exchangeChunks(backend, rank, *group.interNode, byDestNode, recv,
                 perNode * chunkBytes, "hierarchical all_to_all (inter-node)");
}

template <typename T, typename Combine>
void reduceInto(const std::vector<const void *> &inputs, int64_t count,
                T *result, Combine combine) {
  std::copy_n(static_cast<const T *>(inputs[0]), count, result);
  for (size_t p = 1; p < inputs.size(); ++p) {
    auto *in = static_cast<const T *>(inputs[p]);
    for (int64_t i = 0; i < count; ++i)
      result[i] = combine(result[i], in[i]);
  }
}

} // namespace

std::unique_ptr<GroupState> CpuBackend::createGroup(int32_t rank,
                                                    std::vector<int32_t> ranks,
                                                    int32_t member) {
  return makeGroup(userGroupTag, std::move(ranks), member);
}

void CpuBackend::barrier(int32_t rank, GroupState &group) {
  synchronize(rank, *static_cast<Group &>(group).rendezvous, "barrier");
}

void CpuBackend::allReduce(int32_t rank, GroupState &group,
                           moert_reduce_op_t op, Operand send, Operand recv,
                           int64_t count) {
  Group &g = static_cast<Group &>(group);
  Rendezvous &rv = *g.rendezvous;
  rv.published[g.member] = send.data;
  synchronize(rank, rv, "all_reduce");
  // Every member reduces in member order, so all get identical bits.
  std::vector<const void *> inputs(rv.published.begin(), rv.published.end());
  bool sum = op == MOERT_REDUCE_SUM;
  std::vector<char> result(count * dtypeSize(send.dtype));
  if (send.dtype == MOERT_I32 || send.dtype == MOERT_I64) {
    auto apply = [&](auto *typed) {
      using T = std::remove_pointer_t<decltype(typed)>;
      reduceInto<T>(inputs, count, typed,
                    [sum](T a, T b) { return sum ? a + b : std::max(a, b); });
    };
    if (send.dtype == MOERT_I32)
      apply(reinterpret_cast<int32_t *>(result.data()));
    else
      apply(reinterpret_cast<int64_t *>(result.data()));
  } else {
    std::vector<float> acc(count), widened(count);
    convertToFloat(inputs[0], send.dtype, acc.data(), count);
    for (size_t p = 1; p < inputs.size(); ++p) {
      convertToFloat(inputs[p], send.dtype, widened.data(), count);
      for (int64_t i = 0; i < count; ++i)
        acc[i] = sum ? acc[i] + widened[i] : std::max(acc[i], widened[i]);
    }
    convertFromFloat(acc.data(), result.data(), send.dtype, count);
  }
  synchronize(rank, rv, "all_reduce");
  std::memcpy(recv.data, result.data(), result.size());
}

void CpuBackend::allGather(int32_t rank, GroupState &group, Operand send,
                           Operand recv, int64_t count) {
  Group &g = static_cast<Group &>(group);
  size_t bytes = count * dtypeSize(send.dtype);
  Rendezvous &rv = *g.rendezvous;
  rv.published[g.member] = send.data;
  synchronize(rank, rv, "all_gather");
  for (size_t p = 0; p < g.ranks.size(); ++p)
    std::memcpy(recv.as<char>() + p * bytes, rv.published[p], bytes);
  synchronize(rank, rv, "all_gather");
}

void CpuBackend::reduceScatter(int32_t rank, GroupState &group, Operand send,
                               Operand recv, int64_t count) {
  Group &g = static_cast<Group &>(group);
  size_t members = g.ranks.size();
  size_t elementBytes = dtypeSize(send.dtype);
  Rendezvous &rv = *g.rendezvous;
  rv.published[g.member] = send.data;
  synchronize(rank, rv, "reduce_scatter");
  // Sum my block of every member's send, in member order.
  size_t offset = g.member * count * elementBytes;
  std::vector<char> result(count * elementBytes);
  if (send.dtype == MOERT_I32 || send.dtype == MOERT_I64) {
    auto apply = [&](auto *typed) {
      using T = std::remove_pointer_t<decltype(typed)>;
      for (int64_t i = 0; i < count; ++i)
        typed[i] = 0;
      for (size_t p = 0; p < members; ++p) {
        auto *peer = reinterpret_cast<const T *>(
            static_cast<const char *>(rv.published[p]) + offset);
        for (int64_t i = 0; i < count; ++i)
          typed[i] += peer[i];
      }
    };
    if (send.dtype == MOERT_I32)
      apply(reinterpret_cast<int32_t *>(result.data()));
    else
      apply(reinterpret_cast<int64_t *>(result.data()));
  } else {
    std::vector<float> acc(count, 0.0f), widened(count);
    for (size_t p = 0; p < members; ++p) {
      convertToFloat(static_cast<const char *>(rv.published[p]) + offset,
                     send.dtype, widened.data(), count);
      for (int64_t i = 0; i < count; ++i)
        acc[i] += widened[i];
    }
    convertFromFloat(acc.data(), result.data(), send.dtype, count);
  }
  synchronize(rank, rv, "reduce_scatter");
  std::memcpy(recv.data, result.data(), result.size());
}

int64_t CpuBackend::allReduceI64(int32_t rank, GroupState &group,
                                 moert_reduce_op_t op, int64_t value) {
  Group &g = static_cast<Group &>(group);
  Rendezvous &rv = *g.rendezvous;
  rv.published[g.member] = &value;
  synchronize(rank, rv, "all_reduce_i64");
  int64_t result = *static_cast<const int64_t *>(rv.published[0]);
  for (size_t p = 1; p < rv.published.size(); ++p) {
    int64_t v = *static_cast<const int64_t *>(rv.published[p]);
    result = op == MOERT_REDUCE_SUM ? result + v : std::max(result, v);
  }
  synchronize(rank, rv, "all_reduce_i64");
  return result;
}

void CpuBackend::allToAll(int32_t rank, GroupState &group,
                          moert_a2a_direction_t direction,
                          moert_a2a_algorithm_t algorithm, Operand send,
                          Operand recv, int64_t expertsLocal, int64_t capacity,
                          int64_t hidden, int64_t slices) {
  Group &g = static_cast<Group &>(group);
  size_t members = g.ranks.size();
  bool toExperts = direction == MOERT_A2A_TO_EXPERTS;
  bool sliced = slices > 1;
  size_t shards = members / slices;
  int64_t rowsCount = capacity * hidden;
  const char *in = send.as<const char>();
  char *out = recv.as<char>();
  size_t rowsBytes = rowsCount * dtypeSize(send.dtype);
  if (rowsBytes == 0) {
    synchronize(rank, *g.rendezvous, "all_to_all");
    return;
  }
  size_t peerChunk = expertsLocal * rowsBytes; // one shard's rows
  size_t myShard = g.member / slices;
  // out expert (q, e) = the fp32 sum of the slice holders' partial rows,
  // in member order; rowsOf(p) points at holder p's rows for (q, e).
  auto sumSlices = [&](size_t q, int64_t e, auto rowsOf) {
    std::vector<float> acc(rowsCount, 0.0f), widened(rowsCount);
    for (int64_t j = 0; j < slices; ++j) {
      convertToFloat(rowsOf(q * slices + j), send.dtype, widened.data(),
                     rowsCount);
      for (int64_t i = 0; i < rowsCount; ++i)
        acc[i] += widened[i];
    }
    convertFromFloat(acc.data(), out + (q * expertsLocal + e) * rowsBytes,
                     send.dtype, rowsCount);
  };
  if (algorithm == MOERT_A2A_FLAT) {
    Rendezvous &rv = *g.rendezvous;
    rv.published[g.member] = in;
    synchronize(rank, rv, "all_to_all");
    // Copy straight into the final layout: [E_local][p][C][H] on the
    // expert side, [q][E_local][C][H] = [E][C][H] on the token side.
    auto peer = [&](size_t p) {
      return static_cast<const char *>(rv.published[p]);
    };
    if (toExperts) {
      for (size_t p = 0; p < members; ++p)
        for (int64_t e = 0; e < expertsLocal; ++e)
          std::memcpy(out + (e * members + p) * rowsBytes,
                      peer(p) + myShard * peerChunk + e * rowsBytes, rowsBytes);
    } else if (!sliced) {
      for (size_t p = 0; p < members; ++p)
        for (int64_t e = 0; e < expertsLocal; ++e)
          std::memcpy(out + p * peerChunk + e * rowsBytes,
                      peer(p) + (e * members + g.member) * rowsBytes,
                      rowsBytes);
    } else {
      for (size_t q = 0; q < shards; ++q)
        for (int64_t e = 0; e < expertsLocal; ++e)
          sumSlices(q, e, [&](size_t p) {
            return peer(p) + (e * members + g.member) * rowsBytes;
          });
    }
    synchronize(rank, rv, "all_to_all");
    return;
  }
  // Hierarchical: a destination-major chunk all-to-all plus the same
  // expert-major layout transforms as flat; slicing replicates each
  // shard's chunk for its holders first, or sums the holders' after.
  size_t total = members * peerChunk;
  std::vector<char> staged(total);
  if (toExperts) {
    const char *chunks = in;
    std::vector<char> replicated;
    if (sliced) {
      replicated.resize(total);
      for (size_t q = 0; q < members; ++q)
        std::memcpy(replicated.data() + q * peerChunk,
                    in + q / slices * peerChunk, peerChunk);
      chunks = replicated.data();
    }
    hierarchicalAllToAll(*this, rank, g, chunks, staged.data(), peerChunk);
    // [p][E_local][rows] -> [E_local][p][rows]
    transposeChunks(staged.data(), out, members, expertsLocal, rowsBytes);
    return;
  }
  // [E_local][q][rows] -> [q][E_local][rows], destination-major.
  transposeChunks(in, staged.data(), expertsLocal, members, rowsBytes);
  if (!sliced) {
    hierarchicalAllToAll(*this, rank, g, staged.data(), out, peerChunk);
    return;
  }
  std::vector<char> fromAll(total); // [source p][E_local][rows]
  hierarchicalAllToAll(*this, rank, g, staged.data(), fromAll.data(),
                       peerChunk);
  for (size_t q = 0; q < shards; ++q)
    for (int64_t e = 0; e < expertsLocal; ++e)
      sumSlices(q, e, [&](size_t p) {
        return fromAll.data() + p * peerChunk + e * rowsBytes;
      });
}
