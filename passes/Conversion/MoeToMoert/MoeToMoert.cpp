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

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::moe {
#define GEN_PASS_DEF_LOWERTORUNTIME
#include "passes/Conversion/MoeToMoert/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using moert::BufferType;
using moert::ContextType;
using moert::LoadWeightOp;
using moert::ViewOp;
using moert::ViewType;
using moert::WeightsType;

namespace {

constexpr int64_t kAlignment = 64;

int64_t alignTo(int64_t bytes) {
  return (bytes + kAlignment - 1) / kAlignment * kAlignment;
}

int64_t elementBytes(Type type) {
  return type.isF32() || type.isInteger(32) ? 4 : type.isInteger(64) ? 8 : 2;
}

/// Lowers one model function.
class FunctionLowering {
public:
  FunctionLowering(func::FuncOp func, int64_t maxTokens, bool staticCapacity)
      : func(func), maxTokens(maxTokens), staticCapacity(staticCapacity),
        builder(func.getContext()) {}

  LogicalResult run(int64_t &peakBytes, int64_t &weightBytes);

private:
  /// A weight argument loaded into `slot` at `elementOffset`, experts
  /// `stride` elements apart (0: dense).
  struct WeightPart {
    BlockArgument arg;
    int64_t elementOffset = 0, stride = 0;
  };
  /// The state bytes of one weight tensor: an argument, or the packed
  /// gate_up concatenation of two (filled by one load each).
  struct WeightSlot {
    Value value;
    int64_t offset; // bytes into the state buffer
    SmallVector<WeightPart, 2> parts;
  };
  LogicalResult analyze();
  LogicalResult emit();
  LogicalResult emitInit(ArrayRef<WeightSlot> slots);
  LogicalResult
  emitLoad(const WeightSlot &slot, const WeightPart &part, Value ctx,
           Value file, Value state,
           llvm::function_ref<Value(Location, PlanAttr, ShardAxis, int64_t)>
               shardOffset);
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
  bool staticCapacity; // dropless gates: C = the token bound
  OpBuilder builder;
  DenseMap<Value, int64_t> bounds;
  DenseMap<Value, std::pair<int64_t, int64_t>> ranges; // tensor -> live range
  DenseMap<Operation *, int64_t> points;
  SmallVector<Value> planned;     // tensors placed in the arena, in def order
  DenseMap<Value, Value> views;   // moe tensor -> moert view
  DenseMap<Value, Value> scalars; // moe index -> i64
  Value ctx, tokens, stats;
  Value arena; // the state buffer: weights, then activations
  BufferType stateType;
  int64_t arenaBytes = 0, weightBytes = 0;
  DenseMap<Value, int64_t> offsets;    // tensor -> arena byte offset
  DenseMap<Value, int64_t> extraBytes; // planned after a tensor's data
  // Rank groups: init keeps each distinct table's group in a slot (in
  // first-use order); a layer looks each one up once.
  llvm::MapVector<Attribute, int32_t> groupSlots;
  DenseMap<Attribute, Value> layerGroups;
  func::FuncOp initFunc;
  DenseMap<Value, Value> exchangedRows; // to_experts result -> its row counts
  // fp32 [E, C, F] gate and up intermediates of a gated moe.experts lowered
  // to stage calls: arena bytes live only at that op, and their offset.
  llvm::MapVector<Operation *, int64_t> stageBytes;
  DenseMap<Operation *, int64_t> stageOffsets;
  /// Emits a gated moe.experts as its stage calls.
  void emitExpertStages(ExpertsOp experts, Value rows, Value rowsPerExpert,
                        int64_t blocks, Value output);

  /// The group of this rank's row of `table`, kept by init, looked up
  /// once per layer.
  Value group(DenseIntElementsAttr table, Location loc) {
    Value &g = layerGroups[table];
    if (!g) {
      auto slot = groupSlots.insert({table, int32_t(groupSlots.size())});
      g = moert::GroupOp::create(builder, loc,
                                 moert::GroupType::get(builder.getContext()),
                                 ctx, slot.first->second);
    }
    return g;
  }
  /// Appends the keep_group of every table the step used to init.
  void emitKeptGroups();
  /// The tp group of `plan`: rows of tp consecutive ranks.
  Value tpGroup(PlanAttr plan, Location loc);
  /// i1: this rank is its tp group's first member (it adds the down bias).
  Value firstSlice(PlanAttr plan, Location loc);
  /// The down bias predicate of an FFN whose down weight is `down` (null
  /// when the FFN is not sliced over tp).
  Value downBiasIf(Value down, Value downBias, Location loc);
  /// tokens * hidden (the per-member block of a tp collective).
  Value tokenElements(int64_t hidden, Location loc);
};

} // namespace

/// The plan of the layer holding `op` (null outside a planned layer).
static PlanAttr planOf(Operation *op) {
  auto layer = op->getParentOfType<LayerOp>();
  return layer ? layer->getAttrOfType<PlanAttr>(MoeDialect::kPlanAttrName)
               : PlanAttr();
}

/// A shard.all_gather / reduce_scatter the parallelism pass puts around a
/// tensor-parallel dense FFN: tokens (axis 0) over grid axis 2 (tp) of the
/// layer's {dp, ep, tp} grid, summing.
static LogicalResult checkTpCollective(Operation *op, PlanAttr plan) {
  if (!plan)
    return op->emitError() << "'" << op->getName()
                           << "' outside a layer with a moe.plan";
  auto gather = dyn_cast<shard::AllGatherOp>(op);
  auto scatter = dyn_cast<shard::ReduceScatterOp>(op);
  StringRef gridName = gather ? gather.getGrid() : scatter.getGrid();
  ArrayRef<int16_t> axes =
      gather ? gather.getGridAxes() : scatter.getGridAxes();
  int64_t axis = gather ? gather.getGatherAxis().getSExtValue()
                        : scatter.getScatterAxis().getSExtValue();
  auto grid = SymbolTable::lookupNearestSymbolFrom<shard::GridOp>(
      op, StringAttr::get(op->getContext(), gridName));
  SmallVector<int64_t> planShape = {plan.getDp(), plan.getEp(), plan.getTp()};
  if (axes.size() != 1 || axes[0] != 2 || axis != 0 ||
      (scatter && scatter.getReduction() != shard::ReductionKind::Sum) ||
      !grid || grid.getShape() != ArrayRef<int64_t>(planShape))
    return op->emitError()
           << "moe-lower-to-runtime lowers '" << op->getName()
           << "' only over the tokens (axis 0) and grid axis 2 (tp) of its "
              "layer's {dp, ep, tp} grid, summing";
  return success();
}

static std::pair<PlanAttr, ShardAttr> shardOf(func::FuncOp func,
                                              BlockArgument arg);

/// An FFN whose partial outputs are summed over `parts` tp slices must hold
/// an F-slice of its down weight (else the sum multiplies the output).
static LogicalResult checkSliced(Operation *ffn, Value down, int64_t parts) {
  auto arg = dyn_cast<BlockArgument>(down);
  auto func = ffn->getParentOfType<func::FuncOp>();
  auto [plan, shard] =
      arg && func ? shardOf(func, arg) : std::pair<PlanAttr, ShardAttr>();
  if (plan && shard && plan.getTp() == parts &&
      llvm::is_contained(shard.getDims(), ShardAxis::tp))
    return success();
  return ffn->emitError() << "moe-lower-to-runtime sums this FFN's partial "
                             "outputs over "
                          << parts
                          << " tp slices: its down weight must be a function "
                             "argument split over tp by moe.shard";
}

/// The dispatch that fills the experts' input (through a to_experts
/// all-to-all with expert parallelism).
static DispatchOp dispatchOf(Value expertsInput) {
  if (auto a2a = expertsInput.getDefiningOp<AllToAllOp>())
    expertsInput = a2a.getInput();
  return expertsInput.getDefiningOp<DispatchOp>();
}

/// The input of the routed experts (fused or not) that produced `rows`.
static Value routedExpertsInput(Value rows) {
  if (auto experts = rows.getDefiningOp<ExpertsOp>())
    return experts.getInput();
  if (auto experts = rows.getDefiningOp<FusedExpertsOp>())
    return experts.getInput();
  return Value();
}

/// A packed gate_up weight: a tensor.concat of weight arguments (made by
/// moe-fuse-kernels), loaded part by part into one slot.
static bool isPackedWeight(tensor::ConcatOp concat) {
  auto func = concat->getParentOfType<func::FuncOp>();
  return llvm::all_of(concat.getOperands(), [&](Value v) {
    auto arg = dyn_cast<BlockArgument>(v);
    return arg && arg.getOwner()->getParentOp() == func && arg.hasOneUse();
  });
}

/// The per-expert counts of the gate (fused or not) that produced `ids`.
static Value gateCounts(Value ids) {
  if (auto gate = ids.getDefiningOp<GateOp>())
    return gate.getCounts();
  if (auto gate = ids.getDefiningOp<FusedGateOp>())
    return gate.getCounts();
  return Value();
}

/// Whether the layer's residual add folds into `fused`: the layer yields
/// it and nothing after it reads the layer input, which it then updates in
/// place (the kernel reads x and the addend row by row before writing).
static bool foldsResidual(FusedCombineOp fused) {
  Value result = fused.getResult();
  if (!result.hasOneUse() || !isa<YieldOp>(*result.getUsers().begin()))
    return false;
  auto layer = fused->getParentOfType<LayerOp>();
  return llvm::all_of(layer.getBodyInput().getUsers(), [&](Operation *user) {
    return user == fused || user->getBlock() != fused->getBlock() ||
           user->isBeforeInBlock(fused);
  });
}

/// The dispatch of the rows a combine reads (through the from_experts
/// all-to-all with expert parallelism), for the capacity.
static DispatchOp combinedDispatch(Value rows) {
  if (auto a2a = rows.getDefiningOp<AllToAllOp>())
    rows = a2a.getInput();
  Value input = routedExpertsInput(rows);
  return input ? dispatchOf(input) : DispatchOp();
}

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
      setBound(layer.getBodyInput(), bounds.lookup(layer.getInput()));
      setBound(layer.getResult(), bounds.lookup(layer.getInput()));
      return WalkResult::advance();
    }
    if (auto router = dyn_cast<RouterOp>(op)) {
      setBound(router.getLogits(), bounds.lookup(router.getInput()));
    } else if (isa<GateOp, FusedGateOp>(op)) {
      Value logits = op->getOperand(0);
      int64_t s = bounds.lookup(logits);
      for (Value v : op->getResults().take_front(3))
        setBound(v, s);
      auto gate = dyn_cast<GateOp>(op);
      RoutingAttr routing =
          gate ? gate.getRouting() : cast<FusedGateOp>(op).getRouting();
      int64_t experts = cast<ShapedType>(logits.getType()).getDimSize(1);
      // Dropless: C = the largest count <= S (one pick per expert a token).
      setBound(op->getResult(4),
               routing.isDropless() ? s : routing.getCapacity(s, experts));
      // The unfused gate keeps its scores [S, E] (f32) behind the logits,
      // which die at the gate.
      if (gate)
        extraBytes[logits] += alignTo(s * experts * 4);
    } else if (auto dispatch = dyn_cast<DispatchOp>(op)) {
      setBound(dispatch.getResult(), bounds.lookup(dispatch.getCapacity()));
    } else if (auto experts = dyn_cast<ExpertsOp>(op)) {
      setBound(experts.getResult(), bounds.lookup(experts.getInput()));
      auto a2a = experts.getInput().getDefiningOp<AllToAllOp>();
      if (a2a && a2a.getSlices() > 1 &&
          failed(
              checkSliced(experts, experts.getDownWeight(), a2a.getSlices())))
        return WalkResult::interrupt();
      if (experts.isGated()) {
        // Two fp32 [E, C, F] intermediates, C at the input's bound.
        int64_t rows = staticElements(experts.getInput()) /
                       cast<ShapedType>(experts.getType()).getDimSize(2);
        stageBytes[op] = 2 * alignTo(rows * experts.getFfnSize() * 4);
      }
    } else if (auto experts = dyn_cast<FusedExpertsOp>(op)) {
      setBound(experts.getResult(), bounds.lookup(experts.getInput()));
      if (Value shared = experts.getSharedResult())
        setBound(shared, bounds.lookup(experts.getSharedInput()));
      auto a2a = experts.getInput().getDefiningOp<AllToAllOp>();
      if (a2a && a2a.getSlices() > 1 &&
          failed(
              checkSliced(experts, experts.getDownWeight(), a2a.getSlices())))
        return WalkResult::interrupt();
    } else if (auto concat = dyn_cast<tensor::ConcatOp>(op)) {
      if (!isPackedWeight(concat))
        return concat.emitError()
               << "moe-lower-to-runtime lowers 'tensor.concat' only as a "
                  "packed weight: weight arguments that nothing else reads";
    } else if (auto combine = dyn_cast<CombineOp>(op)) {
      setBound(combine.getResult(), bounds.lookup(combine.getExpertIds()));
    } else if (auto fused = dyn_cast<FusedCombineOp>(op)) {
      setBound(fused.getResult(), bounds.lookup(fused.getExpertIds()));
    } else if (auto dense = dyn_cast<DenseFfnOp>(op)) {
      setBound(dense.getResult(), bounds.lookup(dense.getInput()));
      if (dense.getInput().getDefiningOp<shard::AllGatherOp>() &&
          failed(
              checkSliced(dense, dense.getDownWeight(), planOf(dense).getTp())))
        return WalkResult::interrupt();
    } else if (auto mix = dyn_cast<ResidualMixOp>(op)) {
      if (!mix.getInput())
        return mix.emitError()
               << "moe-lower-to-runtime needs the coefficient form of "
                  "moe.residual_mix (the runtime computes the coefficients)";
      setBound(mix.getResult(), bounds.lookup(mix.getMoeOutput()));
    } else if (auto shared = dyn_cast<SharedAddOp>(op)) {
      setBound(shared.getResult(), bounds.lookup(shared.getRouted()));
    } else if (auto sync = dyn_cast<SyncCapacityOp>(op)) {
      setBound(sync.getResult(), bounds.lookup(sync.getCapacity()));
    } else if (isa<shard::AllGatherOp, shard::ReduceScatterOp>(op)) {
      PlanAttr plan = planOf(op);
      if (failed(checkTpCollective(op, plan)))
        return WalkResult::interrupt();
      Value in = op->getOperand(0);
      setBound(op->getResult(0), isa<shard::AllGatherOp>(op)
                                     ? bounds.lookup(in) * plan.getTp()
                                     : bounds.lookup(in) / plan.getTp());
    } else if (auto a2a = dyn_cast<AllToAllOp>(op)) {
      int64_t g = a2a.getGroupSize();
      bool to = a2a.getDirection() == AllToAllDirection::to_experts;
      // to_experts: [E, C, H] -> [E_local, G * C, H]; from_experts inverse.
      setBound(a2a.getResult(), to ? bounds.lookup(a2a.getInput()) * g
                                   : bounds.lookup(a2a.getInput()) / g);
      if (to) // the exchanged row counts [E_local, G] (i32) ride along
        extraBytes[a2a.getResult()] =
            cast<ShapedType>(a2a.getResult().getType()).getDimSize(0) * g * 4;
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
    auto fused = dyn_cast<FusedCombineOp>(op);
    if (fused && foldsResidual(fused))
      return; // written into the layer input
    if (isa<tensor::ConcatOp>(op))
      return; // a packed weight: state, not arena
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
  // moert.experts reads the gate's counts as its row counts (exchanged at
  // the to_experts all-to-all with expert parallelism): a use the moe IR
  // does not show.
  func.walk([&](Operation *experts) {
    if (!isa<ExpertsOp, FusedExpertsOp>(experts))
      return;
    Value input = experts->getOperand(0);
    Operation *reader = experts;
    if (auto a2a = input.getDefiningOp<AllToAllOp>())
      reader = a2a;
    if (DispatchOp dispatch = dispatchOf(input))
      if (Value counts = gateCounts(dispatch.getExpertIds()))
        ranges[counts].second = std::max(ranges[counts].second, points[reader]);
  });
  return success();
}

