//===- Help.cpp - what moe-run --help shows -------------------------------===//

#include "compiler/Driver/Help.h"

mlir::moe::ToolHelp mlir::moe::driver::toolHelp() {
  // An option of moe-run's that no group names still shows, under
  // "moe-run options".
  return ToolHelp(
      "moe-run", "[options] <checkpoint dir | config.json | model.mlir>",
      {{"Plan (compile for this mesh and step)",
        {"mesh", "tokens", "policy", "ep", "tp", "attention-tp",
         "duplicate-tokens", "fuse", "plan-svg"}},
       {"Run", {"backend", "steps", "threads", "cuda-graphs", "quiet"}},
       {"Weights, input and output",
        {"weights", "seed", "yes", "max-random-weights-gb", "input", "output",
         "expert-stats", "cache-dir", "emit-cpp"}},
       {"Diagnostics", {"mlir-print-op-on-diagnostic"}}});
}
