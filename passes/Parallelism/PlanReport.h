//===- PlanReport.h - the plan as a table, JSON or a picture ----*- C++ -*-===//
//
// What moe-assign-parallelism's `report=` prints. Consecutive layers with
// the same plan and estimates (a 61-layer DeepSeek-V3 has three kinds) are
// one group in the picture, and one object in the JSON.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PASSES_PARALLELISM_PLANREPORT_H
#define MOE_PASSES_PARALLELISM_PLANREPORT_H

#include "passes/Parallelism/CostModel.h"

#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace mlir::moe {

/// One layer's plan and its estimate.
struct PlanRow {
  int64_t layer = 0;
  std::string kind;     // dense | moe | shared | residual
  int64_t experts = 0;  // 0 for a dense layer
  bool dropless = true; // no capacity: every choice is kept
  int64_t ep = 1, tp = 1, dp = 1;
  std::string allToAll; // flat | hierarchical; "-" when nothing is exchanged
  std::vector<std::vector<int64_t>> exchangeGroups; // world ranks
  cost::Estimate estimate;
  // Duplicate-token dropping: the layer runs on 1/tokenShare of the tokens
  // its attention tp group holds; the all-to-all bytes it would send without.
  int64_t tokenShare = 1;
  int64_t unsharedAllToAllBytes = 0;
};

/// The whole plan: the mesh it was made for, the modelled device, the rows.
struct PlanSummary {
  int64_t nodes = 1, gpusPerNode = 1;
  std::string policy;
  int64_t tokens = 0; // per rank per step
  int64_t memoryBytes = 0, deviceMemoryBytes = 0;
  double memoryGbps = 0, peakTflops = 0, intraNodeGbps = 0, interNodeGbps = 0;
  std::vector<PlanRow> rows;
};

/// "12.0 GiB": binary units, one decimal.
std::string humanBytes(double bytes);

/// A row per layer; `capacity` only when a layer has one; under the table
/// the layers that drop duplicate tokens and the device the times are
/// modelled on.
std::string formatPlanTable(const PlanSummary &plan);

/// One object per distinct layer plan with the layers that use it.
void printPlanJson(const PlanSummary &plan, llvm::raw_ostream &os);

/// A standalone SVG: the mesh (nodes x GPUs), then per group of identical
/// consecutive layers the split, the exchange groups on the ranks, the
/// all-to-all variant and the per-rank weight and exchange bytes.
void printPlanSvg(const PlanSummary &plan, llvm::raw_ostream &os);

} // namespace mlir::moe

#endif // MOE_PASSES_PARALLELISM_PLANREPORT_H
