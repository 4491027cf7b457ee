//===- runtime/test/GraphTest.cpp - moert_graph_* on the CPU backend ------===//
//
// The CPU backend refuses to capture (and never runs fn), with a message
// naming the reason; replay of a null graph is an argument error.

#include "runtime/moert.h"

#include <gtest/gtest.h>

#include <string>

namespace {

struct Probe {
  bool ranCapturedFn = false;
  moert_status_t capture = MOERT_OK, replay = MOERT_OK;
  std::string message;
  moert_graph_t graph = reinterpret_cast<moert_graph_t>(1);
};

moert_status_t capturedFn(moert_context_t, void *user) {
  static_cast<Probe *>(user)->ranCapturedFn = true;
  return MOERT_OK;
}

moert_status_t rank(moert_context_t ctx, void *user) {
  auto &p = *static_cast<Probe *>(user);
  p.capture = moert_graph_capture(ctx, capturedFn, &p, &p.graph);
  p.message = moert_last_error();
  p.replay = moert_graph_replay(ctx, nullptr);
  moert_graph_destroy(ctx, nullptr);
  return MOERT_OK;
}

TEST(Graph, CpuBackendRefusesToCapture) {
  moert_world_desc_t desc = {MOERT_BACKEND_CPU, 1, 1, 0};
  moert_world_t world = nullptr;
  ASSERT_EQ(moert_world_create(&desc, &world), MOERT_OK);
  Probe p;
  ASSERT_EQ(moert_world_run(world, rank, &p), MOERT_OK);
  moert_world_destroy(world);
  EXPECT_EQ(p.capture, MOERT_UNSUPPORTED);
  EXPECT_EQ(p.graph, nullptr);
  EXPECT_FALSE(p.ranCapturedFn);
  EXPECT_NE(p.message.find("moert_graph_capture: CUDA graphs need a "
                           "MOERT_BACKEND_CUDA world"),
            std::string::npos)
      << p.message;
  EXPECT_EQ(p.replay, MOERT_INVALID_ARGUMENT);
}

} // namespace
