//===- InputChecks.cpp - what upstream verifiers would crash on -----------===//

#include "compiler/Support/InputChecks.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace mlir;

/// `axis` (the op's `name`) indexes the shape of `tensor`.
static LogicalResult checkTensorAxis(Operation *op, StringRef name,
                                     IntegerAttr axis, Value tensor) {
  auto type = dyn_cast<RankedTensorType>(tensor.getType());
  if (!axis || !type)
    return success(); // the op's own verifier reports it
  std::optional<int64_t> value = axis.getValue().trySExtValue();
  if (value && *value >= 0 && *value < type.getRank())
    return success();
  return op->emitOpError() << name << " = "
                           << llvm::toString(axis.getValue(), 10,
                                             /*Signed=*/true)
                           << " is not a dimension of the rank-"
                           << type.getRank() << " operand " << type;
}

LogicalResult mlir::moe::checkBeforeVerify(Operation *root) {
  WalkResult result = root->walk([](Operation *op) {
    LogicalResult ok =
        TypeSwitch<Operation *, LogicalResult>(op)
            // The collectives' group size is a product of grid dimensions.
            .Case([](shard::GridOp grid) -> LogicalResult {
              for (auto [i, size] : llvm::enumerate(grid.getShape()))
                if (!ShapedType::isDynamic(size) && size <= 0)
                  return grid.emitOpError()
                         << "dimension " << i << " of the grid is " << size
                         << ": a grid has at least one device per dimension";
              return success();
            })
            .Case([](shard::ReduceScatterOp op) {
              return checkTensorAxis(op, "scatter_axis",
                                     op.getScatterAxisAttr(), op.getInput());
            })
            .Case([](shard::ScatterOp op) {
              return checkTensorAxis(op, "scatter_axis",
                                     op.getScatterAxisAttr(), op.getInput());
            })
            .Case([](shard::AllSliceOp op) {
              return checkTensorAxis(op, "slice_axis", op.getSliceAxisAttr(),
                                     op.getInput());
            })
            .Case([](shard::AllToAllOp op) {
              return success(succeeded(checkTensorAxis(op, "split_axis",
                                                       op.getSplitAxisAttr(),
                                                       op.getInput())) &&
                             succeeded(checkTensorAxis(op, "concat_axis",
                                                       op.getConcatAxisAttr(),
                                                       op.getInput())));
            })
            .Default(success());
    return failed(ok) ? WalkResult::interrupt() : WalkResult::advance();
  });
  return failure(result.wasInterrupted());
}

OwningOpRef<ModuleOp>
mlir::moe::parseAndVerifyModule(llvm::SourceMgr &sourceMgr,
                                MLIRContext *context) {
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(
      sourceMgr, ParserConfig(context, /*verifyAfterParse=*/false));
  if (!module || failed(checkBeforeVerify(*module)) || failed(verify(*module)))
    return nullptr;
  return module;
}

namespace {
/// What MlirOptMain's parser would have verified, checked first.
struct VerifyInputPass : public PassWrapper<VerifyInputPass, OperationPass<>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(VerifyInputPass)
  StringRef getArgument() const final { return "moe-verify-input"; }
  StringRef getDescription() const final {
    return "checkBeforeVerify, then verify (moe-opt's input)";
  }
  void runOnOperation() override {
    if (failed(moe::checkBeforeVerify(getOperation())) ||
        failed(verify(getOperation())))
      signalPassFailure();
  }
};
} // namespace

/// Whether -o was on the command line.
static bool isOutputGiven() {
  llvm::cl::Option *output = llvm::cl::getRegisteredOptions().lookup("o");
  return output && output->getNumOccurrences() > 0;
}

/// Whether a pass of the pipeline prints a plan report (table, JSON or SVG)
/// to stdout: moe-assign-parallelism with report= and no report-file=.
static bool pipelinePrintsReport(DialectRegistry &registry,
                                 const MlirOptMainConfig &config) {
  MLIRContext context(registry);
  PassManager pm(&context);
  if (failed(config.setupPassPipeline(pm)))
    return false; // MlirOptMain reports it
  std::string text;
  llvm::raw_string_ostream os(text);
  pm.printAsTextualPipeline(os);
  static const llvm::Regex reportToStdout(
      "moe-assign-parallelism\\{[^}]*report=(table|json|svg) "
      "report-file=[ }]");
  return reportToStdout.match(text);
}

LogicalResult mlir::moe::optMain(int argc, char **argv, StringRef toolName,
                                 DialectRegistry &registry) {
  // MlirOptMain(argc, argv, toolName, registry), with the config changed.
  auto [inputFilename, outputFilename] =
      registerAndParseCLIOptions(argc, argv, toolName, registry);
  llvm::InitLLVM y(argc, argv);
  MlirOptMainConfig config = MlirOptMainConfig::createFromCLOptions();
  if (config.shouldVerifyOnParsing()) {
    MlirOptMainConfig pipeline = config;
    config.verifyOnParsing(false).setPassPipelineSetupFn(
        [pipeline](PassManager &pm) {
          pm.addPass(std::make_unique<VerifyInputPass>());
          return pipeline.setupPassPipeline(pm);
        });
  }
  std::string errorMessage;
  std::unique_ptr<llvm::MemoryBuffer> file =
      openInputFile(inputFilename, &errorMessage);
  // A report asked for on stdout is what stdout shows: the module goes
  // only where -o says.
  if (!isOutputGiven() && pipelinePrintsReport(registry, config))
    outputFilename = "/dev/null";
  std::unique_ptr<llvm::ToolOutputFile> output =
      file ? openOutputFile(outputFilename, &errorMessage) : nullptr;
  if (!output) {
    llvm::errs() << errorMessage << "\n";
    return failure();
  }
  if (failed(MlirOptMain(output->os(), std::move(file), registry, config)))
    return failure();
  output->keep();
  return success();
}
