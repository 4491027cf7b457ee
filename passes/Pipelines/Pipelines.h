//===- Pipelines.h - the moe-compile pipeline -------------------*- C++ -*-===//

#ifndef MOE_PASSES_PIPELINES_PIPELINES_H
#define MOE_PASSES_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir::moe {

struct CompileOptions : public PassPipelineOptions<CompileOptions> {
  Option<std::string> mesh{*this, "mesh",
                           llvm::cl::desc("NODESxGPUS (default: the module's "
                                          "moe.mesh)"),
                           llvm::cl::init("")};
  Option<int64_t> tokens{*this, "tokens",
                         llvm::cl::desc("most tokens per rank per step"),
                         llvm::cl::init(0)};
  Option<std::string> policy{*this, "policy",
                             llvm::cl::desc("latency | throughput"),
                             llvm::cl::init("throughput")};
  Option<int64_t> ep{*this, "ep", llvm::cl::desc("force the EP degree"),
                     llvm::cl::init(0)};
  Option<int64_t> tp{*this, "tp", llvm::cl::desc("force the TP degree"),
                     llvm::cl::init(0)};
  Option<bool> fuse{*this, "fuse",
                    llvm::cl::desc("run moe-fuse-kernels (false: every op "
                                   "lowers to its own runtime kernel)"),
                    llvm::cl::init(true)};
  Option<bool> staticCapacity{
      *this, "static-capacity",
      llvm::cl::desc("dropless gates use C = the token bound, so that no "
                     "value is read back during a step (needed to capture "
                     "it in a CUDA graph)"),
      llvm::cl::init(false)};
  Option<std::string> report{
      *this, "report",
      llvm::cl::desc("print the plan table: none | table | json"),
      llvm::cl::init("none")};
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
