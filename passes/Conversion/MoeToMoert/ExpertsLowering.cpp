//===- ExpertsLowering.cpp - routed experts and token permutation ---------===//
//
// dispatch, experts, fused_experts, combine and fused_combine to moert, and
// the packed gate_up weight (tensor.concat) the fused experts read.
//
//===----------------------------------------------------------------------===//

#include "passes/Conversion/MoeToMoert/MoeToMoert.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::moe;
using moert::ViewOp;
using moert::ViewType;

namespace {

struct DispatchLowering : OpLoweringOf<DispatchOp> {
  LogicalResult analyze(DispatchOp dispatch,
                        LoweringState &state) const override {
    state.setBound(dispatch.getResult(), state.bound(dispatch.getCapacity()));
    return success();
  }
  LogicalResult emit(DispatchOp dispatch, LoweringState &state) const override {
    auto ids = cast<ShapedType>(dispatch.getExpertIds().getType());
    auto buf = cast<ShapedType>(dispatch.getResult().getType());
    Value result = state.newView(dispatch.getResult());
    moert::DispatchOp::create(
        state.getBuilder(), dispatch.getLoc(), state.getCtx(),
        state.view(dispatch.getInput()), state.view(dispatch.getExpertIds()),
        state.view(dispatch.getSlots()), state.optView(dispatch.getWeights()),
        result, state.getTokens(), hiddenOf(dispatch.getInput()),
        ids.getDimSize(1), buf.getDimSize(0),
        state.i64(dispatch.getCapacity()));
    return success();
  }
};

/// The analysis routed experts (fused or not) share: the result at the
/// input's bound, and experts sliced over tp must hold F-slices. moert
/// reads the gate's counts as the experts' row counts (exchanged at the
/// to_experts all-to-all with expert parallelism): a use the moe IR does
/// not show.
template <typename ExpertsOpTy>
LogicalResult analyzeRouted(ExpertsOpTy experts, LoweringState &state) {
  Value input = experts.getInput();
  state.setBound(experts.getResult(), state.bound(input));
  auto a2a = input.getDefiningOp<AllToAllOp>();
  // Only the exchange to the experts carries their row counts.
  if (a2a && a2a.getDirection() != AllToAllDirection::to_experts)
    return experts.emitError() << "convert-moe-to-moert needs the experts' "
                                  "input to come from a to_experts "
                                  "moe.all_to_all, not from_experts";
  if (a2a && a2a.getSlices() > 1 &&
      failed(checkSliced(experts, experts.getDownWeight(), a2a.getSlices())))
    return failure();
  if (DispatchOp dispatch = dispatchOf(input))
    if (Value counts = gateCounts(dispatch.getExpertIds()))
      state.addHiddenUse(counts, a2a ? a2a.getOperation() : experts);
  return success();
}

/// The rows of routed experts: the row counts of each expert's blocks and
/// the rows each expert holds.
struct ExpertRows {
  Value rows, rowsPerExpert;
  int64_t blocks;
};

template <typename ExpertsOpTy>
FailureOr<ExpertRows> expertRows(ExpertsOpTy experts, LoweringState &state) {
  Value input = experts.getInput();
  DispatchOp dispatch = dispatchOf(input);
  Value counts = dispatch ? gateCounts(dispatch.getExpertIds()) : Value();
  if (!counts)
    return experts.emitError()
           << "convert-moe-to-moert needs the experts' input to come from "
              "a moe.dispatch of a moe.gate (for the per-expert row counts)";
  auto a2a = input.getDefiningOp<AllToAllOp>();
  ExpertRows r;
  r.rows = a2a ? state.exchangedRows(a2a.getResult()) : state.view(counts);
  r.blocks = a2a ? a2a.getGroupSize() : 1;
  // After the exchange each expert holds G blocks of C rows.
  r.rowsPerExpert = state.i64(dispatch.getCapacity());
  if (a2a) {
    OpBuilder &builder = state.getBuilder();
    r.rowsPerExpert = arith::MulIOp::create(
        builder, experts.getLoc(), r.rowsPerExpert,
        arith::ConstantIntOp::create(builder, experts.getLoc(), r.blocks, 64));
  }
  return r;
}

} // namespace

void mlir::moe::emitQuantizedFfn(LoweringState &state, Location loc,
                                 Activation activation, Value gate, Value up,
                                 Value down, int64_t ffn, Value input,
                                 Value output, Value rows, int64_t experts,
                                 Value rowsPerExpert, int64_t blocks) {
  moert::QuantizedExpertsOp::create(
      state.getBuilder(), loc, state.getCtx(), activation, hiddenOf(gate), ffn,
      state.getWeightFormat(), state.getBlockRows(), state.getBlockCols(),
      state.view(gate), state.scaleView(gate), state.view(up),
      state.scaleView(up), state.view(down), state.scaleView(down), input,
      output, rows, experts, rowsPerExpert, blocks);
}

