//===- FuseKernels.cpp - moe-fuse-kernels ---------------------------------===//

#include "passes/Fusion/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_FUSEKERNELS
#include "passes/Fusion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// gate -> fused_gate (one kernel after the router GEMM) when the logits
/// feed nothing else: the unfused stages would otherwise share them.
struct FuseGate : public OpRewritePattern<GateOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GateOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.getLogits().hasOneUse())
      return rewriter.notifyMatchFailure(op, "logits have another user");
    rewriter.replaceOpWithNewOp<FusedGateOp>(
        op, op.getLogits(), op.getCorrectionBias(), op.getRouting());
    return success();
  }
};

/// combine -> fused_combine with an empty epilogue: the op the epilogue
/// patterns grow and the lowering maps to the fused combine kernel.
struct FuseCombine : public OpRewritePattern<CombineOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(CombineOp op,
                                PatternRewriter &rewriter) const override {
    rewriter.replaceOpWithNewOp<FusedCombineOp>(
        op, op.getType(), op.getInput(), op.getExpertIds(), op.getSlots(),
        op.getWeights(), Value(), Value(), Value(), Value(), Value(), Value());
    return success();
  }
};

/// The fused combine feeding `user` through `value`, if `value` has no other
/// user (else the unfused result would still be needed).
static FusedCombineOp soleFusedCombine(Value value) {
  auto fused = value.getDefiningOp<FusedCombineOp>();
  return fused && value.hasOneUse() ? fused : FusedCombineOp();
}

/// residual_mix(fused_combine, mlp) with a learned coefficient -> the mix
/// in the combine's epilogue. It must come before any shared add (the
/// epilogue mixes first) and read the same x as a shared gate would.
struct FuseResidualMix : public OpRewritePattern<ResidualMixOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ResidualMixOp op,
                                PatternRewriter &rewriter) const override {
    FusedCombineOp fused = soleFusedCombine(op.getMoeOutput());
    if (!fused)
      return rewriter.notifyMatchFailure(op, "MoE output is not a fused "
                                             "combine used only here");
    if (!op.getInput() || !op.getCoefBias())
      return rewriter.notifyMatchFailure(op, "needs the learned coefficient");
    if (fused.getMlpOutput() || fused.getShared())
      return rewriter.notifyMatchFailure(op, "epilogue already mixes or adds");
    rewriter.replaceOpWithNewOp<FusedCombineOp>(
        op, op.getType(), fused.getInput(), fused.getExpertIds(),
        fused.getSlots(), fused.getWeights(), op.getMlpOutput(),
        op.getCoefWeight(), op.getCoefBias(), Value(), Value(), op.getInput());
    rewriter.eraseOp(fused);
    return success();
  }
};

/// shared_add(fused_combine, shared) -> the shared add (and its sigmoid
/// gate) in the combine's epilogue.
struct FuseSharedAdd : public OpRewritePattern<SharedAddOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SharedAddOp op,
                                PatternRewriter &rewriter) const override {
    FusedCombineOp fused = soleFusedCombine(op.getRouted());
    if (!fused)
      return rewriter.notifyMatchFailure(op, "routed output is not a fused "
                                             "combine used only here");
    if (fused.getShared())
      return rewriter.notifyMatchFailure(op, "epilogue already adds shared");
    Value x = fused.getX();
    if (op.getInput() && x && x != op.getInput())
      return rewriter.notifyMatchFailure(op, "mix and gate read different x");
    if (op.getInput())
      x = op.getInput();
    rewriter.replaceOpWithNewOp<FusedCombineOp>(
        op, op.getType(), fused.getInput(), fused.getExpertIds(),
        fused.getSlots(), fused.getWeights(), fused.getMlpOutput(),
        fused.getCoefWeight(), fused.getCoefBias(), op.getShared(),
        op.getGateWeight(), x);
    rewriter.eraseOp(fused);
    return success();
  }
};

/// Whether `value` is a function argument (a weight) that nothing else
/// reads: a packing of it can then be applied when it loads.
static bool isSoleUseWeight(Value value) {
  auto arg = dyn_cast<BlockArgument>(value);
  return arg && arg.hasOneUse() &&
         isa<func::FuncOp>(arg.getOwner()->getParentOp());
}

/// Why the gate and up weights of an FFN cannot be packed into one
/// [..., 2F, H] weight at load; empty when they can. One dtype needs no
/// check: the FFN verifiers give every weight the tokens' element type, and
/// dispatch, combine and shared_add keep one element type per layer.
static StringRef packingBlocker(Value gate, Value up) {
  if (!gate)
    return "plain FFN: moert.experts already runs it in one call";
  if (!isSoleUseWeight(gate) || !isSoleUseWeight(up))
    return "gate or up weight is not a function argument used only here";
  return "";
}

