//===- MoeToMoert.cpp - moe tensors to moert calls on planned buffers -----===//
//
// A planned rewrite rather than conversion patterns: the size of the view a
// tensor becomes depends on the value (its token or capacity bound), not on
// its type, and every view's offset comes from one arena plan over the whole
// function. So the pass walks each model function once to find bounds and
// live ranges, plans the arena, then emits the moert body in program order.
//
//===----------------------------------------------------------------------===//

#include "passes/Conversion/MoeToMoert/Passes.h"

#include "passes/Conversion/MoeToMoert/BufferPlan.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::moe {
#define GEN_PASS_DEF_LOWERTORUNTIME
#include "passes/Conversion/MoeToMoert/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using moert::AllocOp;
using moert::BufferType;
using moert::ContextType;
using moert::LoadWeightOp;
using moert::ViewOp;
using moert::ViewType;
using moert::WeightsType;

namespace {

constexpr int64_t kAlignment = 64;

int64_t elementBytes(Type type) {
  return type.isF32() || type.isInteger(32) ? 4 : type.isInteger(64) ? 8 : 2;
}

/// Lowers one model function.
class FunctionLowering {
public:
  FunctionLowering(func::FuncOp func, int64_t maxTokens)
      : func(func), maxTokens(maxTokens), builder(func.getContext()) {}

  LogicalResult run(int64_t &peakBytes, int64_t &weightBytes);

private:
  LogicalResult analyze();
  LogicalResult emit();
  LogicalResult emitOp(Operation *op);

  /// Bound of the single dynamic dimension of `value` (or 0 if static).
  int64_t &bound(Value value) { return bounds[value]; }
  int64_t staticElements(Value value);
  void setBound(Value value, int64_t b) { bounds[value] = b; }

  Value view(Value tensor) { return views.lookup(tensor); }
  Value i64(Value index) { return scalars.lookup(index); }
  ViewType viewTypeOf(Value tensor) {
    return ViewType::get(func.getContext(),
                         cast<ShapedType>(tensor.getType()).getElementType(),
                         staticElements(tensor));
  }

  func::FuncOp func;
  int64_t maxTokens;
  OpBuilder builder;
  DenseMap<Value, int64_t> bounds;
  DenseMap<Value, std::pair<int64_t, int64_t>> ranges; // tensor -> live range
  DenseMap<Operation *, int64_t> points;
  SmallVector<Value> planned;     // tensors placed in the arena, in def order
  DenseMap<Value, Value> views;   // moe tensor -> moert view
  DenseMap<Value, Value> scalars; // moe index -> i64
  Value ctx, weights, tokens, arena;
  int64_t arenaBytes = 0;
  DenseMap<Value, int64_t> offsets; // tensor -> arena byte offset
};

} // namespace

int64_t FunctionLowering::staticElements(Value value) {
  int64_t elements = 1;
  for (int64_t d : cast<ShapedType>(value.getType()).getShape())
    elements *= ShapedType::isDynamic(d) ? bounds.lookup(value) : d;
  return elements;
}

