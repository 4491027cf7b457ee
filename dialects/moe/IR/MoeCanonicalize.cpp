//===- MoeCanonicalize.cpp - moe folders and canonicalization patterns ----===//
//
// Every rewrite here keeps the values of the op it rewrites: it only removes
// work whose result is known at compile time.
//
//===----------------------------------------------------------------------===//

#include "dialects/moe/IR/MoeOps.h"

#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Keeping all n_group groups masks nothing: group limiting is a no-op.
struct UngroupWhenEveryGroupIsKept : OpRewritePattern<GateOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GateOp gate,
                                PatternRewriter &rewriter) const override {
    RoutingAttr r = gate.getRouting();
    if (!r.isGroupLimited() || r.getTopkGroup() != r.getNGroup())
      return failure();
    auto ungrouped = RoutingAttr::get(
        gate.getContext(), r.getScoring(), r.getTopK(), /*n_group=*/1,
        /*topk_group=*/1, GroupScore::max, r.getNormalize(), r.getNormEpsilon(),
        r.getRoutedScalingFactor(), r.getCapacityFactor(), r.getMinCapacity(),
        r.getDropOrder(), r.getNormP(), r.getJitterEps(), r.getWeights());
    rewriter.modifyOpInPlace(gate, [&] { gate.setRoutingAttr(ungrouped); });
    return success();
  }
};

/// With a capacity factor and a static token count the capacity is a constant.
struct FoldStaticCapacity : OpRewritePattern<GateOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GateOp gate,
                                PatternRewriter &rewriter) const override {
    int64_t tokens = gate.getLogits().getType().getDimSize(0);
    if (gate.getRouting().isDropless() || ShapedType::isDynamic(tokens) ||
        gate.getCapacity().use_empty())
      return failure();
    int64_t capacity =
        gate.getRouting().getCapacity(tokens, gate.getNumExperts());
    Value constant =
        arith::ConstantIndexOp::create(rewriter, gate.getLoc(), capacity);
    rewriter.replaceAllUsesWith(gate.getCapacity(), constant);
    return success();
  }
};

/// Dropless with k = E: every token picks every expert exactly once, so every
/// count and the capacity equal the token count.
struct FoldDroplessFullTopK : OpRewritePattern<GateOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GateOp gate,
                                PatternRewriter &rewriter) const override {
    RoutingAttr r = gate.getRouting();
    if (!r.isDropless() || r.getTopK() != gate.getNumExperts())
      return failure();
    bool changed = false;
    Location loc = gate.getLoc();
    int64_t tokens = gate.getLogits().getType().getDimSize(0);
    if (!gate.getCapacity().use_empty()) {
      Value capacity =
          ShapedType::isDynamic(tokens)
              ? tensor::DimOp::create(rewriter, loc, gate.getLogits(), 0)
                    .getResult()
              : arith::ConstantIndexOp::create(rewriter, loc, tokens)
                    .getResult();
      rewriter.replaceAllUsesWith(gate.getCapacity(), capacity);
      changed = true;
    }
    if (!ShapedType::isDynamic(tokens) && !gate.getCounts().use_empty()) {
      auto type = gate.getCounts().getType();
      auto splat = DenseElementsAttr::get(
          type,
          rewriter.getI32IntegerAttr(static_cast<int32_t>(tokens)).getValue());
      Value counts = arith::ConstantOp::create(rewriter, loc, type, splat);
      rewriter.replaceAllUsesWith(gate.getCounts(), counts);
      changed = true;
    }
    return success(changed);
  }
};

/// softmax(x · 0 + b) = softmax(b) for every token: the mix coefficient is a
/// compile-time constant.
struct ConstantResidualCoefficient : OpRewritePattern<ResidualMixOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ResidualMixOp mix,
                                PatternRewriter &rewriter) const override {
    if (!mix.getCoefWeight())
      return failure();
    DenseFPElementsAttr weight, bias;
    if (!matchPattern(mix.getCoefWeight(), m_Constant(&weight)) ||
        !matchPattern(mix.getCoefBias(), m_Constant(&bias)))
      return failure();
    if (!llvm::all_of(weight.getValues<APFloat>(),
                      [](const APFloat &v) { return v.isZero(); }))
      return failure();
    SmallVector<double, 2> b;
    for (const APFloat &v : bias.getValues<APFloat>())
      b.push_back(v.convertToDouble());
    double top = std::max(b[0], b[1]);
    double e0 = std::exp(b[0] - top), e1 = std::exp(b[1] - top);
    double coefficients[2] = {e0 / (e0 + e1), e1 / (e0 + e1)};
    rewriter.replaceOpWithNewOp<ResidualMixOp>(
        mix, mix.getType(), mix.getMoeOutput(), mix.getMlpOutput(),
        /*input=*/Value(), /*coef_weight=*/Value(), /*coef_bias=*/Value(),
        rewriter.getDenseF64ArrayAttr(coefficients));
    return success();
  }
};

} // namespace

void GateOp::getCanonicalizationPatterns(RewritePatternSet &patterns,
                                         MLIRContext *context) {
  patterns.add<UngroupWhenEveryGroupIsKept, FoldStaticCapacity,
               FoldDroplessFullTopK>(context);
}

void ResidualMixOp::getCanonicalizationPatterns(RewritePatternSet &patterns,
                                                MLIRContext *context) {
  patterns.add<ConstantResidualCoefficient>(context);
}

/// A constant (1, 0) or (0, 1) mix selects one branch.
OpFoldResult ResidualMixOp::fold(FoldAdaptor) {
  std::optional<ArrayRef<double>> coefficients = getCoefficients();
  if (!coefficients)
    return {};
  if ((*coefficients)[0] == 1.0 && (*coefficients)[1] == 0.0)
    return getMoeOutput();
  if ((*coefficients)[0] == 0.0 && (*coefficients)[1] == 1.0)
    return getMlpOutput();
  return {};
}
