//===- FuseKernels.cpp - moe-fuse-kernels ---------------------------------===//

#include "passes/Fusion/Passes.h"

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
  patterns.add<FuseGate, FuseCombine, FuseResidualMix, FuseSharedAdd>(
      patterns.getContext());
}