LogicalResult FunctionLowering::analyze() {
  Block &entry = func.getBody().front();
  if (entry.getNumArguments() < 1)
    return func.emitError("a model function takes the tokens x hidden input");
  Value x = entry.getArgument(0);
  setBound(x, maxTokens);
  int64_t point = 0;
  WalkResult result = func.walk<WalkOrder::PreOrder>([&](Operation *op)
                                                         -> WalkResult {
    points[op] = point++;
    if (auto layer = dyn_cast<LayerOp>(op)) {
      if (auto plan = layer->getAttrOfType<PlanAttr>(MoeDialect::kPlanAttrName))
        if (plan.getEp() != 1 || plan.getTp() != 1)
          return layer.emitError()
                 << "moe-lower-to-runtime supports only plans with ep = tp = "
                    "1 so far; layer "
                 << layer.getIndex() << " has ep = " << plan.getEp()
                 << ", tp = " << plan.getTp();
      setBound(layer.getBodyInput(), bounds.lookup(layer.getInput()));
      setBound(layer.getResult(), bounds.lookup(layer.getInput()));
      return WalkResult::advance();
    }
    if (auto router = dyn_cast<RouterOp>(op)) {
      setBound(router.getLogits(), bounds.lookup(router.getInput()));
    } else if (auto gate = dyn_cast<GateOp>(op)) {
      int64_t s = bounds.lookup(gate.getLogits());
      for (Value v : {gate.getExpertIds(), gate.getWeights(), gate.getSlots()})
        setBound(v, s);
      RoutingAttr routing = gate.getRouting();
      // Dropless: C = the largest count <= S (one pick per expert a token).
      setBound(gate.getCapacity(),
               routing.isDropless()
                   ? s
                   : routing.getCapacity(s, gate.getNumExperts()));
    } else if (auto dispatch = dyn_cast<DispatchOp>(op)) {
      setBound(dispatch.getResult(), bounds.lookup(dispatch.getCapacity()));
    } else if (auto experts = dyn_cast<ExpertsOp>(op)) {
      setBound(experts.getResult(), bounds.lookup(experts.getInput()));
    } else if (auto combine = dyn_cast<CombineOp>(op)) {
      setBound(combine.getResult(), bounds.lookup(combine.getExpertIds()));
    } else if (auto dense = dyn_cast<DenseFfnOp>(op)) {
      setBound(dense.getResult(), bounds.lookup(dense.getInput()));
    } else if (auto mix = dyn_cast<ResidualMixOp>(op)) {
      if (!mix.getInput())
        return mix.emitError()
               << "moe-lower-to-runtime needs the coefficient form of "
                  "moe.residual_mix (the runtime computes the coefficients)";
      setBound(mix.getResult(), bounds.lookup(mix.getMoeOutput()));
    } else if (auto shared = dyn_cast<SharedAddOp>(op)) {
      setBound(shared.getResult(), bounds.lookup(shared.getRouted()));
    } else if (auto sync = dyn_cast<SyncCapacityOp>(op)) {
      if (cast<ShapedType>(sync.getGroups().getType()).getDimSize(1) != 1)
        return sync.emitError() << "moe-lower-to-runtime does not lower "
                                   "expert-parallel exchanges yet";
      setBound(sync.getResult(), bounds.lookup(sync.getCapacity()));
    } else if (isa<YieldOp, func::ReturnOp, func::FuncOp>(op)) {
    } else {
      return op->emitError()
             << "moe-lower-to-runtime cannot lower '" << op->getName() << "'";
    }
    return WalkResult::advance();
  });
  if (result.wasInterrupted())
    return failure();

  // Live ranges of the tensors that get arena space: every result of an
  // op inside a layer. A layer's result is its input, updated in place.
  func.walk([&](Operation *op) {
    if (!op->getParentOfType<LayerOp>() || isa<LayerOp>(op))
      return;
    for (Value result : op->getResults()) {
      if (!isa<RankedTensorType>(result.getType()))
        continue;
      int64_t last = points[op];
      for (Operation *user : result.getUsers())
        last = std::max(last, points[user]);
      ranges[result] = {points[op], last};
      planned.push_back(result);
    }
  });
  // moert.experts reads the gate's counts as its row counts: a use the moe
  // IR does not show.
  func.walk([&](ExpertsOp experts) {
    if (auto dispatch = experts.getInput().getDefiningOp<DispatchOp>())
      if (auto gate = dispatch.getExpertIds().getDefiningOp<GateOp>())
        ranges[gate.getCounts()].second =
            std::max(ranges[gate.getCounts()].second, points[experts]);
  });
  return success();
}

