//===- Pipelines.h - the moe-compile pipeline -------------------*- C++ -*-===//

#ifndef MOE_PASSES_PIPELINES_PIPELINES_H
#define MOE_PASSES_PIPELINES_PIPELINES_H

#include "passes/Parallelism/Passes.h"
#include "passes/Pipelines/ForwardedOption.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir::moe {

struct CompileOptions : public PassPipelineOptions<CompileOptions> {
  // moe-assign-parallelism's (tokens also bounds moe-lower-to-runtime).
  ForwardedOption<std::string> mesh{*this,
                                    declaredAssignParallelismOptions().mesh};
  ForwardedOption<int64_t> tokens{*this,
                                  declaredAssignParallelismOptions().tokens};
  ForwardedOption<cost::Policy> policy{
      *this, declaredAssignParallelismOptions().policy};
  ForwardedOption<int64_t> ep{*this, declaredAssignParallelismOptions().ep};
  ForwardedOption<int64_t> tp{*this, declaredAssignParallelismOptions().tp};
  ForwardedOption<PlanReport> report{*this,
                                     declaredAssignParallelismOptions().report};

  Option<bool> fuse{*this, "fuse",
                    llvm::cl::desc("run moe-fuse-kernels (false: every op "
                                   "lowers to its own runtime kernel)"),
                    llvm::cl::init(true)};
  // moe-lower-to-runtime's, declared again: that pass does not expose its
  // declarations (yet).
  Option<bool> staticCapacity{
      *this, "static-capacity",
      llvm::cl::desc("dropless gates use C = the token bound, so that no "
                     "value is read back during a step (needed to capture "
                     "it in a CUDA graph)"),
      llvm::cl::init(false)};
};

/// canonicalize -> moe-assign-parallelism -> moe-fuse-kernels (fuse=true)
/// -> moe-lower-to-runtime ->
/// moert-to-emitc. Options it cannot honour give a pipeline that fails with
/// a diagnostic (and failure() here).
LogicalResult buildCompilePipeline(OpPassManager &pm,
                                   const CompileOptions &options);

/// Registers --moe-compile.
void registerPipelines();

} // namespace mlir::moe

#endif // MOE_PASSES_PIPELINES_PIPELINES_H
