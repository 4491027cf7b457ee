//===- Pipelines.cpp - the moe-compile pipeline ---------------------------===//

#include "passes/Pipelines/Pipelines.h"

#include "passes/Conversion/MoeToMoert/Passes.h"
#include "passes/Conversion/MoertToEmitC/Passes.h"
#include "passes/Fusion/Passes.h"
#include "passes/OptionChecks.h"
#include "passes/Parallelism/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

moe::AssignParallelismOptions
mlir::moe::assignParallelismOptions(const CompileOptions &options) {
  AssignParallelismOptions plan;
  plan.mesh = options.mesh;
  plan.tokens = options.tokens;
  plan.policy = options.policy;
  plan.ep = options.ep;
  plan.tp = options.tp;
  plan.attentionTp = options.attentionTp;
  plan.duplicateTokens = options.duplicateTokens;
  plan.report = options.report;
  plan.reportFile = options.reportFile;
  return plan;
}

LogicalResult mlir::moe::buildCompilePipeline(OpPassManager &pm,
                                              const CompileOptions &options) {
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createAssignParallelism(assignParallelismOptions(options)));
  if (options.fuse)
    pm.addPass(createFuseKernels());
  ConvertMoeToMoertOptions lower;
  lower.tokens = options.tokens;
  lower.staticCapacity = options.staticCapacity;
  lower.maxBatch = options.maxBatch;
  lower.maxSeq = options.maxSeq;
  pm.addPass(createConvertMoeToMoert(lower));
  // Shared rank coordinates and views.
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(moert::createConvertMoertToEmitC());
  return success();
}

void mlir::moe::registerPipelines() {
  // PassPipelineRegistration without its wrapper, for the error handler.
  registerPassPipeline(
      "moe-compile",
      "import-level moe module to the EmitC of a compiled model: "
      "canonicalize, moe-assign-parallelism, moe-fuse-kernels, "
      "convert-moe-to-moert, canonicalize, cse, convert-moert-to-emitc",
      [](OpPassManager &pm, StringRef text,
         function_ref<LogicalResult(const Twine &)> errorHandler) {
        CompileOptions options;
        if (failed(options.parseFromString(text)) ||
            failed(checkGivenPositive("moe-compile", options.tokens,
                                      errorHandler)))
          return failure();
        return buildCompilePipeline(pm, options);
      },
      [](function_ref<void(const mlir::detail::PassOptions &)> optionHandler) {
        optionHandler(CompileOptions());
      });
}
