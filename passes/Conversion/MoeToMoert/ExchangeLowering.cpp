//===- ExchangeLowering.cpp - collectives among ranks to moert ------------===//
//
// all_to_all and sync_capacity (expert parallelism), shard.all_gather and
// shard.reduce_scatter (a tensor-parallel dense FFN), shard.all_slice and
// its all_gather (duplicate-token dropping after tensor-parallel attention).
//
//===----------------------------------------------------------------------===//

#include "passes/Conversion/MoeToMoert/MoeToMoert.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"

#include <type_traits>

using namespace mlir;
using namespace mlir::moe;
using moert::ViewOp;

namespace {

struct SyncCapacityLowering : OpLoweringOf<SyncCapacityOp> {
  LogicalResult analyze(SyncCapacityOp sync,
                        LoweringState &state) const override {
    state.setBound(sync.getResult(), state.bound(sync.getCapacity()));
    return success();
  }
  LogicalResult emit(SyncCapacityOp sync, LoweringState &state) const override {
    auto gate = sync.getCapacity().getDefiningOp<FusedGateOp>();
    bool sameOnEveryRank =
        state.hasStaticCapacity() && gate && gate.getRouting().isDropless();
    if (sameOnEveryRank ||
        cast<ShapedType>(sync.getGroups().getType()).getDimSize(1) == 1) {
      // Nothing to sync.
      state.setI64(sync.getResult(), state.i64(sync.getCapacity()));
      return success();
    }
    OpBuilder &builder = state.getBuilder();
    Value group = state.group(sync.getGroups(), sync.getLoc());
    state.setI64(sync.getResult(),
                 moert::AllReduceI64Op::create(
                     builder, sync.getLoc(), builder.getI64Type(),
                     state.getCtx(), group, moert::ReduceOp::max,
                     state.i64(sync.getCapacity())));
    return success();
  }
};

struct AllToAllLowering : OpLoweringOf<AllToAllOp> {
  LogicalResult analyze(AllToAllOp a2a, LoweringState &state) const override {
    int64_t g = a2a.getGroupSize();
    bool to = a2a.getDirection() == AllToAllDirection::to_experts;
    // to_experts: [E, C, H] -> [E_local, G * C, H]; from_experts inverse.
    int64_t in = state.bound(a2a.getInput());
    state.setBound(a2a.getResult(), to ? mulSizes(in, g) : in / g);
    if (to) // the exchanged row counts [E_local, G] (i32) ride along
      state.addBytesAfter(
          a2a.getResult(),
          mulSizes(
              mulSizes(
                  cast<ShapedType>(a2a.getResult().getType()).getDimSize(0), g),
              4));
    return success();
  }
  LogicalResult emit(AllToAllOp a2a, LoweringState &state) const override {
    OpBuilder &builder = state.getBuilder();
    Location loc = a2a.getLoc();
    auto in = cast<ShapedType>(a2a.getInput().getType());
    auto out = cast<ShapedType>(a2a.getResult().getType());
    bool to = a2a.getDirection() == AllToAllDirection::to_experts;
    int64_t local = to ? out.getDimSize(0) : in.getDimSize(0);
    DispatchOp dispatch = a2a.getInput().getDefiningOp<DispatchOp>();
    if (Value expertsInput = routedExpertsInput(a2a.getInput()))
      dispatch = dispatchOf(expertsInput);
    if (!dispatch)
      return a2a.emitError() << "convert-moe-to-moert needs the exchanged "
                                "rows to come from moe.dispatch (for the "
                                "capacity)";
    Value g = state.group(a2a.getGroups(), loc);
    Value capacity = state.i64(dispatch.getCapacity());
    Value send = state.view(a2a.getInput()),
          recv = state.newView(a2a.getResult());
    // moert_all_to_all, or its sliced form for sliced experts.
    auto exchange = [&](AllToAllVariant variant, Value send, Value recv,
                        Value capacity, int64_t hidden) {
      if (a2a.getSlices() == 1)
        moert::AllToAllOp::create(builder, loc, state.getCtx(), g,
                                  a2a.getDirection(), variant, send, recv,
                                  local, capacity, hidden);
      else
        moert::AllToAllSlicedOp::create(
            builder, loc, state.getCtx(), g, a2a.getDirection(), variant, send,
            recv, local, capacity, hidden, a2a.getSlices());
    };
    exchange(a2a.getVariant(), send, recv, capacity, in.getDimSize(2));
    if (!to)
      return success();
    // The gate's counts [E] become the rows of each block [E_local, G],
    // right after the exchanged rows.
    Value counts = gateCounts(dispatch.getExpertIds());
    if (!counts)
      return a2a.emitError() << "convert-moe-to-moert needs the exchanged "
                                "rows' dispatch to read a moe.gate's choices "
                                "(for the per-expert row counts)";
    auto rowsType = moert::ViewType::get(
        builder.getContext(), builder.getI32Type(), local * a2a.getGroupSize());
    int64_t bytes = alignTo(state.staticElements(a2a.getResult()) *
                            elementBytes(out.getElementType()));
    Value rows = ViewOp::create(builder, loc, rowsType, state.getArena(),
                                (state.offsetOf(a2a.getResult()) + bytes) / 4);
    Value one = arith::ConstantIntOp::create(builder, loc, 1, 64);
    exchange(AllToAllVariant::flat, state.view(counts), rows, one, 1);
    state.setExchangedRows(a2a.getResult(), rows);
    return success();
  }
};

/// The {dp, ep, tp} plan of `grid`, whose tp axis groups ranks that hold the
/// same tokens.
PlanAttr planOfGrid(Operation *op, StringRef gridName) {
  auto grid = SymbolTable::lookupNearestSymbolFrom<shard::GridOp>(
      op, StringAttr::get(op->getContext(), gridName));
  if (!grid || grid.getShape().size() != 3 ||
      ShapedType::isDynamicShape(grid.getShape()))
    return PlanAttr();
  ArrayRef<int64_t> shape = grid.getShape();
  return PlanAttr::get(op->getContext(), shape[0], shape[1], shape[2],
                       AllToAllVariant::flat);
}

/// The all_slice that starts `gather`'s layer over the same grid: `gather`
/// then restores the tokens the layer ran a share of.
shard::AllSliceOp tokenShareOf(shard::AllGatherOp gather) {
  auto layer = gather->getParentOfType<LayerOp>();
  shard::AllSliceOp found;
  if (layer)
    layer.walk([&](shard::AllSliceOp slice) {
      if (slice.getGrid() == gather.getGrid())
        found = slice;
    });
  return found;
}

/// Checks what the token share and its gather have in common: tokens (axis
/// 0) over grid axis 2 of a {dp, ep, tp} grid.
template <typename ShardOpTy>
FailureOr<PlanAttr> checkTokenShare(ShardOpTy op, int64_t axis) {
  PlanAttr grid = planOfGrid(op, op.getGrid());
  if (!grid || op.getGridAxes() != ArrayRef<int16_t>{2} || axis != 0)
    return op->emitError()
           << "convert-moe-to-moert lowers '" << op->getName()
           << "' of duplicate-token dropping only over the tokens (axis 0) "
              "and grid axis 2 (tp) of a {dp, ep, tp} grid";
  return grid;
}

/// shard.all_slice of a layer's tokens: this member's share
/// (moert_token_share); the layer's ops then run on the share's rows.
struct TokenShareLowering : OpLoweringOf<shard::AllSliceOp> {
  LogicalResult analyze(shard::AllSliceOp op,
                        LoweringState &state) const override {
    FailureOr<PlanAttr> grid =
        checkTokenShare(op, op.getSliceAxis().getSExtValue());
    if (failed(grid))
      return failure();
    state.setBound(op.getResult(),
                   llvm::divideCeil(state.bound(op.getInput()), grid->getTp()));
    return success();
  }
  LogicalResult emit(shard::AllSliceOp op,
                     LoweringState &state) const override {
    Location loc = op.getLoc();
    OpBuilder &builder = state.getBuilder();
    Value group = state.tpGroup(planOfGrid(op, op.getGrid()), loc);
    Value share = state.newView(op.getResult());
    Value rows = moert::TokenShareOp::create(
        builder, loc, builder.getI64Type(), state.getCtx(), group,
        state.view(op.getInput()), share, hiddenOf(op.getInput()),
        state.countOf(op.getInput()));
    state.setCount(op.getResult(), rows);
    state.setLayerTokens(rows);
    return success();
  }
};

/// The all_gather that ends a token-sharing layer: ceil(S / G) rows from
/// each member put the S rows back in order (moert_token_share's contract).
/// The result is those S rows; the up to G - 1 padding rows the gather also
/// writes sit right after them.
LogicalResult analyzeShareGather(shard::AllGatherOp op, LoweringState &state) {
  FailureOr<PlanAttr> grid =
      checkTokenShare(op, op.getGatherAxis().getSExtValue());
  if (failed(grid))
    return failure();
  int64_t tokens = state.bound(tokenShareOf(op).getInput());
  int64_t gathered = mulSizes(state.bound(op.getInput()), grid->getTp());
  state.setBound(op.getResult(), tokens);
  state.addBytesAfter(
      op.getResult(),
      alignTo(mulSizes(mulSizes(gathered - tokens, hiddenOf(op.getInput())),
                       elementBytes(getElementTypeOrSelf(op.getType())))));
  return success();
}

LogicalResult emitShareGather(shard::AllGatherOp op, LoweringState &state) {
  Location loc = op.getLoc();
  OpBuilder &builder = state.getBuilder();
  PlanAttr grid = planOfGrid(op, op.getGrid());
  auto c = [&](int64_t v) {
    return arith::ConstantIntOp::create(builder, loc, v, 64).getResult();
  };
  state.setLayerTokens(Value());
  Value tokens = state.getTokens();
  // One statement per op: the emitted order must not depend on the
  // compiler's order of evaluating arguments.
  Value roundedUp =
      arith::AddIOp::create(builder, loc, tokens, c(grid.getTp() - 1));
  Value members = c(grid.getTp());
  Value perMember = arith::DivSIOp::create(builder, loc, roundedUp, members);
  Value count = arith::MulIOp::create(builder, loc, perMember,
                                      c(hiddenOf(op.getInput())));
  state.newView(op.getResult()); // the S rows
  Type element = getElementTypeOrSelf(op.getType());
  Value recv = ViewOp::create(
      builder, loc,
      moert::ViewType::get(builder.getContext(), element,
                           mulSizes(state.staticElements(op.getInput()),
                                    grid.getTp())),
      state.getArena(), state.offsetOf(op.getResult()) / elementBytes(element));
  Value group = state.tpGroup(grid, loc);
  moert::AllGatherOp::create(builder, loc, state.getCtx(), group,
                             state.view(op.getInput()), recv, count);
  return success();
}

/// A shard.all_gather / reduce_scatter the parallelism pass puts around a
/// tensor-parallel dense FFN: tokens (axis 0) over grid axis 2 (tp) of the
/// layer's {dp, ep, tp} grid, summing. It becomes `MoertOpTy` over the
/// layer's tp groups.
template <typename ShardOpTy, typename MoertOpTy>
struct TpCollectiveLowering : OpLoweringOf<ShardOpTy> {
  static constexpr bool kGather = std::is_same_v<ShardOpTy, shard::AllGatherOp>;

