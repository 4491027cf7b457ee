//===- runtime/api/Collectives.cpp - Rank groups and collectives ----------===//

#include "runtime/api/Error.h"
#include "runtime/api/Validate.h"

#include <algorithm>
#include <set>

using namespace moert;
using namespace moert::api;

namespace {

void requireReduceOp(moert_reduce_op_t op) {
  require(op == MOERT_REDUCE_SUM || op == MOERT_REDUCE_MAX,
          "unknown reduce op ", static_cast<int>(op));
}

void requireSameDtype(moert_view_t send, moert_view_t recv) {
  require(send.dtype == recv.dtype, "send and recv dtypes differ");
}

// The send and recv buffers of an exchange: `sendCount` and `recvCount`
// elements of one dtype that do not overlap.
struct Exchange {
  Operand send, recv;
};

Exchange exchangeOperands(moert_view_t send, int64_t sendCount,
                          moert_view_t recv, int64_t recvCount) {
  Exchange x{operand(send, sendCount, "send"),
             operand(recv, recvCount, "recv")};
  const char *in = x.send.as<const char>();
  const char *out = x.recv.as<const char>();
  size_t elementBytes = dtypeSize(send.dtype);
  require(in + sendCount * elementBytes <= out ||
              out + recvCount * elementBytes <= in,
          "send and recv overlap");
  return x;
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
    auto member = static_cast<int32_t>(
        std::find(list.begin(), list.end(), ctx->rank) - list.begin());
    auto group = std::make_unique<moert_group_s>();
    group->world = ctx->world;
    group->state =
        ctx->backend().createGroup(ctx->rank, std::move(list), member);
    *outGroup = group.release();
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
  return group ? group->state->size() : 0;
}

int32_t moert_group_member(moert_group_t group) {
  return group ? group->state->member : -1;
}

moert_status_t moert_barrier(moert_context_t ctx, moert_group_t group) {
  return guard("moert_barrier", [&] {
    GroupState &g = checkGroup(ctx, group);
    ctx->backend().barrier(ctx->rank, g);
  });
}

moert_status_t moert_all_reduce(moert_context_t ctx, moert_group_t group,
                                moert_reduce_op_t op, moert_view_t send,
                                moert_view_t recv, int64_t count) {
  return guard("moert_all_reduce", [&] {
    GroupState &g = checkGroup(ctx, group);
    requireReduceOp(op);
    requireSameDtype(send, recv);
    Operand in = operand(send, count, "send");
    Operand out = operand(recv, count, "recv");
    ctx->backend().allReduce(ctx->rank, g, op, in, out, count);
  });
}

moert_status_t moert_all_gather(moert_context_t ctx, moert_group_t group,
                                moert_view_t send, moert_view_t recv,
                                int64_t count) {
  return guard("moert_all_gather", [&] {
    GroupState &g = checkGroup(ctx, group);
    require(count >= 0, "negative count ", count);
    requireSameDtype(send, recv);
    Exchange x = exchangeOperands(send, count, recv, count * g.size());
    ctx->backend().allGather(ctx->rank, g, x.send, x.recv, count);
  });
}

moert_status_t moert_reduce_scatter(moert_context_t ctx, moert_group_t group,
                                    moert_view_t send, moert_view_t recv,
                                    int64_t count) {
  return guard("moert_reduce_scatter", [&] {
    GroupState &g = checkGroup(ctx, group);
    require(count >= 0, "negative count ", count);
    requireSameDtype(send, recv);
    Exchange x = exchangeOperands(send, count * g.size(), recv, count);
    ctx->backend().reduceScatter(ctx->rank, g, x.send, x.recv, count);
  });
}

moert_status_t moert_token_share(moert_context_t ctx, moert_group_t group,
                                 moert_view_t x, moert_view_t share,
                                 int64_t hidden, int64_t *tokens) {
  return guard("moert_token_share", [&] {
    GroupState &g = checkGroup(ctx, group);
    require(tokens != nullptr, "null tokens");
    require(*tokens >= 0, "negative tokens ", *tokens);
    require(hidden > 0, "hidden ", hidden, " is not positive");
    requireSameDtype(x, share);
    int64_t rows = *tokens;
    int64_t perMember = (rows + g.size() - 1) / g.size();
    int64_t first = std::min(rows, g.member * perMember);
    int64_t count = std::min(perMember, rows - first);
    Exchange io = exchangeOperands(x, rows * hidden, share, count * hidden);
    ctx->backend().copy(ctx->rank, io.send.at(first * hidden), io.recv,
                        count * hidden);
    *tokens = count;
  });
}

moert_status_t moert_all_reduce_i64(moert_context_t ctx, moert_group_t group,
                                    moert_reduce_op_t op, int64_t *value) {
  return guard("moert_all_reduce_i64", [&] {
    GroupState &g = checkGroup(ctx, group);
    require(value != nullptr, "null value");
    requireReduceOp(op);
    *value = ctx->backend().allReduceI64(ctx->rank, g, op, *value);
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
    GroupState &g = checkGroup(ctx, group);
    require(direction == MOERT_A2A_TO_EXPERTS ||
                direction == MOERT_A2A_FROM_EXPERTS,
            "unknown direction ", static_cast<int>(direction));
    require(algorithm == MOERT_A2A_FLAT || algorithm == MOERT_A2A_HIERARCHICAL,
            "unknown algorithm ", static_cast<int>(algorithm));
    require(expertsLocal >= 1 && capacity >= 0 && hidden >= 1,
            "bad extents: experts_local ", expertsLocal, ", capacity ",
            capacity, ", hidden ", hidden);
    requireSameDtype(send, recv);
    int64_t members = g.size();
    require(slices >= 1 && members % slices == 0, "slices ", slices,
            " must be positive and divide the group size ", members);
    bool toExperts = direction == MOERT_A2A_TO_EXPERTS;
    require(slices == 1 || toExperts || isFloatType(send.dtype),
            "a sliced from_experts exchange sums partial outputs: it needs "
            "a float dtype");
    // [E_local, G * C, H] on the expert side, [EP * E_local, C, H] on the
    // token side.
    int64_t rows = capacity * hidden;
    int64_t expertSide = members * expertsLocal * rows;
    int64_t tokenSide = members / slices * expertsLocal * rows;
    int64_t sendCount = toExperts ? tokenSide : expertSide;
    int64_t recvCount = toExperts ? expertSide : tokenSide;
    Exchange x = exchangeOperands(send, sendCount, recv, recvCount);
    ctx->backend().allToAll(ctx->rank, g, direction, algorithm, x.send, x.recv,
                            expertsLocal, capacity, hidden, slices);
  });
}

} // extern "C"
