//===- runtime/nccl/test/PlanTest.cpp - Plans vs CPU all-to-all -----------===//
//
// Executes the send/receive plans of G virtual ranks on the host (matching
// each pair's messages in order, as NCCL does) and expects the bytes that
// runtime/cpu's moert_all_to_all produces on the same mesh.
//
//===----------------------------------------------------------------------===//

#include "runtime/nccl/Plan.h"

#include "runtime/common/Error.h"
#include "runtime/common/NodeLayout.h"
#include "runtime/moert.hpp"

#include <gtest/gtest.h>

#include <mutex>
#include <numeric>
#include <random>

using namespace moert;
using namespace moert::nccl;

namespace {

using Buffers = std::vector<std::vector<float>>;

// Runs one exchange among plans.size() members; ranks maps a plan member
// index to an index into send/recv.
void runExchange(const std::vector<Exchange> &plans,
                 const std::vector<int32_t> &ranks, const Buffers &send,
                 Buffers &recv) {
  size_t g = plans.size();
  for (size_t m = 0; m < g; ++m) {
    for (size_t q = 0; q < g; ++q) {
      std::vector<Transfer> out, in;
      for (const Transfer &t : plans[m].sends)
        if (t.peer == static_cast<int32_t>(q))
          out.push_back(t);
      for (const Transfer &t : plans[q].recvs)
        if (t.peer == static_cast<int32_t>(m))
          in.push_back(t);
      ASSERT_EQ(out.size(), in.size()) << m << " -> " << q;
      for (size_t i = 0; i < out.size(); ++i) {
        ASSERT_EQ(out[i].count, in[i].count) << m << " -> " << q;
        const std::vector<float> &src = send[ranks[m]];
        std::vector<float> &dst = recv[ranks[q]];
        ASSERT_LE(out[i].offset + out[i].count, (int64_t)src.size());
        ASSERT_LE(in[i].offset + in[i].count, (int64_t)dst.size());
        std::copy_n(src.begin() + out[i].offset, out[i].count,
                    dst.begin() + in[i].offset);
      }
    }
  }
}

std::vector<float> transposed(const std::vector<float> &src, int64_t rows,
                              int64_t cols) {
  std::vector<float> dst(src.size());
  size_t chunk = src.size() / (rows * cols) * sizeof(float);
  transposeChunksHost(reinterpret_cast<const char *>(src.data()),
                      reinterpret_cast<char *>(dst.data()), rows, cols, chunk);
  return dst;
}

// The generic two-stage chunk exchange, as the NCCL path will run it.
Buffers hierarchical(const Buffers &send, int32_t nodes, int32_t perNode,
                     int64_t chunk) {
  int32_t g = nodes * perNode;
  Buffers byDestLocal(g), fromNodePeers(g, std::vector<float>(send[0].size())),
      byDestNode(g), out(g, std::vector<float>(send[0].size()));
  std::vector<HierarchicalPlan> plans;
  for (int32_t m = 0; m < g; ++m) {
    plans.push_back(hierarchicalChunks(nodes, perNode, m, chunk));
    byDestLocal[m] = transposed(send[m], nodes, perNode);
  }
  for (int32_t a = 0; a < nodes; ++a) {
    std::vector<Exchange> intra;
    std::vector<int32_t> ranks;
    for (int32_t b = 0; b < perNode; ++b) {
      intra.push_back(plans[a * perNode + b].intra);
      ranks.push_back(a * perNode + b);
    }
    runExchange(intra, ranks, byDestLocal, fromNodePeers);
  }
  for (int32_t m = 0; m < g; ++m)
    byDestNode[m] = transposed(fromNodePeers[m], perNode, nodes);
  for (int32_t b = 0; b < perNode; ++b) {
    std::vector<Exchange> inter;
    std::vector<int32_t> ranks;
    for (int32_t a = 0; a < nodes; ++a) {
      inter.push_back(plans[a * perNode + b].inter);
      ranks.push_back(a * perNode + b);
    }
    runExchange(inter, ranks, byDestNode, out);
  }
  return out;
}

struct Mesh {
  int32_t nodes, perNode;
};

class NcclPlan : public ::testing::TestWithParam<Mesh> {};

const int64_t el = 2, capacity = 3, hidden = 4;

Buffers randomSends(int32_t g, unsigned seed) {
  std::mt19937 rng(seed);
  Buffers send(g, std::vector<float>(g * el * capacity * hidden));
  for (auto &b : send)
    for (float &v : b)
      v = static_cast<float>(rng() % 100000);
  return send;
}

// runtime/cpu's all-to-all of `send` on this mesh.
Buffers cpuAllToAll(Mesh mesh, moert_a2a_direction_t dir,
                    moert_a2a_algorithm_t algo, const Buffers &send) {
  int32_t g = mesh.nodes * mesh.perNode;
  Buffers recv(g);
  std::mutex mutex;
  World world(mesh.nodes, mesh.perNode, 20000);
  world.run([&](moert_context_t ctx) {
    int32_t rank = moert_context_rank(ctx);
    std::vector<int32_t> ranks(g);
    std::iota(ranks.begin(), ranks.end(), 0);
    Group group(ctx, ranks);
    Buffer in(ctx, send[rank], MOERT_F32), out(ctx, send[rank].size() * 4);
    check(moert_all_to_all(ctx, group.get(), dir, algo, in.view(MOERT_F32),
                           out.view(MOERT_F32), el, capacity, hidden));
    auto values = out.download<float>(MOERT_F32, send[rank].size());
    std::lock_guard<std::mutex> lock(mutex);
    recv[rank] = values;
  });
  return recv;
}

TEST_P(NcclPlan, FlatMatchesCpu) {
  Mesh mesh = GetParam();
  int32_t g = mesh.nodes * mesh.perNode;
  for (auto dir : {MOERT_A2A_TO_EXPERTS, MOERT_A2A_FROM_EXPERTS}) {
    Buffers send = randomSends(g, 1 + dir);
    Buffers want = cpuAllToAll(mesh, dir, MOERT_A2A_FLAT, send);
    Buffers got(g, std::vector<float>(send[0].size(), -1.0f));
    std::vector<Exchange> plans;
    for (int32_t m = 0; m < g; ++m)
      plans.push_back(flatAllToAll(dir, {g, m, el, capacity, hidden}));
    std::vector<int32_t> ranks(g);
    std::iota(ranks.begin(), ranks.end(), 0);
    runExchange(plans, ranks, send, got);
    EXPECT_EQ(got, want) << "direction " << dir;
  }
}

TEST_P(NcclPlan, HierarchicalMatchesCpu) {
  Mesh mesh = GetParam();
  int32_t g = mesh.nodes * mesh.perNode;
  std::vector<int32_t> ranks(g);
  std::iota(ranks.begin(), ranks.end(), 0);
  NodeLayout layout = nodeLayout(ranks, mesh.perNode);
  ASSERT_EQ(layout.nodes, mesh.nodes);
  int64_t rows = capacity * hidden, peerChunk = el * rows;
  for (auto dir : {MOERT_A2A_TO_EXPERTS, MOERT_A2A_FROM_EXPERTS}) {
    Buffers send = randomSends(g, 10 + dir);
    Buffers want = cpuAllToAll(mesh, dir, MOERT_A2A_HIERARCHICAL, send);
    Buffers got(g);
    if (dir == MOERT_A2A_TO_EXPERTS) {
      Buffers staged = hierarchical(send, mesh.nodes, mesh.perNode, peerChunk);
      for (int32_t m = 0; m < g; ++m)
        got[m] = transposed(staged[m], g, el); // [p][El] -> [El][p]
    } else {
      Buffers staged(g);
      for (int32_t m = 0; m < g; ++m)
        staged[m] = transposed(send[m], el, g); // [El][q] -> [q][El]
      got = hierarchical(staged, mesh.nodes, mesh.perNode, peerChunk);
    }
    EXPECT_EQ(got, want) << "direction " << dir;
  }
}

TEST_P(NcclPlan, DroplessMovesOnlyUsedRowsAtPaddedOffsets) {
  Mesh mesh = GetParam();
  int32_t g = mesh.nodes * mesh.perNode;
  Buffers send = randomSends(g, 20);
  Buffers full = cpuAllToAll(mesh, MOERT_A2A_TO_EXPERTS, MOERT_A2A_FLAT, send);
  std::mt19937 rng(21);
  std::vector<std::vector<int32_t>> sendRows(g, std::vector<int32_t>(g * el));
  for (auto &r : sendRows)
    for (int32_t &v : r)
      v = static_cast<int32_t>(rng() % (capacity + 1));
  std::vector<Exchange> plans;
  std::vector<std::vector<int32_t>> recvRows(g, std::vector<int32_t>(el * g));
  for (int32_t m = 0; m < g; ++m) {
    // What the counts exchange delivers: block (e, p) = p's count for my e.
    for (int64_t e = 0; e < el; ++e)
      for (int32_t p = 0; p < g; ++p)
        recvRows[m][e * g + p] = sendRows[p][m * el + e];
    plans.push_back(flatAllToAll(MOERT_A2A_TO_EXPERTS,
                                 {g, m, el, capacity, hidden},
                                 sendRows[m].data(), recvRows[m].data()));
  }
  const float sentinel = -5.0f;
  Buffers got(g, std::vector<float>(send[0].size(), sentinel));
  std::vector<int32_t> ranks(g);
  std::iota(ranks.begin(), ranks.end(), 0);
  runExchange(plans, ranks, send, got);
  for (int32_t m = 0; m < g; ++m)
    for (int64_t block = 0; block < el * g; ++block)
      for (int64_t c = 0; c < capacity; ++c)
        for (int64_t h = 0; h < hidden; ++h) {
          int64_t i = (block * capacity + c) * hidden + h;
          float want = c < recvRows[m][block] ? full[m][i] : sentinel;
          ASSERT_EQ(got[m][i], want) << "member " << m << " block " << block;
        }
}

TEST_P(NcclPlan, SlicedSendsEveryExpertToEachSliceHolderAndSumsBack) {
  Mesh mesh = GetParam();
  int32_t g = mesh.nodes * mesh.perNode, t = mesh.perNode, ep = g / t;
  int64_t experts = ep * el, rows = capacity * hidden;
  Buffers send(g, std::vector<float>(experts * rows));
  for (int32_t p = 0; p < g; ++p)
    for (size_t i = 0; i < send[p].size(); ++i)
      send[p][i] = static_cast<float>(p * 100000 + i);
  Buffers got(g, std::vector<float>(el * g * rows, -1.0f));
  std::vector<Exchange> plans;
  for (int32_t m = 0; m < g; ++m)
    plans.push_back(
        slicedAllToAll(MOERT_A2A_TO_EXPERTS, {g, m, el, capacity, hidden}, t));
  std::vector<int32_t> ranks(g);
  std::iota(ranks.begin(), ranks.end(), 0);
  runExchange(plans, ranks, send, got);
  for (int32_t m = 0; m < g; ++m)
    for (int64_t e = 0; e < el; ++e)
      for (int32_t p = 0; p < g; ++p)
        for (int64_t r = 0; r < rows; ++r)
          ASSERT_EQ(got[m][(e * g + p) * rows + r],
                    send[p][((m / t) * el + e) * rows + r])
              << "member " << m << " expert " << e << " from " << p;

  // Back: each slice holder returns its partial; the token side gets T
  // planes whose sum is the expert output.
  Buffers partial(g, std::vector<float>(el * g * rows));
  for (int32_t m = 0; m < g; ++m)
    for (size_t i = 0; i < partial[m].size(); ++i)
      partial[m][i] = static_cast<float>((m % t + 1) * 1000 + i);
  Buffers planes(g, std::vector<float>(t * experts * rows, -1.0f));
  plans.clear();
  for (int32_t m = 0; m < g; ++m)
    plans.push_back(slicedAllToAll(MOERT_A2A_FROM_EXPERTS,
                                   {g, m, el, capacity, hidden}, t));
  runExchange(plans, ranks, partial, planes);
  for (int32_t p = 0; p < g; ++p)
    for (int64_t e = 0; e < experts; ++e)
      for (int64_t r = 0; r < rows; ++r) {
        float sum = 0, want = 0;
        for (int32_t s = 0; s < t; ++s) {
          sum += planes[p][(s * experts + e) * rows + r];
          int32_t holder = static_cast<int32_t>(e / el) * t + s;
          want += partial[holder][((e % el) * g + p) * rows + r];
        }
        ASSERT_EQ(sum, want) << "token rank " << p << " expert " << e;
      }
}

INSTANTIATE_TEST_SUITE_P(Meshes, NcclPlan,
                         ::testing::Values(Mesh{2, 2}, Mesh{2, 4}, Mesh{4, 2}),
                         [](const auto &info) {
                           return std::to_string(info.param.nodes) + "x" +
                                  std::to_string(info.param.perNode);
                         });

TEST(NcclPlanLayout, UnevenOrUnsortedGroupsAreRejected) {
  EXPECT_THROW(nodeLayout({0, 1, 2}, 2), moert::Error);
  EXPECT_THROW(nodeLayout({0, 2, 1, 3}, 2), moert::Error);
  NodeLayout ok = nodeLayout({2, 3, 4, 5}, 2);
  EXPECT_EQ(ok.nodes, 2);
  EXPECT_EQ(ok.perNode, 2);
}

} // namespace