LogicalResult FunctionLowering::emit() {
  MLIRContext *context = func.getContext();
  Block &old = func.getBody().front();
  Value x = old.getArgument(0);
  auto xType = cast<RankedTensorType>(x.getType());

  std::vector<PlannedBuffer> buffers;
  for (Value v : planned)
    buffers.push_back(
        {staticElements(v) * elementBytes(getElementTypeOrSelf(v.getType())),
         ranges[v].first, ranges[v].second});
  arenaBytes = planBuffers(buffers, kAlignment);
  for (auto [v, b] : llvm::zip(planned, buffers))
    offsets[v] = b.offset;

  // The new signature: context, weights, tokens of this step, the
  // input/output activations.
  auto ioType = viewTypeOf(x);
  Block *body = new Block();
  ctx = body->addArgument(ContextType::get(context), func.getLoc());
  weights = body->addArgument(WeightsType::get(context), func.getLoc());
  tokens = body->addArgument(builder.getI64Type(), func.getLoc());
  Value io = body->addArgument(ioType, x.getLoc());
  views[x] = io;
  builder.setInsertionPointToEnd(body);
  Location loc = func.getLoc();
  if (arenaBytes > 0)
    arena = AllocOp::create(builder, loc, BufferType::get(context, arenaBytes),
                            ctx);

  // Weights: one buffer, loaded whole (ep = tp = 1 keeps them unsplit).
  int64_t weightOffset = 0;
  SmallVector<std::pair<BlockArgument, int64_t>> weightArgs;
  for (BlockArgument arg : old.getArguments().drop_front()) {
    auto key = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                 MoeDialect::kWeightAttrName);
    if (!key)
      return func.emitError()
             << "argument #" << arg.getArgNumber() << " has no '"
             << MoeDialect::kWeightAttrName << "' key to load it from";
    weightArgs.push_back({arg, weightOffset});
    weightOffset += (staticElements(arg) *
                         elementBytes(getElementTypeOrSelf(arg.getType())) +
                     kAlignment - 1) /
                    kAlignment * kAlignment;
  }
  Value weightBuffer;
  if (weightOffset > 0)
    weightBuffer = AllocOp::create(builder, loc,
                                   BufferType::get(context, weightOffset), ctx);
  for (auto [arg, offset] : weightArgs) {
    auto type = cast<RankedTensorType>(arg.getType());
    ViewType vt = viewTypeOf(arg);
    Value v = ViewOp::create(builder, arg.getLoc(), vt, weightBuffer,
                             offset / vt.getElementBytes());
    views[arg] = v;
    StringRef key = func.getArgAttrOfType<StringAttr>(
                            arg.getArgNumber(), MoeDialect::kWeightAttrName)
                        .getValue();
    bool stacked = key.contains(MoeDialect::kExpertPlaceholder);
    ArrayRef<int64_t> shape = type.getShape();
    DenseI64ArrayAttr range;
    if (stacked) {
      range = builder.getDenseI64ArrayAttr({0, shape.front()});
      shape = shape.drop_front();
    }
    SmallVector<int64_t> zeros(shape.size(), 0);
    LoadWeightOp::create(builder, arg.getLoc(), ctx, weights,
                         builder.getStringAttr(key), range,
                         builder.getDenseI64ArrayAttr(shape),
                         builder.getDenseI64ArrayAttr(zeros),
                         builder.getDenseI64ArrayAttr(zeros), v);
  }

  // Views of the arena, created where the value is defined.
  WalkResult result = old.walk<WalkOrder::PreOrder>([&](Operation *op) {
    return failed(emitOp(op)) ? WalkResult::interrupt() : WalkResult::advance();
  });
  if (result.wasInterrupted()) {
    delete body;
    return failure();
  }
  func::ReturnOp::create(builder, loc);

  // Swap in the new body and signature.
  func.getBody().getBlocks().clear();
  func.getBody().push_back(body);
  func.setType(FunctionType::get(context, body->getArgumentTypes(), {}));
  func.setAllArgAttrs(SmallVector<DictionaryAttr>(
      body->getNumArguments(), DictionaryAttr::get(context)));
  (void)xType;
  return success();
}