  LogicalResult analyze(ShardOpTy op, LoweringState &state) const override {
    if constexpr (kGather)
      if (tokenShareOf(op))
        return analyzeShareGather(op, state);
    PlanAttr plan = planOf(op);
    if (!plan)
      return op->emitError()
             << "'" << op->getName() << "' outside a layer with a moe.plan";
    int64_t axis;
    bool sums = true;
    if constexpr (kGather) {
      axis = op.getGatherAxis().getSExtValue();
    } else {
      axis = op.getScatterAxis().getSExtValue();
      sums = op.getReduction() == shard::ReductionKind::Sum;
    }
    ArrayRef<int16_t> axes = op.getGridAxes();
    auto grid = SymbolTable::lookupNearestSymbolFrom<shard::GridOp>(
        op, StringAttr::get(op->getContext(), op.getGrid()));
    SmallVector<int64_t> planShape = {plan.getDp(), plan.getEp(), plan.getTp()};
    if (axes.size() != 1 || axes[0] != 2 || axis != 0 || !sums || !grid ||
        grid.getShape() != ArrayRef<int64_t>(planShape))
      return op->emitError()
             << "convert-moe-to-moert lowers '" << op->getName()
             << "' only over the tokens (axis 0) and grid axis 2 (tp) of its "
                "layer's {dp, ep, tp} grid, summing";
    int64_t in = state.bound(op.getInput());
    state.setBound(op.getResult(),
                   kGather ? mulSizes(in, plan.getTp()) : in / plan.getTp());
    return success();
  }
  LogicalResult emit(ShardOpTy op, LoweringState &state) const override {
    if constexpr (kGather)
      if (tokenShareOf(op))
        return emitShareGather(op, state);
    Location loc = op.getLoc();
    // The count, the receiving view, then the group: the emitted C++'s order.
    Value count = state.tokenElements(
        hiddenOf(kGather ? op.getInput() : op.getResult()), loc);
    Value recv = state.newView(op.getResult());
    Value group = state.tpGroup(planOf(op), loc);
    Value send = state.view(op.getInput());
    MoertOpTy::create(state.getBuilder(), loc, state.getCtx(), group, send,
                      recv, count);
    return success();
  }
};

/// The shard.all_reduce after tensor-parallel attention: the tp group's
/// partial outputs of the same tokens, summed (moert_all_reduce).
struct TpAllReduceLowering : OpLoweringOf<shard::AllReduceOp> {
  LogicalResult analyze(shard::AllReduceOp op,
                        LoweringState &state) const override {
    PlanAttr plan = planOf(op);
    if (!plan || op.getGridAxes() != ArrayRef<int16_t>{2} ||
        op.getReduction() != shard::ReductionKind::Sum ||
        op.getInput().getType() != op.getType())
      return op->emitError()
             << "convert-moe-to-moert lowers 'shard.all_reduce' only as a "
                "sum over grid axis 2 (tp) of its layer's plan";
    state.setBound(op.getResult(), state.bound(op.getInput()));
    return success();
  }
  LogicalResult emit(shard::AllReduceOp op,
                     LoweringState &state) const override {
    Location loc = op.getLoc();
    Value count = state.tokenElements(hiddenOf(op.getInput()), loc);
    Value recv = state.newView(op.getResult());
    Value group = state.tpGroup(planOf(op), loc);
    moert::AllReduceOp::create(state.getBuilder(), loc, state.getCtx(), group,
                               moert::ReduceOp::sum, state.view(op.getInput()),
                               recv, count);
    return success();
  }
};

} // namespace

void mlir::moe::populateExchangeLowerings(LoweringSet &lowerings) {
  lowerings.add<
      AllToAllLowering, SyncCapacityLowering, TpAllReduceLowering,
      TokenShareLowering,
      TpCollectiveLowering<shard::AllGatherOp, moert::AllGatherOp>,
      TpCollectiveLowering<shard::ReduceScatterOp, moert::ReduceScatterOp>>();
}
