//===- DenseLowering.cpp - the layer frame, dense FFN and epilogues -------===//
//
// layer and yield (a timed moert.layer, the residual add in place on the
// layer input), the model's return, dense_ffn, residual_mix and shared_add.
//
//===----------------------------------------------------------------------===//

#include "passes/Conversion/MoeToMoert/MoeToMoert.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

struct LayerLowering : OpLoweringOf<LayerOp> {
  bool allowedOutsideLayers() const override { return true; }
  LogicalResult analyze(LayerOp layer, LoweringState &state) const override {
    state.setBound(layer.getBodyInput(), state.bound(layer.getInput()));
    state.setBound(layer.getResult(), state.bound(layer.getInput()));
    return success();
  }
  LogicalResult emit(LayerOp layer, LoweringState &state) const override {
    // x <- x + layer(x) in place: the layer input must die here.
    if (!layer.getInput().hasOneUse())
      return layer.emitError() << "convert-moe-to-moert updates a layer's "
                                  "input in place; it must have one use";
    state.setView(layer.getBodyInput(), state.view(layer.getInput()));
    state.setView(layer.getResult(), state.view(layer.getInput()));
    OpBuilder &builder = state.getBuilder();
    auto timed = moert::LayerOp::create(builder, layer.getLoc(),
                                        state.getStats(), layer.getIndex());
    builder.setInsertionPointToEnd(&timed.getBody().emplaceBlock());
    return success();
  }
};

struct YieldLowering : OpLoweringOf<YieldOp> {
  LogicalResult emit(YieldOp yield, LoweringState &state) const override {
    auto layer = cast<LayerOp>(yield->getParentOp());
    Value in = state.view(layer.getInput());
    Value out = state.view(yield.getValue());
    if (out != in) { // else a fused combine added it
      Value count =
          state.tokenElements(hiddenOf(yield.getValue()), yield.getLoc());
      moert::AddOp::create(state.getBuilder(), yield.getLoc(), state.getCtx(),
                           in, out, in, count);
    }
    state.endLayer();
    OpBuilder &builder = state.getBuilder();
    builder.setInsertionPointAfter(builder.getBlock()->getParentOp());
    return success();
  }
};

struct ReturnLowering : OpLoweringOf<func::ReturnOp> {
  bool allowedOutsideLayers() const override { return true; }
  LogicalResult emit(func::ReturnOp ret, LoweringState &state) const override {
    if (state.isDecoder()) // the results were written into the output views
      return success();
    Block &entry = state.getFunction().getBody().front();
    if (ret.getNumOperands() != 1 ||
        state.view(ret.getOperand(0)) != state.view(entry.getArgument(0)))
      return ret.emitError() << "convert-moe-to-moert expects the model to "
                                "return its updated input";
    return success();
  }
};

struct DenseFfnLowering : OpLoweringOf<DenseFfnOp> {
  LogicalResult analyze(DenseFfnOp dense, LoweringState &state) const override {
    state.setBound(dense.getResult(), state.bound(dense.getInput()));
    // moert_quantized_experts has no biases: they would be lost.
    if (state.isQuantized(dense.getUpWeight()) &&
        (dense.getGateBias() || dense.getUpBias() || dense.getDownBias()))
      return dense.emitError()
             << "convert-moe-to-moert runs block-quantized dense FFNs "
                "without biases (moert_quantized_experts has none)";
    if (dense.getInput().getDefiningOp<shard::AllGatherOp>())
      return checkSliced(dense, dense.getDownWeight(), planOf(dense).getTp());
    return success();
  }
  LogicalResult emit(DenseFfnOp dense, LoweringState &state) const override {
    OpBuilder &builder = state.getBuilder();
    Location loc = dense.getLoc();
    // Tensor parallel: the FFN runs on the tp group's gathered tokens.
    Value rows = state.getTokens();
    if (dense.getInput().getDefiningOp<shard::AllGatherOp>())
      rows =
          arith::MulIOp::create(builder, loc, rows,
                                arith::ConstantIntOp::create(
                                    builder, loc, planOf(dense).getTp(), 64));
    // The output view before the bias predicate: the emitted C++'s order.
    Value output = state.newView(dense.getResult());
    if (state.isQuantized(dense.getUpWeight())) {
      emitQuantizedFfn(state, loc, dense.getActivation(), dense.getGateWeight(),
                       dense.getUpWeight(), dense.getDownWeight(),
                       dense.getFfnSize(), state.view(dense.getInput()), output,
                       Value(), 1, rows, 1);
      return success();
    }
    Value biasIf =
        state.downBiasIf(dense.getDownWeight(), dense.getDownBias(), loc);
    moert::DenseFfnOp::create(
        builder, loc, state.getCtx(), state.optView(dense.getGateWeight()),
        state.view(dense.getUpWeight()), state.optView(dense.getUpBias()),
        state.view(dense.getDownWeight()), state.optView(dense.getDownBias()),
        biasIf, dense.getActivation(), hiddenOf(dense.getInput()),
        dense.getFfnSize(), state.view(dense.getInput()), output, rows);
    return success();
  }
};

struct ResidualMixLowering : OpLoweringOf<ResidualMixOp> {
  LogicalResult analyze(ResidualMixOp mix,
                        LoweringState &state) const override {
    if (!mix.getInput())
      return mix.emitError()
             << "convert-moe-to-moert needs the coefficient form of "
                "moe.residual_mix (the runtime computes the coefficients)";
    state.setBound(mix.getResult(), state.bound(mix.getMoeOutput()));
    return success();
  }
  LogicalResult emit(ResidualMixOp mix, LoweringState &state) const override {
    Value result = state.newView(mix.getResult());
    moert::ResidualMixOp::create(
        state.getBuilder(), mix.getLoc(), state.getCtx(),
        state.view(mix.getInput()), state.view(mix.getCoefWeight()),
        state.optView(mix.getCoefBias()), state.view(mix.getMoeOutput()),
        state.view(mix.getMlpOutput()), result, state.getTokens(),
        hiddenOf(mix.getInput()));
    return success();
  }
};

struct SharedAddLowering : OpLoweringOf<SharedAddOp> {
  LogicalResult analyze(SharedAddOp shared,
                        LoweringState &state) const override {
    state.setBound(shared.getResult(), state.bound(shared.getRouted()));
    return success();
  }
  LogicalResult emit(SharedAddOp shared, LoweringState &state) const override {
    Value result = state.newView(shared.getResult());
    moert::SharedAddOp::create(
        state.getBuilder(), shared.getLoc(), state.getCtx(),
        state.view(shared.getRouted()), state.view(shared.getShared()),
        state.optView(shared.getInput()), state.optView(shared.getGateWeight()),
        result, state.getTokens(), hiddenOf(shared.getRouted()));
    return success();
  }
};

} // namespace

void mlir::moe::populateDenseLowerings(LoweringSet &lowerings) {
  lowerings.add<LayerLowering, YieldLowering, ReturnLowering, DenseFfnLowering,
                ResidualMixLowering, SharedAddLowering>();
}