namespace {

/// Whether gated experts need the stage calls: moert_quantized_experts has
/// neither biases nor swiglu_clamped (gpt-oss), so quantized ones with
/// either run staged too, through moert_quantized_experts_linear.
bool runsStaged(ExpertsOp experts, const LoweringState &state) {
  if (!experts.isGated())
    return false;
  if (!state.isQuantized(experts.getGateWeight()))
    return true;
  return experts.getGateBias() || experts.getUpBias() ||
         experts.getDownBias() ||
         experts.getActivation() == Activation::swiglu_clamped;
}

/// Whether the staged hidden act(gate) * up is stored in bf16 before the down
/// GEMM: before bf16 weights, as moert_experts stores it (and transformers).
bool bf16Hidden(ExpertsOp experts, const LoweringState &state) {
  Value down = experts.getDownWeight();
  return !state.isQuantized(down) &&
         cast<ShapedType>(down.getType()).getElementType().isBF16();
}

struct ExpertsLowering : OpLoweringOf<ExpertsOp> {
  LogicalResult analyze(ExpertsOp experts,
                        LoweringState &state) const override {
    if (failed(analyzeRouted(experts, state)))
      return failure();
    if (runsStaged(experts, state)) {
      // Two fp32 [E, C, F] intermediates, C at the input's bound, and the
      // bf16 hidden after them.
      int64_t rows = state.staticElements(experts.getInput()) /
                     cast<ShapedType>(experts.getType()).getDimSize(2);
      int64_t elements = mulSizes(rows, experts.getFfnSize());
      int64_t bytes = mulSizes(2, alignTo(mulSizes(elements, 4)));
      if (bf16Hidden(experts, state))
        bytes += alignTo(mulSizes(elements, 2));
      state.addScratch(experts, bytes);
    }
    return success();
  }
  LogicalResult emit(ExpertsOp experts, LoweringState &state) const override {
    FailureOr<ExpertRows> r = expertRows(experts, state);
    if (failed(r))
      return failure();
    Value output = state.newView(experts.getResult());
    if (runsStaged(experts, state))
      return emitStages(experts, *r, output, state);
    if (state.isQuantized(experts.getGateWeight())) {
      auto type = cast<ShapedType>(experts.getInput().getType());
      emitQuantizedFfn(state, experts.getLoc(), experts.getActivation(),
                       experts.getGateWeight(), experts.getUpWeight(),
                       experts.getDownWeight(), experts.getFfnSize(),
                       state.view(experts.getInput()), output, r->rows,
                       type.getDimSize(0), r->rowsPerExpert, r->blocks);
      return success();
    }
    // A plain FFN (fc1 + bias, act, fc2 + bias) is one call in both modes.
    Location loc = experts.getLoc();
    auto type = cast<ShapedType>(experts.getInput().getType());
    Value biasIf =
        state.downBiasIf(experts.getDownWeight(), experts.getDownBias(), loc);
    moert::ExpertsOp::create(
        state.getBuilder(), loc, state.getCtx(), Value(),
        state.view(experts.getUpWeight()), state.optView(experts.getUpBias()),
        state.view(experts.getDownWeight()),
        state.optView(experts.getDownBias()), biasIf, experts.getActivation(),
        type.getDimSize(2), experts.getFfnSize(),
        state.view(experts.getInput()), output, r->rows, type.getDimSize(0),
        r->rowsPerExpert, r->blocks);
    return success();
  }