/// The layer plan and shard of weight argument `arg` (null if unsplit).
static std::pair<PlanAttr, ShardAttr> shardOf(func::FuncOp func,
                                              BlockArgument arg) {
  auto shard = func.getArgAttrOfType<ShardAttr>(arg.getArgNumber(),
                                                MoeDialect::kShardAttrName);
  for (Operation *user : arg.getUsers())
    if (auto layer = user->getParentOfType<LayerOp>())
      return {layer->getAttrOfType<PlanAttr>(MoeDialect::kPlanAttrName), shard};
  return {PlanAttr(), shard};
}

Value FunctionLowering::tpGroup(PlanAttr plan, Location loc) {
  int64_t rows = plan.getDp() * plan.getEp(), tp = plan.getTp();
  SmallVector<int64_t> ranks(rows * tp);
  for (int64_t r = 0; r < rows * tp; ++r)
    ranks[r] = r; // rank = (d * ep + e) * tp + t
  auto type = RankedTensorType::get({rows, tp}, builder.getI64Type());
  return group(DenseIntElementsAttr::get(type, ArrayRef<int64_t>(ranks)), loc);
}

Value FunctionLowering::firstSlice(PlanAttr plan, Location loc) {
  auto c = [&](int64_t v) {
    return arith::ConstantIntOp::create(builder, loc, v, 64).getResult();
  };
  Value rank = moert::RankOp::create(builder, loc, builder.getI64Type(), ctx);
  Value t = arith::RemSIOp::create(
      builder, loc,
      arith::DivSIOp::create(builder, loc, rank,
                             c(plan.getRankStride(ShardAxis::tp))),
      c(plan.getTp()));
  return arith::CmpIOp::create(builder, loc, arith::CmpIPredicate::eq, t, c(0));
}

