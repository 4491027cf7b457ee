//===- GptLowering.cpp - LayerNorm, bias add, position embedding ----------===//
//
// The PR-MoE GPT's decoder pieces (docs/Dialects/MoeRationale.md, "The
// PR-MoE GPT"). The position embedding updates the residual stream in place:
// its result is the token embedding's view.
//
//===----------------------------------------------------------------------===//

#include "passes/Conversion/MoeToMoert/MoeToMoert.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

struct LayerNormLowering : OpLoweringOf<LayerNormOp> {
  bool allowedOutsideLayers() const override { return true; }
  LogicalResult analyze(LayerNormOp op, LoweringState &state) const override {
    state.setBound(op.getResult(), state.bound(op.getInput()));
    return success();
  }
  LogicalResult emit(LayerNormOp op, LoweringState &state) const override {
    OpBuilder &b = state.getBuilder();
    Value out = state.newView(op.getResult());
    Value rows = state.countOf(op.getInput());
    state.setCount(op.getResult(), rows);
    moert::LayerNormOp::create(
        b, op.getLoc(), state.getCtx(), state.view(op.getInput()),
        state.view(op.getWeight()), state.optView(op.getBias()), out, rows,
        hiddenOf(op.getInput()),
        b.getF32FloatAttr(op.getEpsilon().convertToDouble()));
    return success();
  }
};

struct BiasAddLowering : OpLoweringOf<BiasAddOp> {
  // Also after the LM head (phimoe's lm_head_bias on the logits).
  bool allowedOutsideLayers() const override { return true; }
  LogicalResult analyze(BiasAddOp op, LoweringState &state) const override {
    state.setBound(op.getResult(), state.bound(op.getInput()));
    return success();
  }
  LogicalResult emit(BiasAddOp op, LoweringState &state) const override {
    Value out = state.newView(op.getResult());
    Value rows = state.countOf(op.getInput());
    state.setCount(op.getResult(), rows);
    moert::BiasAddOp::create(state.getBuilder(), op.getLoc(), state.getCtx(),
                             state.view(op.getInput()),
                             state.view(op.getBias()), out, rows,
                             hiddenOf(op.getInput()));
    return success();
  }
};

/// x += table[positions]: the rows gathered into scratch by
/// moert_embedding (which checks every position against the table), then
/// added in place.
struct PositionEmbeddingLowering : OpLoweringOf<PositionEmbeddingOp> {
  bool allowedOutsideLayers() const override { return true; }
  LogicalResult analyze(PositionEmbeddingOp op,
                        LoweringState &state) const override {
    if (!isa_and_nonnull<EmbeddingOp>(op.getInput().getDefiningOp()) ||
        !op.getInput().hasOneUse())
      return op.emitError() << "convert-moe-to-moert adds positions to the "
                               "token embedding only (its one user)";
    // Positions run up to max-seq - 1: every one must have its row.
    int64_t rows = cast<ShapedType>(op.getTable().getType()).getDimSize(0);
    if (state.getMaxSeq() > rows)
      return op.emitError() << "max-seq " << state.getMaxSeq()
                            << " passes the " << rows
                            << " positions of the position embedding "
                               "(max_position_embeddings)";
    int64_t bound = state.bound(op.getInput());
    state.setBound(op.getResult(), bound);
    state.keepOutOfArena(op.getResult());
    Type element = getElementTypeOrSelf(op.getInput().getType());
    state.addScratch(op,
                     alignTo(mulSizes(mulSizes(bound, hiddenOf(op.getResult())),
                                      elementBytes(element))));
    return success();
  }
  LogicalResult emit(PositionEmbeddingOp op,
                     LoweringState &state) const override {
    OpBuilder &b = state.getBuilder();
    Location loc = op.getLoc();
    auto table = cast<ShapedType>(op.getTable().getType());
    Type element = getElementTypeOrSelf(op.getInput().getType());
    int64_t bound = state.bound(op.getInput()),
            hidden = hiddenOf(op.getResult());
    auto vt = moert::ViewType::get(b.getContext(), element, bound * hidden);
    Value rows =
        moert::ViewOp::create(b, loc, vt, state.getArena(),
                              state.scratchOffsetOf(op) / vt.getElementBytes());
    Value positionCount =
        arith::ConstantIntOp::create(b, loc, table.getDimSize(0), 64);
    Value tokens = state.getTokens();
    moert::EmbeddingOp::create(
        b, loc, state.getCtx(), state.view(op.getPositions()),
        state.view(op.getTable()), rows, tokens, positionCount, hidden);
    Value x = state.view(op.getInput());
    Value count = state.tokenElements(hidden, loc);
    moert::AddOp::create(b, loc, state.getCtx(), x, rows, x, count);
    state.setView(op.getResult(), x);
    return success();
  }
};

} // namespace

void mlir::moe::populateGptLowerings(LoweringSet &lowerings) {
  lowerings
      .add<LayerNormLowering, BiasAddLowering, PositionEmbeddingLowering>();
}