  /// A gated FFN as its stage calls, through the fp32 gate and up
  /// intermediates in the op's scratch (and the bf16 hidden before bf16 down
  /// weights); each bias is one more stage after its GEMM. Quantized
  /// weights stay quantized: their GEMMs dequantize inside the tile.
  static LogicalResult emitStages(ExpertsOp experts, const ExpertRows &r,
                                  Value output, LoweringState &state) {
    OpBuilder &builder = state.getBuilder();
    Location loc = experts.getLoc();
    Value ctx = state.getCtx();
    auto type = cast<ShapedType>(experts.getInput().getType());
    int64_t e = type.getDimSize(0), hidden = type.getDimSize(2),
            ffn = experts.getFfnSize();
    // gate/up [E, C, F] fp32 at the input's row bound, side by side.
    int64_t elements = state.staticElements(experts.getInput()) / hidden * ffn;
    auto f32 =
        ViewType::get(builder.getContext(), builder.getF32Type(), elements);
    int64_t first = state.scratchOffsetOf(experts) / 4;
    Value h = ViewOp::create(builder, loc, f32, state.getArena(), first);
    Value u = ViewOp::create(builder, loc, f32, state.getArena(),
                             first + alignTo(elements * 4) / 4);
    Value act = h;
    if (bf16Hidden(experts, state))
      act = ViewOp::create(
          builder, loc,
          ViewType::get(builder.getContext(), builder.getBF16Type(), elements),
          state.getArena(),
          (state.scratchOffsetOf(experts) + 2 * alignTo(elements * 4)) / 2);
    Value in = state.view(experts.getInput());
    auto linear = [&](Value w, Value x, Value y, int64_t n, int64_t k) {
      if (state.isQuantized(w))
        moert::QuantizedExpertsLinearOp::create(
            builder, loc, ctx, state.getWeightFormat(), state.getBlockRows(),
            state.getBlockCols(), state.view(w), state.scaleView(w), x, y,
            r.rows, e, r.rowsPerExpert, r.blocks, n, k);
      else
        moert::ExpertsLinearOp::create(builder, loc, ctx, state.view(w), x, y,
                                       r.rows, e, r.rowsPerExpert, r.blocks, n,
                                       k);
    };
    auto addBias = [&](Value bias, Value x, int64_t n) {
      if (bias)
        moert::ExpertsBiasAddOp::create(builder, loc, ctx, state.view(bias), x,
                                        x, r.rows, e, r.rowsPerExpert, r.blocks,
                                        n);
    };
    // With F sliced over tp every slice would add the down bias: the staged
    // form has no first-slice condition yet.
    if (state.downBiasIf(experts.getDownWeight(), experts.getDownBias(), loc))
      return experts.emitError()
             << "convert-moe-to-moert cannot yet lower a down bias of gated "
                "experts sliced over tp";
    linear(experts.getGateWeight(), in, h, ffn, hidden);
    addBias(experts.getGateBias(), h, ffn);
    linear(experts.getUpWeight(), in, u, ffn, hidden);
    addBias(experts.getUpBias(), u, ffn);
    // E * C * F at this step's capacity (unused rows hold zeros).
    Value count = arith::MulIOp::create(
        builder, loc, r.rowsPerExpert,
        arith::ConstantIntOp::create(builder, loc, e * ffn, 64));
    if (experts.getActivation() == Activation::swiglu_clamped) {
      moert::SwigluClampedOp::create(
          builder, loc, ctx, h, u, act, count,
          builder.getF32FloatAttr(
              experts.getSwigluAlphaAttr().getValueAsDouble()),
          builder.getF32FloatAttr(
              experts.getSwigluLimitAttr().getValueAsDouble()));
    } else {
      moert::ActivationOp::create(builder, loc, ctx, experts.getActivation(), h,
                                  h, count);
      moert::MultiplyOp::create(builder, loc, ctx, h, u, act, count);
    }
    linear(experts.getDownWeight(), act, output, hidden, ffn);
    addBias(experts.getDownBias(), output, hidden);
    return success();
  }
};

struct FusedExpertsLowering : OpLoweringOf<FusedExpertsOp> {
  LogicalResult analyze(FusedExpertsOp experts,
                        LoweringState &state) const override {
    if (Value shared = experts.getSharedResult())
      state.setBound(shared, state.bound(experts.getSharedInput()));
    return analyzeRouted(experts, state);
  }
  LogicalResult emit(FusedExpertsOp experts,
                     LoweringState &state) const override {
    FailureOr<ExpertRows> r = expertRows(experts, state);
    if (failed(r))
      return failure();
    auto type = cast<ShapedType>(experts.getInput().getType());
    Value output = state.newView(experts.getResult());
    Value sharedInput = state.optView(experts.getSharedInput());
    Value sharedOutput =
        sharedInput ? state.newView(experts.getSharedResult()) : Value();
    moert::FusedExpertsOp::create(
        state.getBuilder(), experts.getLoc(), state.getCtx(),
        experts.getActivation(), type.getDimSize(2), experts.getFfnSize(),
        state.view(experts.getGateUp()), state.view(experts.getDownWeight()),
        state.view(experts.getInput()), output, r->rows, type.getDimSize(0),
        r->rowsPerExpert, r->blocks,
        sharedInput ? experts.getSharedFfnSize() : 0,
        state.optView(experts.getSharedGateUp()),
        state.optView(experts.getSharedDownWeight()), sharedInput, sharedOutput,
        sharedInput ? state.getTokens() : Value());
    return success();
  }
};

/// The dispatch of the rows a combine reads (through the from_experts
/// all-to-all with expert parallelism), for the capacity.
FailureOr<DispatchOp> combinedDispatch(Operation *combine, Value rows) {
  if (auto a2a = rows.getDefiningOp<AllToAllOp>())
    rows = a2a.getInput();
  Value input = routedExpertsInput(rows);
  if (DispatchOp dispatch = input ? dispatchOf(input) : DispatchOp())
    return dispatch;
  return combine->emitError() << "convert-moe-to-moert needs the combined "
                                 "rows to come from moe.experts on a "
                                 "moe.dispatch (for the capacity)";
}

struct CombineLowering : OpLoweringOf<CombineOp> {
  LogicalResult analyze(CombineOp combine,
                        LoweringState &state) const override {
    state.setBound(combine.getResult(), state.bound(combine.getExpertIds()));
    return success();
  }
  LogicalResult emit(CombineOp combine, LoweringState &state) const override {
    FailureOr<DispatchOp> dispatch =
        combinedDispatch(combine, combine.getInput());
    if (failed(dispatch))
      return failure();
    auto ids = cast<ShapedType>(combine.getExpertIds().getType());
    auto in = cast<ShapedType>(combine.getInput().getType());
    Value result = state.newView(combine.getResult());
    moert::CombineOp::create(
        state.getBuilder(), combine.getLoc(), state.getCtx(),
        state.view(combine.getInput()), state.view(combine.getExpertIds()),
        state.view(combine.getSlots()), state.optView(combine.getWeights()),
        Value(), result, state.getTokens(), in.getDimSize(2), ids.getDimSize(1),
        in.getDimSize(0), state.i64(dispatch->getCapacity()));
    return success();
  }
};

/// Whether the layer's residual add folds into `fused`: the layer yields
/// it and nothing after it reads the layer input, which it then updates in
/// place (the kernel reads x and the addend row by row before writing).
bool foldsResidual(FusedCombineOp fused) {
  Value result = fused.getResult();
  if (!result.hasOneUse() || !isa<YieldOp>(*result.getUsers().begin()))
    return false;
  auto layer = fused->getParentOfType<LayerOp>();
  return llvm::all_of(layer.getBodyInput().getUsers(), [&](Operation *user) {
    return user == fused || user->getBlock() != fused->getBlock() ||
           user->isBeforeInBlock(fused);
  });
}

struct FusedCombineLowering : OpLoweringOf<FusedCombineOp> {
  LogicalResult analyze(FusedCombineOp fused,
                        LoweringState &state) const override {
    state.setBound(fused.getResult(), state.bound(fused.getExpertIds()));
    if (foldsResidual(fused))
      state.keepOutOfArena(fused.getResult()); // written into the layer input
    return success();
  }
  LogicalResult emit(FusedCombineOp fused,
                     LoweringState &state) const override {
    FailureOr<DispatchOp> dispatch = combinedDispatch(fused, fused.getInput());
    if (failed(dispatch))
      return failure();
    Value out, addend;
    if (foldsResidual(fused)) {
      out = addend = state.view(fused->getParentOfType<LayerOp>().getInput());
      state.setView(fused.getResult(), out);
    } else {
      out = state.newView(fused.getResult());
    }
    auto ids = cast<ShapedType>(fused.getExpertIds().getType());
    auto in = cast<ShapedType>(fused.getInput().getType());
    moert::FusedCombineOp::create(
        state.getBuilder(), fused.getLoc(), state.getCtx(),
        state.view(fused.getInput()), state.view(fused.getExpertIds()),
        state.view(fused.getSlots()), state.optView(fused.getWeights()),
        state.optView(fused.getMlpOutput()),
        state.optView(fused.getCoefWeight()),
        state.optView(fused.getCoefBias()), state.optView(fused.getShared()),
        state.optView(fused.getSharedGateWeight()), state.optView(fused.getX()),
        addend, out, state.getTokens(), in.getDimSize(2), ids.getDimSize(1),
        in.getDimSize(0), state.i64(dispatch->getCapacity()));
    return success();
  }
};

/// A packed gate_up weight: a tensor.concat of weight arguments (made by
/// moe-fuse-kernels) that init loads part by part into one state slot.
struct PackedWeightLowering : OpLoweringOf<tensor::ConcatOp> {
  bool allowedOutsideLayers() const override { return true; }
  LogicalResult analyze(tensor::ConcatOp concat,
                        LoweringState &state) const override {
    auto func = concat->getParentOfType<func::FuncOp>();
    if (!llvm::all_of(concat.getOperands(), [&](Value v) {
          auto arg = dyn_cast<BlockArgument>(v);
          return arg && arg.getOwner()->getParentOp() == func &&
                 arg.hasOneUse();
        }))
      return concat.emitError()
             << "convert-moe-to-moert lowers 'tensor.concat' only as a "
                "packed weight: weight arguments that nothing else reads";
    state.keepOutOfArena(concat.getResult()); // state, not arena
    return success();
  }
  LogicalResult emit(tensor::ConcatOp, LoweringState &) const override {
    return success(); // loaded by init
  }
};

} // namespace

void mlir::moe::populateExpertsLowerings(LoweringSet &lowerings) {
  lowerings.add<DispatchLowering, ExpertsLowering, FusedExpertsLowering,
                CombineLowering, FusedCombineLowering, PackedWeightLowering>();
}
