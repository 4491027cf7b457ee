//===- runtime/runner/RunSupport.h - What every run mode shares -*- C++ -*-===//
//
// The FFN-stack steps (Runner.cpp) and generation (Generate.cpp) open the
// weights and the world the same way, record each rank's failing call the
// same way, and report a failed run the same way.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_RUNSUPPORT_H
#define MOERT_RUNNER_RUNSUPPORT_H

#include "runtime/moert_model.h"
#include "runtime/runner/Runner.h"

#include <string>
#include <vector>

namespace moert::runner {

// Checks one rank's calls: a failure records the model's failing call (set
// through call() by init/step/forward) or else `what`.
class RankCheck {
public:
  explicit RankCheck(std::string &where) : where_(where) {}
  const char **call() { return &call_; }
  moert_status_t operator()(moert_status_t status, const char *what) {
    if (status != MOERT_OK)
      where_ = call_ ? call_ : what;
    return status;
  }

private:
  std::string &where_;
  const char *call_ = nullptr;
};

// One rank's buffers, group and graph, released on every path out of the
// rank (members a mode does not use stay null).
struct RankResources {
  moert_context_t ctx;
  moert_buffer_t state = nullptr, io = nullptr, gathered = nullptr;
  moert_group_t world = nullptr;
  moert_graph_t graph = nullptr;
  ~RankResources() {
    moert_graph_destroy(ctx, graph);
    if (world)
      moert_group_destroy(world);
    if (gathered)
      moert_buffer_free(ctx, gathered);
    if (io)
      moert_buffer_free(ctx, io);
    if (state)
      moert_buffer_free(ctx, state);
  }
};

// The weights and the world of one run, closed on every path out.
class RunSession {
public:
  RunSession(const RunOptions &options, const moert_model_info_t &info);
  ~RunSession();
  RunSession(const RunSession &) = delete;
  RunSession &operator=(const RunSession &) = delete;
  moert_weights_t weights() const { return weights_; }
  moert_world_t world() const { return world_; }
  // Runs fn on this process's ranks; a failure throws the runtime's message
  // with each rank's failing call (where[i] is rank firstRank + i).
  void run(moert_rank_fn_t fn, void *user,
           const std::vector<std::string> &where, int32_t firstRank);

private:
  moert_weights_t weights_ = nullptr;
  moert_world_t world_ = nullptr;
};

// The group of every rank, for the reductions of the statistics.
moert_status_t createWorldGroup(moert_context_t ctx, int32_t worldSize,
                                moert_group_t *group);

} // namespace moert::runner

#endif // MOERT_RUNNER_RUNSUPPORT_H
