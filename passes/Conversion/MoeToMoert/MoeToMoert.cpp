//===- MoeToMoert.cpp - moe tensors to moert calls on planned buffers -----===//
//
// A planned rewrite rather than conversion patterns: the size of the view a
// tensor becomes depends on the value (its token or capacity bound), not on
// its type, and every view's offset comes from one arena plan over the whole
// function. So each model function is walked twice through the per-op rules
// (MoeToMoert.h): once to record bounds and arena needs, then, with the
// arena planned, to emit the moert body in program order.
//
//===----------------------------------------------------------------------===//

#include "passes/Conversion/MoeToMoert/MoeToMoert.h"
#include "passes/Conversion/MoeToMoert/InitLowering.h"
#include "passes/Conversion/MoeToMoert/Passes.h"
#include "passes/OptionChecks.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOMOERT
#include "passes/Conversion/MoeToMoert/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

void mlir::moe::populateMoeToMoertLowerings(LoweringSet &lowerings) {
  populateGatingLowerings(lowerings);
  populateExpertsLowerings(lowerings);
  populateExchangeLowerings(lowerings);
  populateDenseLowerings(lowerings);
  populateDecoderLowerings(lowerings);
  populateGptLowerings(lowerings);
  populateLatentAttentionLowerings(lowerings);
}

namespace {

/// Runs `step` of each op's rule over `func`'s body in program order.
LogicalResult forEachOp(
    func::FuncOp func, const LoweringSet &lowerings,
    llvm::function_ref<LogicalResult(const OpLowering &, Operation *)> step) {
  WalkResult result = func.getBody().front().walk<WalkOrder::PreOrder>(
      [&](Operation *op) -> WalkResult {
        const OpLowering *rule = lowerings.lookup(op);
        if (!rule)
          return op->emitError() << "convert-moe-to-moert cannot lower '"
                                 << op->getName() << "'";
        return step(*rule, op);
      });
  return failure(result.wasInterrupted());
}

/// What every rule assumes of an op before its analysis: its place (in a
/// layer unless the rule says otherwise) and no empty dimension (sizes
/// divide by them, and a view holds at least one element).
LogicalResult checkLowerable(const OpLowering &rule, Operation *op) {
  if (!rule.allowedOutsideLayers() && !op->getParentOfType<LayerOp>())
    return op->emitError() << "convert-moe-to-moert lowers '" << op->getName()
                           << "' only inside a moe.layer";
  for (Type type :
       llvm::concat<const Type>(op->getOperandTypes(), op->getResultTypes()))
    if (auto tensor = dyn_cast<RankedTensorType>(type);
        tensor && llvm::is_contained(tensor.getShape(), 0))
      return op->emitError()
             << "convert-moe-to-moert cannot lower an empty tensor " << type;
  return success();
}

/// Lowers one model function into `@f_init` and `@f_step`.
LogicalResult lowerFunction(func::FuncOp func, const LoweringSet &lowerings,
                            int64_t maxTokens, bool staticCapacity,
                            int64_t maxBatch, int64_t maxSeq,
                            int64_t &peakBytes, int64_t &weightBytes,
                            int64_t &cacheBytes) {
  LoweringState state(func, maxTokens, staticCapacity, maxBatch, maxSeq);
  if (failed(state.bindInput()) || failed(state.collectQuantizedWeights()) ||
      failed(forEachOp(func, lowerings,
                       [&](const OpLowering &rule, Operation *op) {
                         state.visit(op);
                         if (failed(checkLowerable(rule, op)))
                           return failure();
                         return rule.analyzeOp(op, state);
                       })))
    return failure();
  state.computeLiveRanges();

  InitLowering init(state);
  if (failed(init.placeWeights()))
    return failure();
  weightBytes = init.getWeightBytes();
  cacheBytes = init.getCacheBytes();
  FailureOr<int64_t> peak = state.planArena(addSizes(weightBytes, cacheBytes));
  if (failed(peak) || failed(init.emitInit()))
    return failure();
  peakBytes = *peak;

  Block *body = state.beginStep();
  init.emitWeightViews();
  if (failed(forEachOp(func, lowerings,
                       [&](const OpLowering &rule, Operation *op) {
                         if (failed(state.checkOperandsLowered(op)))
                           return failure();
                         return rule.emitOp(op, state);
                       }))) {
    delete body;
    return failure();
  }
  state.finishStep(body);
  init.emitKeptGroups();
  return success();
}

struct ConvertMoeToMoertPass
    : public mlir::moe::impl::ConvertMoeToMoertBase<ConvertMoeToMoertPass> {
  using ConvertMoeToMoertBase::ConvertMoeToMoertBase;
  friend ConvertMoeToMoertDeclaredOptions &
  mlir::moe::declaredConvertMoeToMoertOptions();

  LogicalResult initializeOptions(
      StringRef options,
      function_ref<LogicalResult(const Twine &)> errorHandler) override {
    if (failed(ConvertMoeToMoertBase::initializeOptions(options, errorHandler)))
      return failure();
    if (failed(checkGivenPositive(getArgument(), tokens, errorHandler)) ||
        failed(checkGivenPositive(getArgument(), maxBatch, errorHandler)))
      return failure();
    return checkGivenPositive(getArgument(), maxSeq, errorHandler);
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    int64_t maxTokens = tokens;
    constexpr StringLiteral kMaxTokens = "moert.max_tokens";
    if (maxTokens == 0)
      if (auto attr = module->getAttrOfType<IntegerAttr>(kMaxTokens)) {
        maxTokens = attr.getInt();
        if (maxTokens <= 0) {
          module.emitError()
              << "'" << kMaxTokens << "' must be positive, got " << maxTokens;
          return signalPassFailure();
        }
      }
    if (maxTokens <= 0) {
      module.emitError() << "convert-moe-to-moert needs the most tokens per "
                            "rank per step: pass tokens=N or set '"
                         << kMaxTokens << "' on the module";
      return signalPassFailure();
    }
    Builder b(module.getContext());
    module->setAttr(kMaxTokens, b.getI64IntegerAttr(maxTokens));
    LoweringSet lowerings;
    populateMoeToMoertLowerings(lowerings);
    for (auto func :
         llvm::make_early_inc_range(module.getOps<func::FuncOp>())) {
      if (func.isExternal())
        continue;
      int64_t peak = 0, weightBytes = 0, cacheBytes = 0;
      if (failed(lowerFunction(func, lowerings, maxTokens, staticCapacity,
                               maxBatch, maxSeq, peak, weightBytes,
                               cacheBytes)))
        return signalPassFailure();
      func->setAttr("moert.peak_bytes", b.getI64IntegerAttr(peak));
      func->setAttr("moert.weight_bytes", b.getI64IntegerAttr(weightBytes));
      func->setAttr("moert.cache_bytes", b.getI64IntegerAttr(cacheBytes));
      if (report)
        llvm::outs() << "buffer plan @" << func.getSymName() << ": tokens "
                     << maxTokens << ", activation arena " << peak
                     << " bytes per rank (peak), weights " << weightBytes
                     << " bytes per rank\n";
    }
    // The tp collectives were their only users.
    for (auto grid : llvm::make_early_inc_range(module.getOps<shard::GridOp>()))
      grid.erase();
  }
};

} // namespace

ConvertMoeToMoertDeclaredOptions &
mlir::moe::declaredConvertMoeToMoertOptions() {
  // A pass that never runs holds the declarations.
  static ConvertMoeToMoertPass pass;
  static ConvertMoeToMoertDeclaredOptions options{pass.staticCapacity,
                                                  pass.maxBatch, pass.maxSeq};
  return options;
}
