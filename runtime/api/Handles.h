//===- runtime/api/Handles.h - The objects behind moert.h's handles -*- C++
//-*-===//
//
// The API layer owns every handle of runtime/moert.h. Each holds what the
// entry points check (sizes, ranks, members) and the backend that serves it
// (runtime/common/Backend.h) with the state that backend keeps for it.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_API_HANDLES_H
#define MOERT_API_HANDLES_H

#include "runtime/common/Backend.h"
#include "runtime/moert.h"

#include <atomic>
#include <memory>
#include <vector>

struct moert_world_s {
  moert_world_desc_t desc;
  int32_t size = 0;
  std::unique_ptr<moert::Backend> backend;
  std::atomic<bool> running{false};
};

struct moert_buffer_s {
  void *data = nullptr;
  size_t bytes = 0;
  // The allocating rank's backend, which frees the memory.
  moert::Backend *backend = nullptr;
  int32_t rank = 0;
};

struct moert_group_s {
  moert_world_s *world = nullptr;
  std::unique_ptr<moert::GroupState> state;
};

// One rank's view of a world during moert_world_run.
struct moert_context_s {
  moert_context_s(moert_world_s *world, int32_t rank)
      : world(world), rank(rank) {}
  moert::Backend &backend() const { return *world->backend; }

  moert_world_s *world;
  int32_t rank;
  // moert_context_keep_group's groups, by slot (owned: destroyed with the
  // context after the run).
  std::vector<std::unique_ptr<moert_group_s>> keptGroups;
};

struct moert_graph_s {
  std::unique_ptr<moert::GraphState> state;
};

#endif // MOERT_API_HANDLES_H
