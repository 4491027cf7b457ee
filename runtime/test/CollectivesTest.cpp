//===- runtime/test/CollectivesTest.cpp - Rank threads and collectives ----===//

#include "TestUtil.h"

#include <chrono>
#include <cstring>
#include <numeric>
#include <thread>

using namespace moert;
using namespace moert::test;

namespace {

std::vector<int32_t> allRanks(moert_context_t ctx) {
  std::vector<int32_t> ranks(moert_context_world_size(ctx));
  std::iota(ranks.begin(), ranks.end(), 0);
  return ranks;
}

// Value of element (expert e, slot c, hidden h) that rank `src` sends.
float tokenValue(int32_t src, int64_t e, int64_t c, int64_t h) {
  return static_cast<float>(src * 10000 + e * 100 + c * 10 + h);
}

struct A2aCase {
  int32_t nodes, gpusPerNode;
  friend std::ostream &operator<<(std::ostream &os, const A2aCase &c) {
    return os << c.nodes << "x" << c.gpusPerNode;
  }
};

class AllToAll : public ::testing::TestWithParam<A2aCase> {};

TEST_P(AllToAll, MatchesHandLayoutFlatEqualsHierarchicalAndInverts) {
  A2aCase param = GetParam();
  World world(param.nodes, param.gpusPerNode, 20000);
  const int64_t expertsLocal = 2, capacity = 3, hidden = 4;
  world.run([&](moert_context_t ctx) {
    Group group(ctx, allRanks(ctx));
    int32_t members = group.size(), me = group.member();
    int64_t experts = members * expertsLocal;
    int64_t count = experts * capacity * hidden;
    std::vector<float> tokens(count);
    for (int64_t e = 0; e < experts; ++e)
      for (int64_t c = 0; c < capacity; ++c)
        for (int64_t h = 0; h < hidden; ++h)
          tokens[(e * capacity + c) * hidden + h] = tokenValue(me, e, c, h);
    Buffer send(ctx, tokens, MOERT_F32);
    Buffer flat(ctx, count * 4), hier(ctx, count * 4);
    Buffer backFlat(ctx, count * 4), backHier(ctx, count * 4);
    for (auto *b : {&flat, &hier, &backFlat, &backHier})
      check(moert_buffer_fill(ctx, b->view(MOERT_F32), count, NAN));
    check(moert_all_to_all(ctx, group.get(), MOERT_A2A_TO_EXPERTS,
                           MOERT_A2A_FLAT, send.view(MOERT_F32),
                           flat.view(MOERT_F32), expertsLocal, capacity,
                           hidden));
    check(moert_all_to_all(ctx, group.get(), MOERT_A2A_TO_EXPERTS,
                           MOERT_A2A_HIERARCHICAL, send.view(MOERT_F32),
                           hier.view(MOERT_F32), expertsLocal, capacity,
                           hidden));
    // Expected: [E_local, G*C, H], member p's rows at p*C, experts of mine.
    std::vector<float> got = flat.download<float>(MOERT_F32, count);
    for (int64_t e = 0; e < expertsLocal; ++e)
      for (int32_t p = 0; p < members; ++p)
        for (int64_t c = 0; c < capacity; ++c)
          for (int64_t h = 0; h < hidden; ++h)
            ASSERT_EQ(got[((e * members + p) * capacity + c) * hidden + h],
                      tokenValue(p, me * expertsLocal + e, c, h))
                << "rank " << me << " e " << e << " from " << p;
    std::vector<float> gotHier = hier.download<float>(MOERT_F32, count);
    EXPECT_EQ(std::memcmp(got.data(), gotHier.data(), count * 4), 0);

    check(moert_all_to_all(ctx, group.get(), MOERT_A2A_FROM_EXPERTS,
                           MOERT_A2A_FLAT, flat.view(MOERT_F32),
                           backFlat.view(MOERT_F32), expertsLocal, capacity,
                           hidden));
    check(moert_all_to_all(ctx, group.get(), MOERT_A2A_FROM_EXPERTS,
                           MOERT_A2A_HIERARCHICAL, hier.view(MOERT_F32),
                           backHier.view(MOERT_F32), expertsLocal, capacity,
                           hidden));
    EXPECT_EQ(backFlat.download<float>(MOERT_F32, count), tokens);
    EXPECT_EQ(backHier.download<float>(MOERT_F32, count), tokens);
  });
}

INSTANTIATE_TEST_SUITE_P(Meshes, AllToAll,
                         ::testing::Values(A2aCase{2, 2}, A2aCase{2, 4},
                                           A2aCase{4, 2}, A2aCase{1, 4}),
                         [](const auto &info) {
                           return std::to_string(info.param.nodes) + "x" +
                                  std::to_string(info.param.gpusPerNode);
                         });

class SlicedAllToAll : public ::testing::TestWithParam<A2aCase> {};

// Expert slicing over 2 consecutive members: G ranks hold G / 2 expert
// shards of 2 experts each.
TEST_P(SlicedAllToAll, ReplicatesToHoldersAndSumsTheirPartials) {
  A2aCase param = GetParam();
  World world(param.nodes, param.gpusPerNode, 20000);
  const int64_t slices = 2, expertsLocal = 2, capacity = 3, hidden = 4;
  world.run([&](moert_context_t ctx) {
    Group group(ctx, allRanks(ctx));
    int32_t members = group.size(), me = group.member();
    int64_t shards = members / slices, experts = shards * expertsLocal;
    int64_t tokenCount = experts * capacity * hidden;
    int64_t expertCount = members * expertsLocal * capacity * hidden;
    std::vector<float> tokens(tokenCount);
    for (int64_t e = 0; e < experts; ++e)
      for (int64_t c = 0; c < capacity; ++c)
        for (int64_t h = 0; h < hidden; ++h)
          tokens[(e * capacity + c) * hidden + h] = tokenValue(me, e, c, h);
    // Partial output of holder `src` for its local expert e, block p.
    auto partial = [](int32_t src, int64_t e, int32_t p, int64_t c, int64_t h) {
      return static_cast<float>(src * 1000 + e * 100 + p * 10 + c + h * 0.5);
    };
    std::vector<float> partials(expertCount);
    for (int64_t e = 0; e < expertsLocal; ++e)
      for (int32_t p = 0; p < members; ++p)
        for (int64_t c = 0; c < capacity; ++c)
          for (int64_t h = 0; h < hidden; ++h)
            partials[((e * members + p) * capacity + c) * hidden + h] =
                partial(me, e, p, c, h);
    Buffer send(ctx, tokens, MOERT_F32), psend(ctx, partials, MOERT_F32);
    for (moert_a2a_algorithm_t algorithm :
         {MOERT_A2A_FLAT, MOERT_A2A_HIERARCHICAL}) {
      Buffer recv(ctx, expertCount * 4), back(ctx, tokenCount * 4);
      check(moert_buffer_fill(ctx, recv.view(MOERT_F32), expertCount, NAN));
      check(moert_buffer_fill(ctx, back.view(MOERT_F32), tokenCount, NAN));
      check(moert_all_to_all_sliced(ctx, group.get(), MOERT_A2A_TO_EXPERTS,
                                    algorithm, send.view(MOERT_F32),
                                    recv.view(MOERT_F32), expertsLocal,
                                    capacity, hidden, slices));
      // Both holders of shard me / 2 get every member's rows of its experts.
      std::vector<float> got = recv.download<float>(MOERT_F32, expertCount);
      for (int64_t e = 0; e < expertsLocal; ++e)
        for (int32_t p = 0; p < members; ++p)
          for (int64_t c = 0; c < capacity; ++c)
            for (int64_t h = 0; h < hidden; ++h)
              ASSERT_EQ(got[((e * members + p) * capacity + c) * hidden + h],
                        tokenValue(p, me / slices * expertsLocal + e, c, h))
                  << "rank " << me << " e " << e << " from " << p;
      check(moert_all_to_all_sliced(ctx, group.get(), MOERT_A2A_FROM_EXPERTS,
                                    algorithm, psend.view(MOERT_F32),
                                    back.view(MOERT_F32), expertsLocal,
                                    capacity, hidden, slices));
      // Expert (q, e) = holder 2q's block me + holder 2q+1's block me.
      std::vector<float> sums = back.download<float>(MOERT_F32, tokenCount);
      for (int64_t q = 0; q < shards; ++q)
        for (int64_t e = 0; e < expertsLocal; ++e)
          for (int64_t c = 0; c < capacity; ++c)
            for (int64_t h = 0; h < hidden; ++h)
              ASSERT_EQ(
                  sums[((q * expertsLocal + e) * capacity + c) * hidden + h],
                  partial(2 * q, e, me, c, h) + partial(2 * q + 1, e, me, c, h))
                  << "rank " << me << " expert " << q * expertsLocal + e;
    }
    // slices must divide the group; sums need a float dtype.
    EXPECT_MOERT_ERROR(
        moert_all_to_all_sliced(ctx, group.get(), MOERT_A2A_TO_EXPERTS,
                                MOERT_A2A_FLAT, send.view(MOERT_F32),
                                psend.view(MOERT_F32), 1, 1, 1, 3),
        MOERT_INVALID_ARGUMENT, "divide the group size");
    EXPECT_MOERT_ERROR(
        moert_all_to_all_sliced(ctx, group.get(), MOERT_A2A_FROM_EXPERTS,
                                MOERT_A2A_FLAT, psend.view(MOERT_I32),
                                send.view(MOERT_I32), 1, 1, 1, 2),
        MOERT_INVALID_ARGUMENT, "float dtype");
  });
}

INSTANTIATE_TEST_SUITE_P(Meshes, SlicedAllToAll,
                         ::testing::Values(A2aCase{1, 4}, A2aCase{2, 4},
                                           A2aCase{4, 2}),
                         [](const auto &info) {
                           return std::to_string(info.param.nodes) + "x" +
                                  std::to_string(info.param.gpusPerNode);
                         });

TEST(AllToAll, ExchangesCountsAndBf16) {
  // counts[E] i32 with C = H = 1 becomes [E_local, G]: per-block rows.
  World world(2, 2);
  world.run([&](moert_context_t ctx) {
    Group group(ctx, allRanks(ctx));
    int32_t me = group.member();
    std::vector<int32_t> counts(8);
    for (int32_t e = 0; e < 8; ++e)
      counts[e] = me * 100 + e;
    Buffer send(ctx, counts, MOERT_I32), recv(ctx, 8 * 4);
    check(moert_all_to_all(ctx, group.get(), MOERT_A2A_TO_EXPERTS,
                           MOERT_A2A_HIERARCHICAL, send.view(MOERT_I32),
                           recv.view(MOERT_I32), 2, 1, 1));
    std::vector<int32_t> got = recv.download<int32_t>(MOERT_I32, 8);
    for (int32_t e = 0; e < 2; ++e)
      for (int32_t p = 0; p < 4; ++p)
        EXPECT_EQ(got[e * 4 + p], p * 100 + me * 2 + e);
    std::vector<uint16_t> halves(8 * 3);
    for (size_t i = 0; i < halves.size(); ++i)
      halves[i] = static_cast<uint16_t>(me * 1000 + i);
    Buffer hs(ctx, halves, MOERT_BF16), hr(ctx, halves.size() * 2),
        hb(ctx, halves.size() * 2);
    check(moert_all_to_all(ctx, group.get(), MOERT_A2A_TO_EXPERTS,
                           MOERT_A2A_HIERARCHICAL, hs.view(MOERT_BF16),
                           hr.view(MOERT_BF16), 2, 1, 3));
    check(moert_all_to_all(ctx, group.get(), MOERT_A2A_FROM_EXPERTS,
                           MOERT_A2A_FLAT, hr.view(MOERT_BF16),
                           hb.view(MOERT_BF16), 2, 1, 3));
    EXPECT_EQ(hb.download<uint16_t>(MOERT_BF16, halves.size()), halves);
  });
}

TEST(AllGather, ConcatenatesInMemberOrderAndReduceScatterSumsBlocks) {
  World world(1, 4);
  world.run([&](moert_context_t ctx) {
    int32_t rank = moert_context_rank(ctx);
    // Groups {0, 2} and {1, 3}: member order, not world order, decides.
    Group pair(ctx, {rank % 2 + 2, rank % 2});
    ASSERT_EQ(pair.member(), rank / 2 == 0 ? 1 : 0);
    std::vector<float> mine = {float(rank), float(rank) + 0.5f, -1.0f};
    Buffer send(ctx, mine, MOERT_F32), recv(ctx, 6 * 4);
    check(moert_buffer_fill(ctx, recv.view(MOERT_F32), 6, NAN));
    check(moert_all_gather(ctx, pair.get(), send.view(MOERT_F32),
                           recv.view(MOERT_F32), 3));
    int32_t first = rank % 2 + 2, second = rank % 2;
    EXPECT_EQ(recv.download<float>(MOERT_F32, 6),
              (std::vector<float>{float(first), first + 0.5f, -1.0f,
                                  float(second), second + 0.5f, -1.0f}));
    // Partial sums: member m sends [G*2] = m+1 everywhere plus its rank in
    // block m; block b of the result is sum_m (m+1) + rank of member b.
    std::vector<float> partial(4, float(pair.member() + 1));
    partial[pair.member() * 2] += float(rank);
    Buffer psend(ctx, partial, MOERT_F32), precv(ctx, 2 * 4);
    check(moert_buffer_fill(ctx, precv.view(MOERT_F32), 2, NAN));
    check(moert_reduce_scatter(ctx, pair.get(), psend.view(MOERT_F32),
                               precv.view(MOERT_F32), 2));
    EXPECT_EQ(precv.download<float>(MOERT_F32, 2),
              (std::vector<float>{3.0f + float(rank), 3.0f}));
    // bf16 storage rounds once, after the fp32 sum.
    std::vector<uint16_t> one(2, 0x3f80); // 1.0
    Buffer bsend(ctx, one, MOERT_BF16), brecv(ctx, 2);
    check(moert_reduce_scatter(ctx, pair.get(), bsend.view(MOERT_BF16),
                               brecv.view(MOERT_BF16), 1));
    EXPECT_EQ(brecv.download<uint16_t>(MOERT_BF16, 1),
              (std::vector<uint16_t>{0x4000})); // 2.0
    // Overlapping views are refused with a message.
    EXPECT_EQ(moert_all_gather(ctx, pair.get(), recv.view(MOERT_F32),
                               recv.view(MOERT_F32), 3),
              MOERT_INVALID_ARGUMENT);
    EXPECT_NE(std::string(moert_last_error()).find("overlap"),
              std::string::npos);
  });
}

TEST(TokenShare, SharesInOrderAndAllGatherRestoresThem) {
  World world(1, 3);
  world.run([&](moert_context_t ctx) {
    int32_t rank = moert_context_rank(ctx);
    Group all(ctx, {0, 1, 2});
    // 5 rows of 2 on every member: shares of c = 2 rows, 2, 2 and 1.
    std::vector<float> rows(10);
    for (size_t i = 0; i < rows.size(); ++i)
      rows[i] = float(i);
    Buffer x(ctx, rows, MOERT_F32), share(ctx, 2 * 2 * 4),
        gathered(ctx, 3 * 2 * 2 * 4);
    int64_t tokens = 5;
    check(moert_token_share(ctx, all.get(), x.view(MOERT_F32),
                            share.view(MOERT_F32), 2, &tokens));
    EXPECT_EQ(tokens, rank < 2 ? 2 : 1);
    std::vector<float> mine = share.download<float>(MOERT_F32, tokens * 2);
    EXPECT_EQ(mine, std::vector<float>(rows.begin() + rank * 4,
                                       rows.begin() + rank * 4 + tokens * 2));
    check(moert_all_gather(ctx, all.get(), share.view(MOERT_F32),
                           gathered.view(MOERT_F32), 2 * 2));
    EXPECT_EQ(gathered.download<float>(MOERT_F32, 10), rows);
    // One row for three members: the last two get none.
    tokens = 1;
    check(moert_token_share(ctx, all.get(), x.view(MOERT_F32),
                            share.view(MOERT_F32), 2, &tokens));
    EXPECT_EQ(tokens, rank == 0 ? 1 : 0);
    tokens = -1;
    EXPECT_EQ(moert_token_share(ctx, all.get(), x.view(MOERT_F32),
                                share.view(MOERT_F32), 2, &tokens),
              MOERT_INVALID_ARGUMENT);
  });
}

TEST(AllToAll, SubgroupsAndBadGroups) {
  World world(2, 2);
  world.run([&](moert_context_t ctx) {
    int32_t rank = moert_context_rank(ctx);
    // Two concurrent groups {0,2} and {1,3}: each spans both nodes.
    Group pair(ctx, {rank % 2, rank % 2 + 2});
    std::vector<float> data(2, static_cast<float>(rank));
    Buffer send(ctx, data, MOERT_F32), recv(ctx, 8);
    check(moert_all_to_all(ctx, pair.get(), MOERT_A2A_TO_EXPERTS,
                           MOERT_A2A_HIERARCHICAL, send.view(MOERT_F32),
                           recv.view(MOERT_F32), 1, 1, 1));
    EXPECT_EQ(recv.download<float>(MOERT_F32, 2),
              (std::vector<float>{float(rank % 2), float(rank % 2 + 2)}));
    // Not sorted by node: hierarchical is refused, flat works.
    Group mixed(ctx, {0, 2, 1, 3});
    std::vector<float> four(4, 1.0f);
    Buffer s4(ctx, four, MOERT_F32), r4(ctx, 16);
    EXPECT_MOERT_ERROR(moert_all_to_all(ctx, mixed.get(), MOERT_A2A_TO_EXPERTS,
                                        MOERT_A2A_HIERARCHICAL,
                                        s4.view(MOERT_F32), r4.view(MOERT_F32),
                                        1, 1, 1),
                       MOERT_INVALID_ARGUMENT, "sorted by node");
    check(moert_all_to_all(ctx, mixed.get(), MOERT_A2A_TO_EXPERTS,
                           MOERT_A2A_FLAT, s4.view(MOERT_F32),
                           r4.view(MOERT_F32), 1, 1, 1));
    moert_group_t bad = nullptr;
    int32_t others[] = {(rank + 1) % 4};
    EXPECT_MOERT_ERROR(moert_group_create(ctx, others, 1, &bad),
                       MOERT_INVALID_ARGUMENT, "not in the group");
    int32_t twice[] = {rank, rank};
    EXPECT_MOERT_ERROR(moert_group_create(ctx, twice, 2, &bad),
                       MOERT_INVALID_ARGUMENT, "twice");
  });
}

TEST(AllReduce, SumAndMaxInPlaceAndAcrossDtypes) {
  World world(2, 4);
  world.run([&](moert_context_t ctx) {
    Group group(ctx, allRanks(ctx));
    int32_t rank = moert_context_rank(ctx);
    std::vector<float> values = {float(rank), float(-rank), 0.5f};
    Buffer buf(ctx, values, MOERT_F32), out(ctx, 12);
    check(moert_all_reduce(ctx, group.get(), MOERT_REDUCE_SUM,
                           buf.view(MOERT_F32), out.view(MOERT_F32), 3));
    EXPECT_EQ(out.download<float>(MOERT_F32, 3),
              (std::vector<float>{28, -28, 4}));
    check(moert_all_reduce(ctx, group.get(), MOERT_REDUCE_MAX,
                           buf.view(MOERT_F32), buf.view(MOERT_F32), 3));
    EXPECT_EQ(buf.download<float>(MOERT_F32, 3),
              (std::vector<float>{7, 0, 0.5f}));
    std::vector<int32_t> ints = {rank, 1};
    Buffer ib(ctx, ints, MOERT_I32);
    check(moert_all_reduce(ctx, group.get(), MOERT_REDUCE_SUM,
                           ib.view(MOERT_I32), ib.view(MOERT_I32), 2));
    EXPECT_EQ(ib.download<int32_t>(MOERT_I32, 2),
              (std::vector<int32_t>{28, 8}));
    // bf16 partial sums are accumulated in fp32, rounded once.
    std::vector<uint16_t> bf = {0x3f80}; // 1.0
    Buffer bb(ctx, bf, MOERT_BF16);
    check(moert_all_reduce(ctx, group.get(), MOERT_REDUCE_SUM,
                           bb.view(MOERT_BF16), bb.view(MOERT_BF16), 1));
    EXPECT_EQ(bb.download<uint16_t>(MOERT_BF16, 1)[0], 0x4100); // 8.0
    int64_t capacity = 3 + rank % 3;
    check(moert_all_reduce_i64(ctx, group.get(), MOERT_REDUCE_MAX, &capacity));
    EXPECT_EQ(capacity, 5);
    // Disjoint node groups reduce concurrently.
    int32_t node = moert_context_node(ctx);
    Group nodeGroup(ctx, {node * 4, node * 4 + 1, node * 4 + 2, node * 4 + 3});
    int64_t total = rank;
    check(moert_all_reduce_i64(ctx, nodeGroup.get(), MOERT_REDUCE_SUM, &total));
    EXPECT_EQ(total, node == 0 ? 6 : 22);
    check(moert_barrier(ctx, group.get()));
  });
}

TEST(KeptGroups, LiveUntilTheBodyReturnsAndReplaceTheirSlot) {
  World world(1, 4);
  world.run([&](moert_context_t ctx) {
    int32_t rank = moert_context_rank(ctx);
    moert_group_t missing = nullptr;
    EXPECT_MOERT_ERROR(moert_context_group(ctx, 2, &missing),
                       MOERT_INVALID_ARGUMENT, "no group is kept in slot 2");
    // Pairs {0,1} {2,3} in slot 2, then the whole world replaces them.
    int32_t pair[] = {rank / 2 * 2, rank / 2 * 2 + 1};
    moert_group_t created = nullptr;
    check(moert_group_create(ctx, pair, 2, &created));
    check(moert_context_keep_group(ctx, 2, created));
    moert_group_t kept = nullptr;
    check(moert_context_group(ctx, 2, &kept));
    EXPECT_EQ(kept, created);
    int64_t sum = rank;
    check(moert_all_reduce_i64(ctx, kept, MOERT_REDUCE_SUM, &sum));
    EXPECT_EQ(sum, rank < 2 ? 1 : 5);
    std::vector<int32_t> every = allRanks(ctx);
    check(moert_group_create(ctx, every.data(), 4, &created));
    check(moert_context_keep_group(ctx, 2, created));
    check(moert_context_group(ctx, 2, &kept));
    sum = rank;
    check(moert_all_reduce_i64(ctx, kept, MOERT_REDUCE_SUM, &sum));
    EXPECT_EQ(sum, 6);
    EXPECT_EQ(moert_context_group(ctx, 1, &missing), MOERT_INVALID_ARGUMENT);
    EXPECT_MOERT_ERROR(moert_context_keep_group(ctx, -1, kept),
                       MOERT_INVALID_ARGUMENT, "slot -1");
  });
  // A new run's contexts start empty.
  world.run([&](moert_context_t ctx) {
    moert_group_t kept = nullptr;
    EXPECT_EQ(moert_context_group(ctx, 2, &kept), MOERT_INVALID_ARGUMENT);
  });
}

TEST(World, FailingRankEndsTheRunWithItsError) {
  World world(2, 2, 30000);
  auto start = std::chrono::steady_clock::now();
  moert_status_t status = world.tryRun([](moert_context_t ctx) {
    Group group(ctx, allRanks(ctx));
    if (moert_context_rank(ctx) == 2) {
      // A real failure: a kernel call with a bad argument.
      Buffer small(ctx, 4);
      check(moert_add(ctx, small.view(MOERT_F32), small.view(MOERT_F32),
                      small.view(MOERT_F32), 100));
    }
    check(moert_barrier(ctx, group.get()));
  });
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_EQ(status, MOERT_INVALID_ARGUMENT);
  std::string message = moert_last_error();
  EXPECT_NE(message.find("rank 2 failed"), std::string::npos) << message;
  EXPECT_NE(message.find("moert_add"), std::string::npos) << message;
  EXPECT_LT(seconds, 5.0) << "peers waited for the timeout instead of aborting";
}

TEST(World, ThrowingRankFailsTheRun) {
  World world(1, 3);
  moert_status_t status = world.tryRun([](moert_context_t ctx) {
    Group group(ctx, allRanks(ctx));
    if (moert_context_rank(ctx) == 1)
      throw std::runtime_error("boom in rank body");
    check(moert_barrier(ctx, group.get()));
  });
  EXPECT_EQ(status, MOERT_INTERNAL);
  EXPECT_NE(std::string(moert_last_error()).find("boom in rank body"),
            std::string::npos)
      << moert_last_error();
}

TEST(World, ExitedPeerAbortsWaiters) {
  World world(1, 2, 30000);
  moert_status_t status = world.tryRun([](moert_context_t ctx) {
    Group group(ctx, allRanks(ctx));
    if (moert_context_rank(ctx) == 0)
      check(moert_barrier(ctx, group.get())); // rank 1 never comes
  });
  EXPECT_EQ(status, MOERT_ABORTED);
  EXPECT_NE(std::string(moert_last_error()).find("exited without joining"),
            std::string::npos)
      << moert_last_error();
}

TEST(World, HungPeerTimesOut) {
  World world(1, 2, 200);
  moert_status_t status = world.tryRun([](moert_context_t ctx) {
    Group group(ctx, allRanks(ctx));
    if (moert_context_rank(ctx) == 1)
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    check(moert_barrier(ctx, group.get()));
  });
  EXPECT_EQ(status, MOERT_TIMEOUT);
  EXPECT_NE(std::string(moert_last_error()).find("timed out"),
            std::string::npos)
      << moert_last_error();
}

TEST(World, ReusableAfterAFailedRun) {
  World world(1, 2, 30000);
  EXPECT_NE(world.tryRun([](moert_context_t ctx) {
    if (moert_context_rank(ctx) == 1)
      throw std::runtime_error("first run fails");
    Group group(ctx, allRanks(ctx));
    check(moert_barrier(ctx, group.get()));
  }),
            MOERT_OK);
  std::atomic<int> ran{0};
  world.run([&](moert_context_t ctx) {
    Group group(ctx, allRanks(ctx));
    check(moert_barrier(ctx, group.get()));
    ++ran;
  });
  EXPECT_EQ(ran.load(), 2);
}

TEST(World, RejectsBadDescriptions) {
  moert_world_t world = nullptr;
  moert_world_desc_t desc{MOERT_BACKEND_CPU, 0, 2, 0};
  EXPECT_MOERT_ERROR(moert_world_create(&desc, &world), MOERT_INVALID_ARGUMENT,
                     "mesh");
  EXPECT_EQ(world, nullptr);
  // A CUDA world without a device: CudaWorld.* (BackendDispatchTest.cpp),
  // which skip where a GPU is present.
}

} // namespace