/// gate and up stacked along F: [..., F, H] x 2 -> [..., 2F, H].
static Value packGateUp(PatternRewriter &rewriter, Location loc, Value gate,
                        Value up) {
  int64_t dim = cast<RankedTensorType>(gate.getType()).getRank() - 2;
  return tensor::ConcatOp::create(rewriter, loc, dim, ValueRange{gate, up});
}

/// gated experts -> fused_experts on a packed gate_up weight.
struct FuseExperts : public OpRewritePattern<ExpertsOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ExpertsOp op,
                                PatternRewriter &rewriter) const override {
    StringRef blocker = packingBlocker(op.getGateWeight(), op.getUpWeight());
    if (!blocker.empty())
      return rewriter.notifyMatchFailure(op, blocker);
    // Block scales follow each projection's own rows: fp8 gate and up
    // stay two weights (moert.quantized_experts pairs them in one GEMM).
    auto module = op->getParentOfType<ModuleOp>();
    if (module && module->hasAttr(MoeDialect::kWeightQuantAttrName))
      return rewriter.notifyMatchFailure(op, "weights are block-quantized");
    // moe.fused_experts has neither biases nor swiglu_clamped's parameters.
    if (op.getGateBias() || op.getUpBias() || op.getDownBias())
      return rewriter.notifyMatchFailure(op, "gated experts with biases");
    if (op.getActivation() == Activation::swiglu_clamped)
      return rewriter.notifyMatchFailure(op, "swiglu_clamped experts");
    Value gateUp =
        packGateUp(rewriter, op.getLoc(), op.getGateWeight(), op.getUpWeight());
    rewriter.replaceOpWithNewOp<FusedExpertsOp>(
        op, op.getType(), Type(), op.getInput(), gateUp, op.getDownWeight(),
        Value(), Value(), Value(), op.getActivation());
    return success();
  }
};

/// A gated shared expert whose output only the fused combine adds joins the
/// fused experts' grouped GEMMs, where the plan allows: same activation,
/// tokens of this rank (not gathered over tp).
struct FoldSharedExpert : public OpRewritePattern<FusedCombineOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(FusedCombineOp combine,
                                PatternRewriter &rewriter) const override {
    Value shared = combine.getShared();
    auto dense = shared ? shared.getDefiningOp<DenseFfnOp>() : DenseFfnOp();
    if (!dense || !shared.hasOneUse())
      return rewriter.notifyMatchFailure(
          combine, "shared output is not a dense FFN used only here");
    Value rows = combine.getInput();
    if (auto a2a = rows.getDefiningOp<AllToAllOp>())
      rows = a2a.getInput();
    auto experts = rows.getDefiningOp<FusedExpertsOp>();
    if (!experts || experts.getSharedInput())
      return rewriter.notifyMatchFailure(
          combine, "routed rows are not fused experts without a shared one");
    if (dense.getActivation() != experts.getActivation())
      return rewriter.notifyMatchFailure(combine, "activations differ");
    Value x = dense.getInput();
    if (x.getDefiningOp<shard::AllGatherOp>())
      return rewriter.notifyMatchFailure(
          combine, "shared expert is tensor-parallel (gathered tokens)");
    Operation *xDef = x.getDefiningOp();
    if (xDef && (xDef->getBlock() != experts->getBlock() ||
                 !xDef->isBeforeInBlock(experts)))
      return rewriter.notifyMatchFailure(combine,
                                         "shared input is computed later");
    StringRef blocker =
        packingBlocker(dense.getGateWeight(), dense.getUpWeight());
    if (!blocker.empty())
      return rewriter.notifyMatchFailure(combine, blocker);
    if (dense.getUpBias() || dense.getDownBias())
      return rewriter.notifyMatchFailure(combine, "shared expert has biases");
    rewriter.setInsertionPoint(experts);
    Value gateUp = packGateUp(rewriter, dense.getLoc(), dense.getGateWeight(),
                              dense.getUpWeight());
    auto folded = FusedExpertsOp::create(
        rewriter, experts.getLoc(), experts.getResult().getType(),
        dense.getType(), experts.getInput(), experts.getGateUp(),
        experts.getDownWeight(), x, gateUp, dense.getDownWeight(),
        experts.getActivation());
    rewriter.replaceOp(experts, folded.getResult());
    rewriter.replaceOp(dense, folded.getSharedResult());
    return success();
  }
};

struct FuseKernelsPass
    : public mlir::moe::impl::FuseKernelsBase<FuseKernelsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateFuseKernelsPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

void mlir::moe::populateFuseKernelsPatterns(RewritePatternSet &patterns) {
  patterns.add<FuseGate, FuseCombine, FuseResidualMix, FuseSharedAdd,
               FuseExperts, FoldSharedExpert>(patterns.getContext());
}