LogicalResult FunctionLowering::emitOp(Operation *op) {
  Location loc = op->getLoc();
  auto newView = [&](Value tensor) {
    ViewType vt = viewTypeOf(tensor);
    Value v = ViewOp::create(builder, loc, vt, arena,
                             offsets[tensor] / vt.getElementBytes());
    views[tensor] = v;
    return v;
  };
  auto optView = [&](Value tensor) { return tensor ? view(tensor) : Value(); };
  auto hiddenOf = [](Value tensor) {
    return cast<ShapedType>(tensor.getType()).getShape().back();
  };

  if (auto layer = dyn_cast<LayerOp>(op)) {
    // x <- x + layer(x) in place: the layer input must die here.
    if (!layer.getInput().hasOneUse())
      return layer.emitError() << "moe-lower-to-runtime updates a layer's "
                                  "input in place; it must have one use";
    views[layer.getBodyInput()] = view(layer.getInput());
    views[layer.getResult()] = view(layer.getInput());
    return success();
  }
  if (auto router = dyn_cast<RouterOp>(op)) {
    moert::RouterOp::create(
        builder, loc, ctx, view(router.getInput()), view(router.getWeight()),
        optView(router.getBias()), newView(router.getLogits()), tokens,
        hiddenOf(router.getInput()),
        cast<ShapedType>(router.getLogits().getType()).getDimSize(1));
    return success();
  }
  if (auto gate = dyn_cast<GateOp>(op)) {
    Value cap = moert::GateOp::create(
        builder, loc, builder.getI64Type(), ctx, view(gate.getLogits()),
        optView(gate.getCorrectionBias()), newView(gate.getExpertIds()),
        newView(gate.getWeights()), newView(gate.getSlots()),
        newView(gate.getCounts()), tokens, gate.getNumExperts(),
        gate.getRouting());
    scalars[gate.getCapacity()] = cap;
    return success();
  }
  if (auto sync = dyn_cast<SyncCapacityOp>(op)) {
    scalars[sync.getResult()] = i64(sync.getCapacity()); // a group of one
    return success();
  }
  if (auto dispatch = dyn_cast<DispatchOp>(op)) {
    auto ids = cast<ShapedType>(dispatch.getExpertIds().getType());
    auto buf = cast<ShapedType>(dispatch.getResult().getType());
    moert::DispatchOp::create(
        builder, loc, ctx, view(dispatch.getInput()),
        view(dispatch.getExpertIds()), view(dispatch.getSlots()),
        newView(dispatch.getResult()), tokens, i64(dispatch.getCapacity()),
        hiddenOf(dispatch.getInput()), ids.getDimSize(1), buf.getDimSize(0));
    return success();
  }
  if (auto experts = dyn_cast<ExpertsOp>(op)) {
    auto dispatch = experts.getInput().getDefiningOp<DispatchOp>();
    auto gate =
        dispatch ? dispatch.getExpertIds().getDefiningOp<GateOp>() : GateOp();
    if (!gate)
      return experts.emitError()
             << "moe-lower-to-runtime needs the experts' input to come from "
                "a moe.dispatch of a moe.gate (for the per-expert row counts)";
    auto type = cast<ShapedType>(experts.getInput().getType());
    moert::ExpertsOp::create(
        builder, loc, ctx, view(experts.getInput()),
        optView(experts.getGateWeight()), view(experts.getUpWeight()),
        optView(experts.getUpBias()), view(experts.getDownWeight()),
        optView(experts.getDownBias()), experts.getActivation(),
        type.getDimSize(2), experts.getFfnSize(), newView(experts.getResult()),
        view(gate.getCounts()), i64(dispatch.getCapacity()), type.getDimSize(0),
        /*blocks=*/1);
    return success();
  }
  if (auto combine = dyn_cast<CombineOp>(op)) {
    auto expertsOp = combine.getInput().getDefiningOp<ExpertsOp>();
    auto dispatch = expertsOp ? expertsOp.getInput().getDefiningOp<DispatchOp>()
                              : DispatchOp();
    if (!dispatch)
      return combine.emitError() << "moe-lower-to-runtime needs the combined "
                                    "rows to come from moe.experts on a "
                                    "moe.dispatch (for the capacity)";
    auto ids = cast<ShapedType>(combine.getExpertIds().getType());
    auto in = cast<ShapedType>(combine.getInput().getType());
    moert::CombineOp::create(
        builder, loc, ctx, view(combine.getInput()),
        view(combine.getExpertIds()), view(combine.getSlots()),
        view(combine.getWeights()), Value(), newView(combine.getResult()),
        tokens, i64(dispatch.getCapacity()), in.getDimSize(2),
        ids.getDimSize(1), in.getDimSize(0));
    return success();
  }
  if (auto dense = dyn_cast<DenseFfnOp>(op)) {
    moert::DenseFfnOp::create(
        builder, loc, ctx, view(dense.getInput()),
        optView(dense.getGateWeight()), view(dense.getUpWeight()),
        optView(dense.getUpBias()), view(dense.getDownWeight()),
        optView(dense.getDownBias()), dense.getActivation(),
        hiddenOf(dense.getInput()), dense.getFfnSize(),
        newView(dense.getResult()), tokens);
    return success();
  }
  if (auto mix = dyn_cast<ResidualMixOp>(op)) {
    moert::ResidualMixOp::create(
        builder, loc, ctx, view(mix.getMoeOutput()), view(mix.getMlpOutput()),
        view(mix.getInput()), view(mix.getCoefWeight()),
        optView(mix.getCoefBias()), newView(mix.getResult()), tokens,
        hiddenOf(mix.getInput()));
    return success();
  }
  if (auto shared = dyn_cast<SharedAddOp>(op)) {
    moert::SharedAddOp::create(
        builder, loc, ctx, view(shared.getRouted()), view(shared.getShared()),
        optView(shared.getInput()), optView(shared.getGateWeight()),
        newView(shared.getResult()), tokens, hiddenOf(shared.getRouted()));
    return success();
  }
  if (auto yield = dyn_cast<YieldOp>(op)) {
    auto layer = cast<LayerOp>(yield->getParentOp());
    Value in = view(layer.getInput());
    moert::AddOp::create(builder, loc, ctx, in, view(yield.getValue()), in,
                         tokens, hiddenOf(yield.getValue()));
    return success();
  }
  if (auto ret = dyn_cast<func::ReturnOp>(op)) {
    Block &entry = func.getBody().front();
    if (ret.getNumOperands() != 1 ||
        view(ret.getOperand(0)) != view(entry.getArgument(0)))
      return ret.emitError() << "moe-lower-to-runtime expects the model to "
                                "return its updated input";
    return success();
  }
  return success();
}