Value FunctionLowering::downBiasIf(Value down, Value downBias, Location loc) {
  auto arg = dyn_cast<BlockArgument>(down);
  if (!downBias || !arg)
    return Value();
  auto [plan, shard] = shardOf(func, arg);
  if (!plan || plan.getTp() == 1 || !shard ||
      !llvm::is_contained(shard.getDims(), ShardAxis::tp))
    return Value();
  return firstSlice(plan, loc);
}

Value FunctionLowering::tokenElements(int64_t hidden, Location loc) {
  return arith::MulIOp::create(
      builder, loc, tokens,
      arith::ConstantIntOp::create(builder, loc, hidden, 64));
}

LogicalResult FunctionLowering::emitInit(ArrayRef<WeightSlot> slots) {
  MLIRContext *context = func.getContext();
  Location loc = func.getLoc();
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPoint(func);
  auto init = func::FuncOp::create(
      builder, loc, (func.getSymName() + "_init").str(),
      FunctionType::get(
          context,
          {ContextType::get(context), WeightsType::get(context), stateType},
          {}));
  init->setAttr("moert.entry", builder.getStringAttr("init"));
  initFunc = init;
  Block *body = init.addEntryBlock();
  builder.setInsertionPointToEnd(body);
  Value ctx = body->getArgument(0), file = body->getArgument(1),
        state = body->getArgument(2);
  Value rank;
  // coordinate(axis) * extent, from the plan's rank layout.
  auto shardOffset = [&](Location l, PlanAttr plan, ShardAxis axis,
                         int64_t extent) -> Value {
    auto c = [&](int64_t v) {
      return arith::ConstantIntOp::create(builder, l, v, 64).getResult();
    };
    if (!plan || axis == ShardAxis::none || plan.getDegree(axis) == 1)
      return c(0);
    if (!rank)
      rank = moert::RankOp::create(builder, loc, builder.getI64Type(), ctx);
    Value q =
        arith::DivSIOp::create(builder, l, rank, c(plan.getRankStride(axis)));
    Value coord =
        arith::RemSIOp::create(builder, l, q, c(plan.getDegree(axis)));
    return arith::MulIOp::create(builder, l, coord, c(extent));
  };
  for (const WeightSlot &slot : slots) {
    for (const WeightPart &part : slot.parts)
      if (failed(emitLoad(slot, part, ctx, file, state, shardOffset)))
        return failure();
  }
  func::ReturnOp::create(builder, loc);
  return success();
}

