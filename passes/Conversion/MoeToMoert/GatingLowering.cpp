//===- GatingLowering.cpp - router, gate and fused_gate to moert ----------===//

#include "passes/Conversion/MoeToMoert/MoeToMoert.h"

using namespace mlir;
using namespace mlir::moe;
using moert::ViewOp;
using moert::ViewType;

namespace {

struct RouterLowering : OpLoweringOf<RouterOp> {
  LogicalResult analyze(RouterOp router, LoweringState &state) const override {
    state.setBound(router.getLogits(), state.bound(router.getInput()));
    return success();
  }
  LogicalResult emit(RouterOp router, LoweringState &state) const override {
    Value logits = state.newView(router.getLogits());
    moert::RouterOp::create(
        state.getBuilder(), router.getLoc(), state.getCtx(),
        state.view(router.getInput()), state.view(router.getWeight()),
        state.optView(router.getBias()), logits, state.getTokens(),
        hiddenOf(router.getInput()),
        cast<ShapedType>(router.getLogits().getType()).getDimSize(1));
    return success();
  }
};

/// Bounds of a gate's results (fused or not): the choices at the tokens'
/// bound, the capacity at the routing's bound for them.
template <typename GateOpTy>
void setGateBounds(GateOpTy gate, LoweringState &state) {
  int64_t s = state.bound(gate.getLogits());
  state.setBound(gate.getExpertIds(), s);
  state.setBound(gate.getWeights(), s);
  state.setBound(gate.getSlots(), s);
  RoutingAttr routing = gate.getRouting();
  // Dropless: C = the largest count <= S (one pick per expert a token).
  state.setBound(
      gate.getCapacity(),
      routing.isDropless() ? s : routing.getCapacity(s, gate.getNumExperts()));
}

/// Records in the layer's statistics the choices a gate (fused or not)
/// dropped at capacity, from its per-expert kept `counts`.
template <typename GateOpTy>
void recordDrops(GateOpTy gate, Value counts, LoweringState &state) {
  moert::RecordDropsOp::create(
      state.getBuilder(), gate.getLoc(), state.getCtx(), state.getStats(),
      gate->template getParentOfType<LayerOp>().getIndex(), counts,
      state.getTokens(),
      cast<ShapedType>(gate.getExpertIds().getType()).getDimSize(1),
      gate.getNumExperts());
}

/// One runtime call per stage, through a scores buffer.
struct GateLowering : OpLoweringOf<GateOp> {
  LogicalResult analyze(GateOp gate, LoweringState &state) const override {
    setGateBounds(gate, state);
    // The scores [S, E] (f32) sit behind the logits, which die at the gate.
    state.addBytesAfter(
        gate.getLogits(),
        alignTo(mulSizes(state.staticElements(gate.getLogits()), 4)));
    return success();
  }
  LogicalResult emit(GateOp gate, LoweringState &state) const override {
    if (state.hasStaticCapacity() && gate.getRouting().isDropless())
      return gate.emitError()
             << "static-capacity needs the fused gate (moe-fuse-kernels): "
                "the gate's stage calls check their ids on the host";
    OpBuilder &builder = state.getBuilder();
    Location loc = gate.getLoc();
    Value ctx = state.getCtx(), tokens = state.getTokens();
    Value logits = gate.getLogits();
    int64_t experts = gate.getNumExperts();
    RoutingAttr routing = gate.getRouting();
    int64_t logitBytes = alignTo(state.staticElements(logits) * 4);
    Value scores = ViewOp::create(
        builder, loc,
        ViewType::get(builder.getContext(), builder.getF32Type(),
                      state.staticElements(logits)),
        state.getArena(), (state.offsetOf(logits) + logitBytes) / 4);
    moert::GateScoresOp::create(builder, loc, ctx, routing, experts,
                                state.view(logits), tokens, scores);
    Value ids = state.newView(gate.getExpertIds()),
          weights = state.newView(gate.getWeights());
    moert::GateSelectOp::create(builder, loc, ctx, routing, experts, scores,
                                state.optView(gate.getCorrectionBias()), tokens,
                                ids, weights);
    Value slots = state.newView(gate.getSlots()),
          counts = state.newView(gate.getCounts());
    state.setI64(gate.getCapacity(),
                 moert::GateSlotsOp::create(builder, loc, builder.getI64Type(),
                                            ctx, routing, experts, ids, weights,
                                            tokens, slots, counts));
    moert::GateNormalizeOp::create(builder, loc, ctx, routing, experts, slots,
                                   tokens, weights);
    recordDrops(gate, counts, state);
    return success();
  }
};

struct FusedGateLowering : OpLoweringOf<FusedGateOp> {
  LogicalResult analyze(FusedGateOp gate, LoweringState &state) const override {
    setGateBounds(gate, state);
    return success();
  }
  LogicalResult emit(FusedGateOp gate, LoweringState &state) const override {
    OpBuilder &builder = state.getBuilder();
    Location loc = gate.getLoc();
    Value ctx = state.getCtx(), tokens = state.getTokens();
    // Outputs last to first: the order the emitted C++ numbers them in.
    Value counts = state.newView(gate.getCounts()),
          slots = state.newView(gate.getSlots()),
          weights = state.newView(gate.getWeights()),
          ids = state.newView(gate.getExpertIds());
    Value cap = moert::GateOp::create(
        builder, loc, builder.getI64Type(), ctx, gate.getRouting(),
        gate.getNumExperts(),
        state.hasStaticCapacity() && gate.getRouting().isDropless()
            ? state.bound(gate.getCapacity())
            : 0,
        state.view(gate.getLogits()), state.optView(gate.getCorrectionBias()),
        tokens, ids, weights, slots, counts);
    state.setI64(gate.getCapacity(), cap);
    recordDrops(gate, counts, state);
    return success();
  }
};

} // namespace

void mlir::moe::populateGatingLowerings(LoweringSet &lowerings) {
  lowerings.add<RouterLowering, GateLowering, FusedGateLowering>();
}
