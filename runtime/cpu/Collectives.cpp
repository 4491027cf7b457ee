//===- runtime/cpu/Collectives.cpp - Shared-memory collectives ------------===//
//
// Every collective is: publish a pointer, barrier, read the peers' published
// data, barrier (so nobody reuses a buffer a peer still reads).
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/Backend.h"

#include "runtime/common/NodeLayout.h"

#include <algorithm>
#include <cstring>
#include <set>

using namespace moert;
using namespace moert::cpu;

namespace {

enum RendezvousTag { userGroupTag = 0, intraNodeTag = 1, interNodeTag = 2 };

moert_group_s &checkGroup(moert_context_t ctx, moert_group_t group) {
  checkContext(ctx);
  require(group != nullptr, "null group");
  require(group->world == ctx->world &&
              group->ranks[group->member] == ctx->rank,
          "group was not created by rank ", ctx->rank);
  return *group;
}

std::unique_ptr<moert_group_s> makeGroup(moert_world_s *world, int tag,
                                         std::vector<int32_t> ranks,
                                         int32_t myRank) {
  auto group = std::make_unique<moert_group_s>();
  group->world = world;
  group->member = static_cast<int32_t>(
      std::find(ranks.begin(), ranks.end(), myRank) - ranks.begin());
  group->rendezvous = world->getRendezvous(tag, ranks);
  group->ranks = std::move(ranks);
  return group;
}

// send holds one chunk per destination member; recv chunk p is the chunk
// member p addressed to us.
void exchangeChunks(moert_context_t ctx, moert_group_s &group, const char *send,
                    char *recv, size_t chunkBytes, const char *what) {
  Rendezvous &rv = *group.rendezvous;
  size_t members = group.ranks.size();
  rv.published[group.member] = send;
  barrier(ctx, rv, what);
  for (size_t p = 0; p < members; ++p)
    std::memcpy(recv + p * chunkBytes,
                static_cast<const char *>(rv.published[p]) +
                    group.member * chunkBytes,
                chunkBytes);
  barrier(ctx, rv, what);
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
void hierarchicalAllToAll(moert_context_t ctx, moert_group_s &group,
                          const char *send, char *recv, size_t chunkBytes) {
  NodeLayout layout = nodeLayout(group.ranks, group.world->desc.gpus_per_node);
  size_t nodes = layout.nodes, perNode = layout.perNode;
  size_t node = group.member / perNode, local = group.member % perNode;
  if (!group.intraNode) {
    std::vector<int32_t> intra(group.ranks.begin() + node * perNode,
                               group.ranks.begin() + (node + 1) * perNode);
    std::vector<int32_t> inter;
    for (size_t a = 0; a < nodes; ++a)
      inter.push_back(group.ranks[a * perNode + local]);
    group.intraNode =
        makeGroup(group.world, intraNodeTag, std::move(intra), ctx->rank);
    group.interNode =
        makeGroup(group.world, interNodeTag, std::move(inter), ctx->rank);
  }
  size_t total = nodes * perNode * chunkBytes;
  char *byDestLocal = ctx->scratchBytes(0, total);
  char *fromNodePeers = ctx->scratchBytes(1, total);
  char *byDestNode = ctx->scratchBytes(2, total);
  // Destinations (a', b') -> [b'][a'] so each node peer b' gets one block.
  transposeChunks(send, byDestLocal, nodes, perNode, chunkBytes);
  exchangeChunks(ctx, *group.intraNode, byDestLocal, fromNodePeers,
                 nodes * chunkBytes, "hierarchical all_to_all (intra-node)");
  // [source b][dest a'] -> [dest a'][source b] for the inter-node stage.
  transposeChunks(fromNodePeers, byDestNode, perNode, nodes, chunkBytes);
  exchangeChunks(ctx, *group.interNode, byDestNode, recv, perNode * chunkBytes,
                 "hierarchical all_to_all (inter-node)");
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

extern "C" {

moert_status_t moert_group_create(moert_context_t ctx, const int32_t *ranks,
                                  int32_t count, moert_group_t *outGroup) {
  return guard("moert_group_create", [&] {
    checkContext(ctx);
    require(outGroup != nullptr && ranks != nullptr, "null argument");
    *outGroup = nullptr;
    require(count >= 1, "group needs at least one rank, got ", count);
    std::vector<int32_t> list(ranks, ranks + count);
    std::set<int32_t> unique(list.begin(), list.end());
    require(unique.size() == list.size(), "group lists a rank twice");
    for (int32_t r : list)
      require(r >= 0 && r < ctx->world->size, "rank ", r,
              " is outside the world of ", ctx->world->size);
    require(unique.count(ctx->rank), "rank ", ctx->rank,
            " is not in the group it creates");
    MOERT_ROUTE_DEVICE(ctx, groupCreate(ctx, list, outGroup));
    *outGroup = makeGroup(ctx->world, userGroupTag, std::move(list), ctx->rank)
                    .release();
  });
}

void moert_group_destroy(moert_group_t group) { delete group; }

moert_status_t moert_context_keep_group(moert_context_t ctx, int32_t slot,
                                        moert_group_t group) {
  return guard("moert_context_keep_group", [&] {
    checkContext(ctx);
    require(group != nullptr, "null group");
    require(slot >= 0 && slot < 4096, "slot ", slot, " is outside [0, 4096)");
    if (ctx->keptGroups.size() <= size_t(slot))
      ctx->keptGroups.resize(size_t(slot) + 1);
    ctx->keptGroups[size_t(slot)].reset(group);
  });
}

moert_status_t moert_context_group(moert_context_t ctx, int32_t slot,
                                   moert_group_t *outGroup) {
  return guard("moert_context_group", [&] {
    checkContext(ctx);
    require(outGroup != nullptr, "null argument");
    *outGroup = nullptr;
    require(slot >= 0 && size_t(slot) < ctx->keptGroups.size() &&
                ctx->keptGroups[size_t(slot)],
            "no group is kept in slot ", slot, " of rank ", ctx->rank,
            "'s context (moe_model_init keeps the "
            "model's groups: run it on this context first)");
    *outGroup = ctx->keptGroups[size_t(slot)].get();
  });
}

int32_t moert_group_size(moert_group_t group) {
  return group ? static_cast<int32_t>(group->ranks.size()) : 0;
}

int32_t moert_group_member(moert_group_t group) {
  return group ? group->member : -1;
}

moert_status_t moert_barrier(moert_context_t ctx, moert_group_t group) {
  return guard("moert_barrier", [&] {
    moert_group_s &g = checkGroup(ctx, group);
    MOERT_ROUTE_DEVICE(ctx, barrier(ctx, group));
    barrier(ctx, *g.rendezvous, "barrier");
  });
}

moert_status_t moert_all_reduce(moert_context_t ctx, moert_group_t group,
                                moert_reduce_op_t op, moert_view_t send,
                                moert_view_t recv, int64_t count) {
  return guard("moert_all_reduce", [&] {
    moert_group_s &g = checkGroup(ctx, group);
    require(op == MOERT_REDUCE_SUM || op == MOERT_REDUCE_MAX,
            "unknown reduce op ", static_cast<int>(op));
    require(send.dtype == recv.dtype, "send and recv dtypes differ");
    const char *in = viewData(send, count, "send");
    char *out = viewData(recv, count, "recv");
    MOERT_ROUTE_DEVICE(ctx, allReduce(ctx, group, op, send, recv, count));
    Rendezvous &rv = *g.rendezvous;
    rv.published[g.member] = in;
    barrier(ctx, rv, "all_reduce");
    // Every member reduces in member order, so all get identical bits.
    std::vector<const void *> inputs(rv.published.begin(), rv.published.end());
    bool sum = op == MOERT_REDUCE_SUM;
    std::vector<char> result(count * moert_dtype_size(send.dtype));
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
    barrier(ctx, rv, "all_reduce");
    std::memcpy(out, result.data(), result.size());
  });
}

moert_status_t moert_all_gather(moert_context_t ctx, moert_group_t group,
                                moert_view_t send, moert_view_t recv,
                                int64_t count) {
  return guard("moert_all_gather", [&] {
    moert_group_s &g = checkGroup(ctx, group);
    require(count >= 0, "negative count ", count);
    require(send.dtype == recv.dtype, "send and recv dtypes differ");
    size_t members = g.ranks.size();
    size_t bytes = count * moert_dtype_size(send.dtype);
    const char *in = viewData(send, count, "send");
    char *out = viewData(recv, count * members, "recv");
    require(in + bytes <= out || out + bytes * members <= in,
            "send and recv overlap");
    MOERT_ROUTE_DEVICE(ctx, allGather(ctx, group, send, recv, count));
    Rendezvous &rv = *g.rendezvous;
    rv.published[g.member] = in;
    barrier(ctx, rv, "all_gather");
    for (size_t p = 0; p < members; ++p)
      std::memcpy(out + p * bytes, rv.published[p], bytes);
    barrier(ctx, rv, "all_gather");
  });
}

moert_status_t moert_reduce_scatter(moert_context_t ctx, moert_group_t group,
                                    moert_view_t send, moert_view_t recv,
                                    int64_t count) {
  return guard("moert_reduce_scatter", [&] {
    moert_group_s &g = checkGroup(ctx, group);
    require(count >= 0, "negative count ", count);
    require(send.dtype == recv.dtype, "send and recv dtypes differ");
    size_t members = g.ranks.size();
    size_t elementBytes = moert_dtype_size(send.dtype);
    const char *in = viewData(send, count * members, "send");
    char *out = viewData(recv, count, "recv");
    require(in + count * members * elementBytes <= out ||
                out + count * elementBytes <= in,
            "send and recv overlap");
    MOERT_ROUTE_DEVICE(ctx, reduceScatter(ctx, group, send, recv, count));
    Rendezvous &rv = *g.rendezvous;
    rv.published[g.member] = in;
    barrier(ctx, rv, "reduce_scatter");
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
    barrier(ctx, rv, "reduce_scatter");
    std::memcpy(out, result.data(), result.size());
  });
}

moert_status_t moert_all_reduce_i64(moert_context_t ctx, moert_group_t group,
                                    moert_reduce_op_t op, int64_t *value) {
  return guard("moert_all_reduce_i64", [&] {
    moert_group_s &g = checkGroup(ctx, group);
    require(value != nullptr, "null value");
    require(op == MOERT_REDUCE_SUM || op == MOERT_REDUCE_MAX,
            "unknown reduce op ", static_cast<int>(op));
    MOERT_ROUTE_DEVICE(ctx, allReduceI64(ctx, group, op, value));
    Rendezvous &rv = *g.rendezvous;
    rv.published[g.member] = value;
    barrier(ctx, rv, "all_reduce_i64");
    int64_t result = *static_cast<const int64_t *>(rv.published[0]);
    for (size_t p = 1; p < rv.published.size(); ++p) {
      int64_t v = *static_cast<const int64_t *>(rv.published[p]);
      result = op == MOERT_REDUCE_SUM ? result + v : std::max(result, v);
    }
    barrier(ctx, rv, "all_reduce_i64");
    *value = result;
  });
}

moert_status_t moert_all_to_all(moert_context_t ctx, moert_group_t group,
                                moert_a2a_direction_t direction,
                                moert_a2a_algorithm_t algorithm,
                                moert_view_t send, moert_view_t recv,
                                int64_t expertsLocal, int64_t capacity,
                                int64_t hidden) {
  return moert_all_to_all_sliced(ctx, group, direction, algorithm, send, recv,
                                 expertsLocal, capacity, hidden, 1);
}

moert_status_t moert_all_to_all_sliced(moert_context_t ctx, moert_group_t group,
                                       moert_a2a_direction_t direction,
                                       moert_a2a_algorithm_t algorithm,
                                       moert_view_t send, moert_view_t recv,
                                       int64_t expertsLocal, int64_t capacity,
                                       int64_t hidden, int64_t slices) {
  return guard("moert_all_to_all", [&] {
    moert_group_s &g = checkGroup(ctx, group);
    require(direction == MOERT_A2A_TO_EXPERTS ||
                direction == MOERT_A2A_FROM_EXPERTS,
            "unknown direction ", static_cast<int>(direction));
    require(algorithm == MOERT_A2A_FLAT || algorithm == MOERT_A2A_HIERARCHICAL,
            "unknown algorithm ", static_cast<int>(algorithm));
    require(expertsLocal >= 1 && capacity >= 0 && hidden >= 1,
            "bad extents: experts_local ", expertsLocal, ", capacity ",
            capacity, ", hidden ", hidden);
    require(send.dtype == recv.dtype, "send and recv dtypes differ");
    size_t members = g.ranks.size();
    require(slices >= 1 && members % slices == 0, "slices ", slices,
            " must be positive and divide the group size ", members);
    bool toExperts = direction == MOERT_A2A_TO_EXPERTS;
    bool sliced = slices > 1;
    bool floating = send.dtype == MOERT_F32 || send.dtype == MOERT_F16 ||
                    send.dtype == MOERT_BF16;
    require(!sliced || toExperts || floating,
            "a sliced from_experts exchange sums partial outputs: it needs "
            "a float dtype");
    size_t shards = members / slices;
    int64_t rowsCount = capacity * hidden;
    // [E_local, G * C, H] on the expert side, [EP * E_local, C, H] on the
    // token side.
    int64_t expertSide = members * expertsLocal * rowsCount;
    int64_t tokenSide = shards * expertsLocal * rowsCount;
    int64_t sendCount = toExperts ? tokenSide : expertSide;
    int64_t recvCount = toExperts ? expertSide : tokenSide;
    const char *in = viewData(send, sendCount, "send");
    char *out = viewData(recv, recvCount, "recv");
    size_t elementBytes = moert_dtype_size(send.dtype);
    size_t rowsBytes = rowsCount * elementBytes;
    require(in + sendCount * elementBytes <= out ||
                out + recvCount * elementBytes <= in,
            "send and recv overlap");
    MOERT_ROUTE_DEVICE(ctx,
                       allToAll(ctx, group, direction, algorithm, send, recv,
                                expertsLocal, capacity, hidden, slices));
    if (rowsBytes == 0) {
      barrier(ctx, *g.rendezvous, "all_to_all");
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
      barrier(ctx, rv, "all_to_all");
      // Copy straight into the final layout: [E_local][p][C][H] on the
      // expert side, [q][E_local][C][H] = [E][C][H] on the token side.
      auto peer = [&](size_t p) {
        return static_cast<const char *>(rv.published[p]);
      };
      if (toExperts) {
        for (size_t p = 0; p < members; ++p)
          for (int64_t e = 0; e < expertsLocal; ++e)
            std::memcpy(out + (e * members + p) * rowsBytes,
                        peer(p) + myShard * peerChunk + e * rowsBytes,
                        rowsBytes);
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
      barrier(ctx, rv, "all_to_all");
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
      hierarchicalAllToAll(ctx, g, chunks, staged.data(), peerChunk);
      // [p][E_local][rows] -> [E_local][p][rows]
      transposeChunks(staged.data(), out, members, expertsLocal, rowsBytes);
      return;
    }
    // [E_local][q][rows] -> [q][E_local][rows], destination-major.
    transposeChunks(in, staged.data(), expertsLocal, members, rowsBytes);
    if (!sliced) {
      hierarchicalAllToAll(ctx, g, staged.data(), out, peerChunk);
      return;
    }
    std::vector<char> fromAll(total); // [source p][E_local][rows]
    hierarchicalAllToAll(ctx, g, staged.data(), fromAll.data(), peerChunk);
    for (size_t q = 0; q < shards; ++q)
      for (int64_t e = 0; e < expertsLocal; ++e)
        sumSlices(q, e, [&](size_t p) {
          return fromAll.data() + p * peerChunk + e * rowsBytes;
        });
  });
}

} // extern "C"