LogicalResult FunctionLowering::emitLoad(
    const WeightSlot &slot, const WeightPart &part, Value ctx, Value file,
    Value state,
    llvm::function_ref<Value(Location, PlanAttr, ShardAxis, int64_t)>
        shardOffset) {
  BlockArgument arg = part.arg;
  Location l = arg.getLoc();
  auto type = cast<RankedTensorType>(arg.getType());
  // The rest of the slot from this part on: a packed part's last expert
  // ends a stride-multiple further than its own elements.
  ViewType slotType = viewTypeOf(slot.value);
  ViewType vt = ViewType::get(func.getContext(), slotType.getElementType(),
                              slotType.getCount() - part.elementOffset);
  Value v =
      ViewOp::create(builder, l, vt, state,
                     slot.offset / vt.getElementBytes() + part.elementOffset);
  StringRef key = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                    MoeDialect::kWeightAttrName)
                      .getValue();
  auto [plan, shard] = shardOf(func, arg);
  SmallVector<ShardAxis> axes(type.getRank(), ShardAxis::none);
  if (shard) {
    if (shard.getDims().size() != axes.size())
      return func.emitError()
             << "argument #" << arg.getArgNumber() << ": moe.shard has "
             << shard.getDims().size() << " axes for a rank-" << axes.size()
             << " weight";
    axes.assign(shard.getDims().begin(), shard.getDims().end());
  }
  bool split = plan && llvm::any_of(axes, [&](ShardAxis a) {
                 return plan.getDegree(a) > 1;
               });
  bool stacked = key.contains(MoeDialect::kExpertPlaceholder);
  ArrayRef<int64_t> local = type.getShape();
  DenseI64ArrayAttr range;
  Value expertOffset;
  if (stacked) {
    range = builder.getDenseI64ArrayAttr({0, local.front()});
    if (split)
      expertOffset = shardOffset(l, plan, axes.front(), local.front());
    local = local.drop_front();
    axes.erase(axes.begin());
  }
  SmallVector<int64_t> full, zeros(local.size(), 0), end(local.size(), 0);
  SmallVector<Value> offsets;
  for (auto [extent, axis] : llvm::zip(local, axes)) {
    full.push_back(extent * (plan ? plan.getDegree(axis) : 1));
    if (split) {
      end[full.size() - 1] = extent;
      offsets.push_back(shardOffset(l, plan, axis, extent));
    }
  }
  LoadWeightOp::create(builder, l, ctx, file, builder.getStringAttr(key),
                       builder.getDenseI64ArrayAttr(full),
                       builder.getDenseI64ArrayAttr(zeros),
                       builder.getDenseI64ArrayAttr(end), range, expertOffset,
                       offsets, part.stride, v);
  return success();
}

