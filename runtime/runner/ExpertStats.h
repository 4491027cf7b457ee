//===- runtime/runner/ExpertStats.h - Routing statistics --------*- C++ -*-===//
//
// `--expert-stats FILE` of moe-run and moert-run: per MoE layer, the choices
// each expert kept (summed over the run's steps and every rank), the
// choices capacity dropped, and the imbalance (max / mean over experts).
// FILE is JSON in the stable format docs/ExpertStats.md describes (what an
// expert-placement pass will read); a heat map of layers x experts goes
// next to it as FILE with its extension replaced by .svg.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_EXPERTSTATS_H
#define MOERT_RUNNER_EXPERTSTATS_H

#include <cstdint>
#include <string>
#include <vector>

namespace moert::runner {

struct LayerRouting {
  int32_t layer = 0;
  std::vector<int64_t> tokens; // kept choices per expert
  int64_t dropped = 0;         // choices capacity dropped
  // max(tokens) / mean(tokens); 0 when nothing was routed.
  double imbalance() const;
};

struct ExpertStats {
  std::string model; // the model function's name
  int32_t nodes = 1, gpusPerNode = 1;
  int64_t tokensPerRank = 0, steps = 0;
  std::vector<LayerRouting> layers; // MoE layers only, by layer index
};

// FILE with its extension (if any) replaced by ".svg".
std::string heatMapPath(const std::string &jsonPath);

// Writes the JSON to `path` and the heat map to heatMapPath(path); throws
// moert::Error(MOERT_IO_ERROR) naming a file it cannot write.
void writeExpertStats(const std::string &path, const ExpertStats &stats);

} // namespace moert::runner

#endif // MOERT_RUNNER_EXPERTSTATS_H
