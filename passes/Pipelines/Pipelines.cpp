//===- Pipelines.cpp - the moe-compile pipeline ---------------------------===//

#include "passes/Pipelines/Pipelines.h"

#include "passes/Conversion/MoeToMoert/Passes.h"
#include "passes/Conversion/MoertToEmitC/Passes.h"
#include "passes/Parallelism/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

namespace {
/// Stands in for a pipeline whose options cannot be honoured: a
/// PassPipelineRegistration builder has no way to fail.
struct RejectOptionsPass
    : public PassWrapper<RejectOptionsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(RejectOptionsPass)
  explicit RejectOptionsPass(std::string message) : message(message) {}
  StringRef getArgument() const override { return "moe-reject-options"; }
  void runOnOperation() override {
    getOperation().emitError() << message;
    signalPassFailure();
  }
  std::string message;
};
} // namespace

LogicalResult mlir::moe::buildCompilePipeline(OpPassManager &pm,
                                              const CompileOptions &options) {
  if (options.fuse != "none") {
    pm.addPass(std::make_unique<RejectOptionsPass>(
        "moe-compile: fuse=" + options.fuse +
        " is not available (there is no moe-fuse-kernels pass yet); use "
        "fuse=none"));
    return failure();
  }
  pm.addPass(createCanonicalizerPass());
  AssignParallelismOptions plan;
  plan.mesh = options.mesh;
  plan.tokens = options.tokens;
  plan.policy = options.policy;
  plan.ep = options.ep;
  plan.tp = options.tp;
  plan.report = options.report;
  pm.addPass(createAssignParallelism(plan));
  LowerToRuntimeOptions lower;
  lower.tokens = options.tokens;
  pm.addPass(createLowerToRuntime(lower));
  // Shared rank coordinates and views.
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(moert::createMoertToEmitC());
  return success();
}

void mlir::moe::registerPipelines() {
  PassPipelineRegistration<CompileOptions>(
      "moe-compile",
      "import-level moe module to the EmitC of a compiled model: "
      "canonicalize, moe-assign-parallelism, moe-lower-to-runtime, "
      "moert-to-emitc",
      [](OpPassManager &pm, const CompileOptions &options) {
        (void)buildCompilePipeline(pm, options);
      });
}