LogicalResult FunctionLowering::emit() {
  MLIRContext *context = func.getContext();
  Block &old = func.getBody().front();
  Value x = old.getArgument(0);

  // The persistent state of a rank: its weight shards, then the arena. A
  // packed gate_up weight is one slot its two arguments load into: gate
  // rows then up rows of each expert, experts 2F*H elements apart.
  int64_t weightOffset = 0;
  SmallVector<WeightSlot> slots;
  DenseMap<Value, tensor::ConcatOp> packedInto;
  old.walk([&](tensor::ConcatOp concat) {
    for (Value part : concat.getOperands())
      packedInto[part] = concat;
  });
  auto addSlot = [&](Value value, SmallVector<WeightPart, 2> parts) {
    slots.push_back({value, weightOffset, std::move(parts)});
    weightOffset +=
        alignTo(staticElements(value) *
                elementBytes(getElementTypeOrSelf(value.getType())));
  };
  for (BlockArgument arg : old.getArguments().drop_front()) {
    auto key = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                 MoeDialect::kWeightAttrName);
    if (!key)
      return func.emitError()
             << "argument #" << arg.getArgNumber() << " has no '"
             << MoeDialect::kWeightAttrName << "' key to load it from";
    tensor::ConcatOp concat = packedInto.lookup(arg);
    if (!concat) {
      addSlot(arg, {{arg}});
      continue;
    }
    if (arg != concat.getOperand(0))
      continue; // loaded with the first part
    auto type = cast<RankedTensorType>(concat.getType());
    int64_t perExpert = type.getRank() == 3
                            ? type.getDimSize(1) * type.getDimSize(2)
                            : 0; // one [2F, H] tensor: no experts to space
    int64_t elementOffset = 0;
    SmallVector<WeightPart, 2> parts;
    for (Value part : concat.getOperands()) {
      parts.push_back({cast<BlockArgument>(part), elementOffset, perExpert});
      auto partType = cast<RankedTensorType>(part.getType());
      elementOffset += partType.getNumElements() /
                       (type.getRank() == 3 ? type.getDimSize(0) : 1);
    }
    addSlot(concat.getResult(), std::move(parts));
  }
  weightBytes = weightOffset;
  std::vector<PlannedBuffer> buffers;
  for (Value v : planned)
    buffers.push_back(
        {alignTo(staticElements(v) *
                 elementBytes(getElementTypeOrSelf(v.getType()))) +
             extraBytes.lookup(v),
         ranges[v].first, ranges[v].second});
  for (auto [op, bytes] : stageBytes)
    buffers.push_back({bytes, points[op], points[op]});
  arenaBytes = planBuffers(buffers, kAlignment);
  for (auto [v, b] : llvm::zip(planned, buffers))
    offsets[v] = weightBytes + b.offset;
  for (auto [stage, b] :
       llvm::zip(stageBytes, ArrayRef(buffers).drop_front(planned.size())))
    stageOffsets[stage.first] = weightBytes + b.offset;
  stateType = BufferType::get(
      context, std::max<int64_t>(weightBytes + arenaBytes, kAlignment));
  if (failed(emitInit(slots)))
    return failure();

  // The step: context, state, statistics, tokens of this step, and the
  // input/output activations.
  Block *body = new Block();
  ctx = body->addArgument(ContextType::get(context), func.getLoc());
  arena = body->addArgument(stateType, func.getLoc());
  stats = body->addArgument(moert::StatsType::get(context), func.getLoc());
  tokens = body->addArgument(builder.getI64Type(), func.getLoc());
  Value io = body->addArgument(viewTypeOf(x), x.getLoc());
  views[x] = io;
  builder.setInsertionPointToEnd(body);
  for (const WeightSlot &slot : slots) {
    ViewType vt = viewTypeOf(slot.value);
    views[slot.value] = ViewOp::create(builder, slot.value.getLoc(), vt, arena,
                                       slot.offset / vt.getElementBytes());
  }

  WalkResult result = old.walk<WalkOrder::PreOrder>([&](Operation *op) {
    return failed(emitOp(op)) ? WalkResult::interrupt() : WalkResult::advance();
  });
  if (result.wasInterrupted()) {
    delete body;
    return failure();
  }
  func::ReturnOp::create(builder, func.getLoc());
  emitKeptGroups();

  // Swap in the new body and signature.
  func.getBody().getBlocks().clear();
  func.getBody().push_back(body);
  func.setType(FunctionType::get(context, body->getArgumentTypes(), {}));
  func.setAllArgAttrs(SmallVector<DictionaryAttr>(
      body->getNumArguments(), DictionaryAttr::get(context)));
  func.setSymName((func.getSymName() + "_step").str());
  func->setAttr("moert.entry", builder.getStringAttr("step"));
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
    auto timed = moert::LayerOp::create(builder, loc, stats, layer.getIndex());
    builder.setInsertionPointToEnd(&timed.getBody().emplaceBlock());
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
  if (auto gate = dyn_cast<FusedGateOp>(op)) {
    // Outputs last to first: the order the emitted C++ numbers them in.
    Value counts = newView(gate.getCounts()), slots = newView(gate.getSlots()),
          weights = newView(gate.getWeights()),
          ids = newView(gate.getExpertIds());
    Value cap = moert::GateOp::create(
        builder, loc, builder.getI64Type(), ctx, gate.getRouting(),
        gate.getNumExperts(),
        staticCapacity && gate.getRouting().isDropless()
            ? bound(gate.getCapacity())
            : 0,
        view(gate.getLogits()), optView(gate.getCorrectionBias()), tokens, ids,
        weights, slots, counts);
    scalars[gate.getCapacity()] = cap;
    moert::RecordDropsOp::create(
        builder, loc, ctx, stats, gate->getParentOfType<LayerOp>().getIndex(),
        view(gate.getCounts()), tokens,
        cast<ShapedType>(gate.getExpertIds().getType()).getDimSize(1),
        gate.getNumExperts());
    return success();
  }
  if (auto gate = dyn_cast<GateOp>(op)) {
    if (staticCapacity && gate.getRouting().isDropless())
      return gate.emitError()
             << "static-capacity needs the fused gate (moe-fuse-kernels): "
                "the gate's stage calls check their ids on the host";
    // One runtime call per stage, through a scores buffer.
    Value logits = gate.getLogits();
    int64_t experts = gate.getNumExperts();
    RoutingAttr routing = gate.getRouting();
    int64_t logitBytes = alignTo(staticElements(logits) * 4);
    Value scores =
        ViewOp::create(builder, loc,
                       ViewType::get(builder.getContext(), builder.getF32Type(),
                                     staticElements(logits)),
                       arena, (offsets[logits] + logitBytes) / 4);
    moert::GateScoresOp::create(builder, loc, ctx, routing, experts,
                                view(logits), tokens, scores);
    Value ids = newView(gate.getExpertIds()),
          weights = newView(gate.getWeights());
    moert::GateSelectOp::create(builder, loc, ctx, routing, experts, scores,
                                optView(gate.getCorrectionBias()), tokens, ids,
                                weights);
    Value slots = newView(gate.getSlots()), counts = newView(gate.getCounts());
    scalars[gate.getCapacity()] = moert::GateSlotsOp::create(
        builder, loc, builder.getI64Type(), ctx, routing, experts, ids, weights,
        tokens, slots, counts);
    moert::GateNormalizeOp::create(builder, loc, ctx, routing, experts, slots,
                                   tokens, weights);
    moert::RecordDropsOp::create(
        builder, loc, ctx, stats, gate->getParentOfType<LayerOp>().getIndex(),
        counts, tokens,
        cast<ShapedType>(gate.getExpertIds().getType()).getDimSize(1), experts);
    return success();
  }
  if (auto sync = dyn_cast<SyncCapacityOp>(op)) {
    auto gate = sync.getCapacity().getDefiningOp<FusedGateOp>();
    bool sameOnEveryRank =
        staticCapacity && gate && gate.getRouting().isDropless();
    if (sameOnEveryRank ||
        cast<ShapedType>(sync.getGroups().getType()).getDimSize(1) == 1) {
      scalars[sync.getResult()] = i64(sync.getCapacity()); // nothing to sync
      return success();
    }
    scalars[sync.getResult()] = moert::AllReduceI64Op::create(
        builder, loc, builder.getI64Type(), ctx, group(sync.getGroups(), loc),
        moert::ReduceOp::max, i64(sync.getCapacity()));
    return success();
  }
  if (auto a2a = dyn_cast<AllToAllOp>(op)) {
    auto in = cast<ShapedType>(a2a.getInput().getType());
    auto out = cast<ShapedType>(a2a.getResult().getType());
    bool to = a2a.getDirection() == AllToAllDirection::to_experts;
    int64_t local = to ? out.getDimSize(0) : in.getDimSize(0);
    DispatchOp dispatch = a2a.getInput().getDefiningOp<DispatchOp>();
    if (Value expertsInput = routedExpertsInput(a2a.getInput()))
      dispatch = dispatchOf(expertsInput);
    if (!dispatch)
      return a2a.emitError() << "moe-lower-to-runtime needs the exchanged "
                                "rows to come from moe.dispatch (for the "
                                "capacity)";
    Value g = group(a2a.getGroups(), loc);
    Value capacity = i64(dispatch.getCapacity());
    Value send = view(a2a.getInput()), recv = newView(a2a.getResult());
    // moert_all_to_all, or its sliced form for sliced experts.
    auto exchange = [&](AllToAllVariant variant, Value send, Value recv,
                        Value capacity, int64_t hidden) {
      if (a2a.getSlices() == 1)
        moert::AllToAllOp::create(builder, loc, ctx, g, a2a.getDirection(),
                                  variant, send, recv, local, capacity, hidden);
      else
        moert::AllToAllSlicedOp::create(
            builder, loc, ctx, g, a2a.getDirection(), variant, send, recv,
            local, capacity, hidden, a2a.getSlices());
    };
    exchange(a2a.getVariant(), send, recv, capacity, in.getDimSize(2));
    if (to) {
      // The gate's counts [E] become the rows of each block [E_local, G].
      Value counts = gateCounts(dispatch.getExpertIds());
      int64_t members = a2a.getGroupSize();
      auto rowsType = moert::ViewType::get(
          builder.getContext(), builder.getI32Type(), local * members);
      int64_t bytes = alignTo(staticElements(a2a.getResult()) *
                              elementBytes(out.getElementType()));
      Value rows = ViewOp::create(builder, loc, rowsType, arena,
                                  (offsets[a2a.getResult()] + bytes) / 4);
      Value one = arith::ConstantIntOp::create(builder, loc, 1, 64);
      exchange(AllToAllVariant::flat, view(counts), rows, one, 1);
      exchangedRows[a2a.getResult()] = rows;
    }
    return success();
  }
  if (auto dispatch = dyn_cast<DispatchOp>(op)) {
    auto ids = cast<ShapedType>(dispatch.getExpertIds().getType());
    auto buf = cast<ShapedType>(dispatch.getResult().getType());
    moert::DispatchOp::create(
        builder, loc, ctx, view(dispatch.getInput()),
        view(dispatch.getExpertIds()), view(dispatch.getSlots()),
        newView(dispatch.getResult()), tokens, hiddenOf(dispatch.getInput()),
        ids.getDimSize(1), buf.getDimSize(0), i64(dispatch.getCapacity()));
    return success();
  }
  if (isa<ExpertsOp, FusedExpertsOp>(op)) {
    Value input = op->getOperand(0);
    DispatchOp dispatch = dispatchOf(input);
    Value counts = dispatch ? gateCounts(dispatch.getExpertIds()) : Value();
    auto a2a = input.getDefiningOp<AllToAllOp>();
    Value rows = a2a ? exchangedRows.lookup(a2a.getResult())
                     : (counts ? view(counts) : Value());
    int64_t blocks = a2a ? a2a.getGroupSize() : 1;
    if (!counts)
      return op->emitError()
             << "moe-lower-to-runtime needs the experts' input to come from "
                "a moe.dispatch of a moe.gate (for the per-expert row counts)";
    // After the exchange each expert holds G blocks of C rows.
    Value rowsPerExpert = i64(dispatch.getCapacity());
    if (a2a)
      rowsPerExpert = arith::MulIOp::create(
          builder, loc, rowsPerExpert,
          arith::ConstantIntOp::create(builder, loc, blocks, 64));
    auto type = cast<ShapedType>(input.getType());
    Value output = newView(op->getResult(0));
    if (auto fused = dyn_cast<FusedExpertsOp>(op)) {
      Value sharedInput = optView(fused.getSharedInput());
      moert::FusedExpertsOp::create(
          builder, loc, ctx, fused.getActivation(), type.getDimSize(2),
          fused.getFfnSize(), view(fused.getGateUp()),
          view(fused.getDownWeight()), view(input), output, rows,
          type.getDimSize(0), rowsPerExpert, blocks,
          sharedInput ? fused.getSharedFfnSize() : 0,
          optView(fused.getSharedGateUp()),
          optView(fused.getSharedDownWeight()), sharedInput,
          sharedInput ? newView(fused.getSharedResult()) : Value(),
          sharedInput ? tokens : Value());
      return success();
    }
    auto experts = cast<ExpertsOp>(op);
    if (experts.isGated()) {
      emitExpertStages(experts, rows, rowsPerExpert, blocks, output);
      return success();
    }
    // A plain FFN (fc1 + bias, act, fc2 + bias) is one call in both modes.
    moert::ExpertsOp::create(
        builder, loc, ctx, Value(), view(experts.getUpWeight()),
        optView(experts.getUpBias()), view(experts.getDownWeight()),
        optView(experts.getDownBias()),
        downBiasIf(experts.getDownWeight(), experts.getDownBias(), loc),
        experts.getActivation(), type.getDimSize(2), experts.getFfnSize(),
        view(input), output, rows, type.getDimSize(0), rowsPerExpert, blocks);
    return success();
  }
  if (isa<tensor::ConcatOp>(op))
    return success(); // a packed weight, loaded in init
  if (auto fused = dyn_cast<FusedCombineOp>(op)) {
    DispatchOp dispatch = combinedDispatch(fused.getInput());
    if (!dispatch)
      return fused.emitError() << "moe-lower-to-runtime needs the combined "
                                  "rows to come from moe.experts on a "
                                  "moe.dispatch (for the capacity)";
    Value out, addend;
    if (foldsResidual(fused)) {
      out = addend = view(fused->getParentOfType<LayerOp>().getInput());
      views[fused.getResult()] = out;
    } else {
      out = newView(fused.getResult());
    }
    auto ids = cast<ShapedType>(fused.getExpertIds().getType());
    auto in = cast<ShapedType>(fused.getInput().getType());
    moert::FusedCombineOp::create(
        builder, loc, ctx, view(fused.getInput()), view(fused.getExpertIds()),
        view(fused.getSlots()), view(fused.getWeights()),
        optView(fused.getMlpOutput()), optView(fused.getCoefWeight()),
        optView(fused.getCoefBias()), optView(fused.getShared()),
        optView(fused.getSharedGateWeight()), optView(fused.getX()), addend,
        out, tokens, in.getDimSize(2), ids.getDimSize(1), in.getDimSize(0),
        i64(dispatch.getCapacity()));
    return success();
  }
  if (auto combine = dyn_cast<CombineOp>(op)) {
    DispatchOp dispatch = combinedDispatch(combine.getInput());
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
        tokens, in.getDimSize(2), ids.getDimSize(1), in.getDimSize(0),
        i64(dispatch.getCapacity()));
    return success();
  }
  if (auto dense = dyn_cast<DenseFfnOp>(op)) {
    // Tensor parallel: the FFN runs on the tp group's gathered tokens.
    Value rows = tokens;
    if (dense.getInput().getDefiningOp<shard::AllGatherOp>())
      rows = arith::MulIOp::create(
          builder, loc, tokens,
          arith::ConstantIntOp::create(builder, loc, planOf(op).getTp(), 64));
    // The output view before the bias predicate: the emitted C++'s order.
    Value output = newView(dense.getResult());
    Value biasIf = downBiasIf(dense.getDownWeight(), dense.getDownBias(), loc);
    moert::DenseFfnOp::create(
        builder, loc, ctx, optView(dense.getGateWeight()),
        view(dense.getUpWeight()), optView(dense.getUpBias()),
        view(dense.getDownWeight()), optView(dense.getDownBias()), biasIf,
        dense.getActivation(), hiddenOf(dense.getInput()), dense.getFfnSize(),
        view(dense.getInput()), output, rows);
    return success();
  }
  if (isa<shard::AllGatherOp, shard::ReduceScatterOp>(op)) {
    // The count, the receiving view, then the group: the emitted C++'s order.
    Value count =
        tokenElements(hiddenOf(isa<shard::AllGatherOp>(op) ? op->getOperand(0)
                                                           : op->getResult(0)),
                      loc);
    Value recv = newView(op->getResult(0));
    Value group = tpGroup(planOf(op), loc);
    Value send = view(op->getOperand(0));
    if (isa<shard::AllGatherOp>(op))
      moert::AllGatherOp::create(builder, loc, ctx, group, send, recv, count);
    else
      moert::ReduceScatterOp::create(builder, loc, ctx, group, send, recv,
                                     count);
    return success();
  }
  if (auto mix = dyn_cast<ResidualMixOp>(op)) {
    moert::ResidualMixOp::create(
        builder, loc, ctx, view(mix.getInput()), view(mix.getCoefWeight()),
        optView(mix.getCoefBias()), view(mix.getMoeOutput()),
        view(mix.getMlpOutput()), newView(mix.getResult()), tokens,
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
    if (view(yield.getValue()) != in) // else a fused combine added it
      moert::AddOp::create(builder, loc, ctx, in, view(yield.getValue()), in,
                           tokenElements(hiddenOf(yield.getValue()), loc));
    layerGroups.clear();
    builder.setInsertionPointAfter(builder.getBlock()->getParentOp());
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

void FunctionLowering::emitKeptGroups() {
  OpBuilder::InsertionGuard guard(builder);
  Block &body = initFunc.getBody().front();
  builder.setInsertionPoint(body.getTerminator());
  for (auto [table, slot] : groupSlots)
    moert::KeepGroupOp::create(builder, initFunc.getLoc(), body.getArgument(0),
                               cast<DenseIntElementsAttr>(table), slot);
}

void FunctionLowering::emitExpertStages(ExpertsOp experts, Value rows,
                                        Value rowsPerExpert, int64_t blocks,
                                        Value output) {
  Location loc = experts.getLoc();
  auto type = cast<ShapedType>(experts.getInput().getType());
  int64_t e = type.getDimSize(0), hidden = type.getDimSize(2),
          ffn = experts.getFfnSize();
  // gate/up [E, C, F] fp32 at the input's row bound, side by side.
  int64_t elements = staticElements(experts.getInput()) / hidden * ffn;
  auto f32 =
      ViewType::get(builder.getContext(), builder.getF32Type(), elements);
  int64_t first = stageOffsets.lookup(experts) / 4;
  Value h = ViewOp::create(builder, loc, f32, arena, first);
  Value u = ViewOp::create(builder, loc, f32, arena,
                           first + alignTo(elements * 4) / 4);
  Value in = view(experts.getInput());
  auto linear = [&](Value w, Value x, Value y, int64_t n, int64_t k) {
    moert::ExpertsLinearOp::create(builder, loc, ctx, view(w), x, y, rows, e,
                                   rowsPerExpert, blocks, n, k);
  };
  linear(experts.getGateWeight(), in, h, ffn, hidden);
  linear(experts.getUpWeight(), in, u, ffn, hidden);
  // E * C * F at this step's capacity (unused rows hold zeros).
  Value count = arith::MulIOp::create(
      builder, loc, rowsPerExpert,
      arith::ConstantIntOp::create(builder, loc, e * ffn, 64));
  moert::ActivationOp::create(builder, loc, ctx, experts.getActivation(), h, h,
                              count);
  moert::MultiplyOp::create(builder, loc, ctx, h, u, h, count);
  linear(experts.getDownWeight(), h, output, hidden, ffn);
}

LogicalResult FunctionLowering::run(int64_t &peakBytes,
                                    int64_t &weightBytesOut) {
  if (failed(analyze()) || failed(emit()))
    return failure();
  peakBytes = arenaBytes;
  weightBytesOut = weightBytes;
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
      if (failed(FunctionLowering(func, maxTokens, staticCapacity)
                     .run(peak, weightBytes)))
        return signalPassFailure();
      func->setAttr("moert.peak_bytes", b.getI64IntegerAttr(peak));
      func->setAttr("moert.weight_bytes", b.getI64IntegerAttr(weightBytes));
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
