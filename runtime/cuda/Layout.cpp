//===- runtime/cuda/Layout.cpp - Grouped GEMM plans -----------------------===//

#include "runtime/cuda/Layout.h"

#include "runtime/common/Error.h"

using namespace moert;
using namespace moert::cuda;

GemmProblem moert::cuda::linearProblem(int64_t rows, int64_t out, int64_t in) {
  return GemmProblem{out, rows, in, in, in, out, 0, 0, 0};
}

FfnPlan moert::cuda::planFfn(int64_t experts, int64_t capacity, int64_t blocks,
                             int64_t hidden, int64_t ffn, bool gated,
                             const int32_t *rows) {
  require(experts >= 1 && capacity >= 0 && blocks >= 1 &&
              capacity % blocks == 0,
          "ffn plan: bad extents: experts ", experts, ", capacity ", capacity,
          ", blocks ", blocks);
  FfnPlan plan;
  int64_t blockRows = capacity / blocks;
  std::vector<GemmProblem> up;
  for (int64_t e = 0; e < experts; ++e) {
    for (int64_t b = 0; b < blocks; ++b) {
      int64_t used = rows ? rows[e * blocks + b] : blockRows;
      require(used >= 0 && used <= blockRows, "expert ", e, " block ", b,
              " has ", used, " rows, capacity per block is ", blockRows);
      if (used == 0)
        continue; // empty experts cost no GEMM at all
      int64_t first = e * capacity + b * blockRows;
      GemmProblem p = linearProblem(used, ffn, hidden);
      p.aOffset = e * ffn * hidden;
      p.bOffset = first * hidden;
      p.cOffset = first * ffn;
      plan.first.push_back(p);
      if (gated)
        up.push_back(p); // same shape, other weight and output bases
      GemmProblem d = linearProblem(used, hidden, ffn);
      d.aOffset = e * hidden * ffn;
      d.bOffset = first * ffn;
      d.cOffset = first * hidden;
      plan.down.push_back(d);
    }
  }
  plan.upProblems = static_cast<int64_t>(up.size());
  plan.first.insert(plan.first.end(), up.begin(), up.end());
  return plan;
}

PackedFfnPlan moert::cuda::planPackedFfn(int64_t experts, int64_t capacity,
                                         int64_t blocks, int64_t hidden,
                                         int64_t ffn, const int32_t *rows,
                                         int64_t sharedTokens,
                                         int64_t sharedFfn) {
  require(sharedTokens >= 0 && (sharedTokens == 0 || sharedFfn >= 1),
          "fused_experts plan: shared tokens ", sharedTokens, ", shared ffn ",
          sharedFfn);
  // The routed problems are a plain FFN's with 2F first-projection rows.
  FfnPlan routed = planFfn(experts, capacity, blocks, hidden, 2 * ffn, false,
                           rows);
  PackedFfnPlan plan;
  for (const GemmProblem &p : routed.first)
    plan.gateUp.push_back({p, false});
  for (GemmProblem d : routed.down) {
    // planFfn's down reads [rows, 2F]; the activation output is [rows, F].
    int64_t firstRow = d.cOffset / hidden;
    d = linearProblem(d.n, hidden, ffn);
    d.aOffset = (firstRow / capacity) * hidden * ffn;
    d.bOffset = firstRow * ffn;
    d.cOffset = firstRow * hidden;
    plan.down.push_back({d, false});
  }
  if (sharedTokens > 0) {
    plan.gateUp.push_back({linearProblem(sharedTokens, 2 * sharedFfn, hidden),
                           true});
    plan.down.push_back({linearProblem(sharedTokens, hidden, sharedFfn), true});
  }
  return plan;
}
