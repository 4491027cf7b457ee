//===- Passes.h - parallelism passes ----------------------------*- C++ -*-===//

#ifndef MOE_PASSES_PARALLELISM_PASSES_H
#define MOE_PASSES_PARALLELISM_PASSES_H

#include "dialects/moe/IR/MoeOps.h"
#include "passes/Parallelism/PlanOptions.h"

#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::moe {

#define GEN_PASS_DECL
#include "passes/Parallelism/Passes.h.inc"

/// moe-assign-parallelism's options as Passes.td declares them, for the
/// pipelines and tools that offer them again (ForwardedOption, sameAs): their
/// names, descriptions, defaults and values live only there.
struct AssignParallelismDeclaredOptions {
  Pass::Option<std::string> &mesh;
  Pass::Option<int64_t> &tokens;
  Pass::Option<cost::Policy> &policy;
  Pass::Option<int64_t> &ep;
  Pass::Option<int64_t> &tp;
  Pass::Option<int64_t> &attentionTp;
  Pass::Option<DuplicateTokens> &duplicateTokens;
  Pass::Option<PlanReport> &report;
  Pass::Option<std::string> &reportFile;
};
AssignParallelismDeclaredOptions &declaredAssignParallelismOptions();

#define GEN_PASS_REGISTRATION
#include "passes/Parallelism/Passes.h.inc"

} // namespace mlir::moe

#endif // MOE_PASSES_PARALLELISM_PASSES_H
