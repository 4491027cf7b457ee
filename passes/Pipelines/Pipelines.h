//===- Pipelines.h - the moe-compile pipeline -------------------*- C++ -*-===//

#ifndef MOE_PASSES_PIPELINES_PIPELINES_H
#define MOE_PASSES_PIPELINES_PIPELINES_H

#include "passes/Conversion/MoeToMoert/Passes.h"
#include "passes/Parallelism/Passes.h"
#include "passes/Pipelines/ForwardedOption.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir::moe {

struct CompileOptions : public PassPipelineOptions<CompileOptions> {
  // moe-assign-parallelism's (tokens also bounds convert-moe-to-moert).
  ForwardedOption<std::string> mesh{*this,
                                    declaredAssignParallelismOptions().mesh};
  ForwardedOption<int64_t> tokens{*this,
                                  declaredAssignParallelismOptions().tokens};
  ForwardedOption<cost::Policy> policy{
      *this, declaredAssignParallelismOptions().policy};
  ForwardedOption<int64_t> ep{*this, declaredAssignParallelismOptions().ep};
  ForwardedOption<int64_t> tp{*this, declaredAssignParallelismOptions().tp};
  ForwardedOption<int64_t> attentionTp{
      *this, declaredAssignParallelismOptions().attentionTp};
  ForwardedOption<DuplicateTokens> duplicateTokens{
      *this, declaredAssignParallelismOptions().duplicateTokens};
  ForwardedOption<PlanReport> report{*this,
                                     declaredAssignParallelismOptions().report};
  ForwardedOption<std::string> reportFile{
      *this, declaredAssignParallelismOptions().reportFile};

  Option<bool> fuse{*this, "fuse",
                    llvm::cl::desc("run moe-fuse-kernels (false: every op "
                                   "lowers to its own runtime kernel)"),
                    llvm::cl::init(true)};
  // convert-moe-to-moert's.
  ForwardedOption<bool> staticCapacity{
      *this, declaredConvertMoeToMoertOptions().staticCapacity};
  ForwardedOption<int64_t> maxBatch{
      *this, declaredConvertMoeToMoertOptions().maxBatch};
  ForwardedOption<int64_t> maxSeq{*this,
                                  declaredConvertMoeToMoertOptions().maxSeq};
};

/// moe-assign-parallelism's options as `options` set them.
AssignParallelismOptions assignParallelismOptions(const CompileOptions &options);

/// canonicalize -> moe-assign-parallelism -> moe-fuse-kernels (fuse=true)
/// -> convert-moe-to-moert -> canonicalize, cse -> convert-moert-to-emitc.
/// Options it cannot honour give a pipeline that fails with a diagnostic
/// (and failure() here).
LogicalResult buildCompilePipeline(OpPassManager &pm,
                                   const CompileOptions &options);

/// Registers --moe-compile.
void registerPipelines();

} // namespace mlir::moe

#endif // MOE_PASSES_PIPELINES_PIPELINES_H
