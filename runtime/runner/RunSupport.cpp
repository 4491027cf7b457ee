//===- runtime/runner/RunSupport.cpp - What every run mode shares ---------===//

#include "runtime/runner/RunSupport.h"

#include "runtime/common/Error.h"

#include <numeric>

namespace moert::runner {

RunSession::RunSession(const RunOptions &options,
                       const moert_model_info_t &info) {
  if (moert_status_t st =
          moert_weights_open(options.weightsPath.c_str(), &weights_))
    fail(st, moert_last_error());
  moert_world_desc_t desc = {options.backend, info.nodes, info.gpus_per_node,
                             options.collectiveTimeoutMs, options.cpuThreads};
  if (moert_status_t st = moert_world_create(&desc, &world_)) {
    moert_weights_close(weights_);
    fail(st, moert_last_error());
  }
}

RunSession::~RunSession() {
  moert_world_destroy(world_);
  moert_weights_close(weights_);
}

void RunSession::run(moert_rank_fn_t fn, void *user,
                     const std::vector<std::string> &where, int32_t firstRank) {
  moert_status_t st = moert_world_run(world_, fn, user);
  if (st == MOERT_OK)
    return;
  std::string message = moert_last_error();
  for (size_t r = 0; r < where.size(); ++r)
    if (!where[r].empty())
      message += "\n  rank " + std::to_string(firstRank + int32_t(r)) +
                 " failed in " + where[r];
  fail(st, message);
}

moert_status_t createWorldGroup(moert_context_t ctx, int32_t worldSize,
                                moert_group_t *group) {
  std::vector<int32_t> everyRank(static_cast<size_t>(worldSize));
  std::iota(everyRank.begin(), everyRank.end(), 0);
  return moert_group_create(ctx, everyRank.data(), worldSize, group);
}

} // namespace moert::runner