LogicalResult FunctionLowering::run(int64_t &peakBytes, int64_t &weightBytes) {
  if (failed(analyze()) || failed(emit()))
    return failure();
  peakBytes = arenaBytes;
  weightBytes = 0;
  func.walk([&](AllocOp alloc) {
    int64_t bytes = cast<BufferType>(alloc.getType()).getBytes();
    if (bytes != arenaBytes || weightBytes)
      weightBytes += bytes;
  });
  return success();
}

namespace {
struct LowerToRuntimePass
    : public mlir::moe::impl::LowerToRuntimeBase<LowerToRuntimePass> {
  using LowerToRuntimeBase::LowerToRuntimeBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    int64_t maxTokens = tokens;
    constexpr StringLiteral kMaxTokens = "moert.max_tokens";
    if (maxTokens == 0)
      if (auto attr = module->getAttrOfType<IntegerAttr>(kMaxTokens))
        maxTokens = attr.getInt();
    if (maxTokens <= 0) {
      module.emitError() << "moe-lower-to-runtime needs the most tokens per "
                            "rank per step: pass tokens=N or set '"
                         << kMaxTokens << "' on the module";
      return signalPassFailure();
    }
    Builder b(module.getContext());
    module->setAttr(kMaxTokens, b.getI64IntegerAttr(maxTokens));
    for (auto func :
         llvm::make_early_inc_range(module.getOps<func::FuncOp>())) {
      if (func.isExternal())
        continue;
      int64_t peak = 0, weightBytes = 0;
      if (failed(FunctionLowering(func, maxTokens).run(peak, weightBytes)))
        return signalPassFailure();
      func->setAttr("moert.peak_bytes", b.getI64IntegerAttr(peak));
      func->setAttr("moert.weight_bytes", b.getI64IntegerAttr(weightBytes));
      if (report)
        llvm::outs() << "buffer plan @" << func.getSymName() << ": tokens "
                     << maxTokens << ", activation arena " << peak
                     << " bytes per rank (peak), weights " << weightBytes
                     << " bytes per rank\n";
    }
  }
};
} // namespace
