//===- InitLowering.cpp - the weights and the init entry ------------------===//

#include "passes/Conversion/MoeToMoert/InitLowering.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::moe;
using moert::ViewOp;
using moert::ViewType;

LogicalResult InitLowering::placeWeights() {
  func::FuncOp func = state.getFunction();
  Block &entry = func.getBody().front();
  // A packed gate_up weight is one slot its two arguments load into: gate
  // rows then up rows of each expert, experts 2F*H elements apart.
  DenseMap<Value, tensor::ConcatOp> packedInto;
  entry.walk([&](tensor::ConcatOp concat) {
    for (Value part : concat.getOperands())
      packedInto[part] = concat;
  });
  auto addSlot = [&](Value value, SmallVector<WeightPart, 2> parts) {
    slots.push_back({value, weightBytes, parts});
    ViewType vt = state.viewTypeOf(value);
    weightBytes = addSizes(
        weightBytes, alignTo(mulSizes(vt.getCount(), vt.getElementBytes())));
    if (!state.isQuantized(value))
      return;
    // Its scales: the next slot, loaded from the "..._scale_inv" key.
    slots.push_back({value, weightBytes, std::move(parts), true});
    ViewType scales = state.scaleViewTypeOf(value);
    weightBytes =
        addSizes(weightBytes, alignTo(mulSizes(scales.getCount(), 4)));
  };
  for (BlockArgument arg :
       entry.getArguments().drop_front(state.getNumInputs())) {
    if (cacheElementsPerPosition(arg.getType()) > 0)
      continue;
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
    if (func.getArgAttr(arg.getArgNumber(), MoeDialect::kWeightRowsAttrName))
      return func.emitError()
             << "argument #" << arg.getArgNumber() << ": a '"
             << MoeDialect::kWeightRowsAttrName
             << "' part cannot be packed into a gate_up weight";
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
  for (BlockArgument arg : entry.getArguments())
    if (Type element = cacheElementType(arg.getType())) {
      caches.push_back({arg, addSizes(weightBytes, cacheBytes)});
      cacheBytes = addSizes(cacheBytes,
                            alignTo(mulSizes(state.cacheElements(arg.getType()),
                                             elementBytes(element))));
    }
  return success();
}

LogicalResult InitLowering::emitInit() {
  func::FuncOp func = state.getFunction();
  OpBuilder &builder = state.getBuilder();
  MLIRContext *context = func.getContext();
  Location loc = func.getLoc();
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPoint(func);
  initFunc =
      func::FuncOp::create(builder, loc, (func.getSymName() + "_init").str(),
                           FunctionType::get(context,
                                             {moert::ContextType::get(context),
                                              moert::WeightsType::get(context),
                                              state.getStateType()},
                                             {}));
  initFunc->setAttr("moert.entry", builder.getStringAttr("init"));
  Block *body = initFunc.addEntryBlock();
  builder.setInsertionPointToEnd(body);
  Value ctx = body->getArgument(0), file = body->getArgument(1),
        stateBuffer = body->getArgument(2);
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
      if (failed(emitLoad(slot, part, ctx, file, stateBuffer, shardOffset)))
        return failure();
  }
  func::ReturnOp::create(builder, loc);
  return success();
}

namespace {
/// Where a weight lies in the tensor stored in the checkpoint
/// (moert_fused_view_t).
struct StoredView {
  SmallVector<int64_t> shape;
  int64_t offset, expertStride;
  SmallVector<int64_t> strides;
};
} // namespace

/// A fused view of an mxfp4 weight [E?, n, k], given on the fused tensor as
/// its bf16 copy stores it ([E?, A, B], x @ W), as a view of what the
/// checkpoint stores: gpt-oss keeps each [A, B] transposed and packed along
/// A, "<key>_blocks" [E?, B, A / 32, 16] and "<key>_scales" [E?, B, A / 32]
/// (transformers' dequantization transposes them back). The weight's rows
/// must then be rows of the stored tensor (its k running along A): strides
/// {s, B}, its rows offset + s * i below B.
static FailureOr<StoredView> mxfp4FusedView(func::FuncOp func,
                                            BlockArgument arg, StringRef key,
                                            FusedViewAttr view, bool stacked,
                                            bool scales) {
  auto type = cast<RankedTensorType>(arg.getType());
  ArrayRef<int64_t> fused = view.getShape();
  ArrayRef<int64_t> strides = view.getStrides();
  int64_t rows = type.getShape().take_back(2).front();
  bool fits = fused.size() == (stacked ? 3u : 2u) && strides.size() == 2;
  int64_t a = fits ? fused[fused.size() - 2] : 0, b = fits ? fused.back() : 0;
  fits = fits && strides[1] == b && a % 32 == 0 && view.getOffset() < b &&
         view.getOffset() + (rows - 1) * strides[0] < b &&
         (!stacked || view.getExpertStride() == a * b);
  if (!fits)
    return func.emitError()
           << "argument #" << arg.getArgNumber() << " ('" << key
           << "'): an mxfp4 weight's '" << MoeDialect::kFusedViewAttrName
           << "' must select whole rows of the stored [B, A] (strides [s, B] "
              "over a fused [E?, A, B] with A a multiple of 32, rows inside "
              "B), got "
           << view;
  // Per stored row: A / 2 bytes of blocks, or A / 32 scales.
  int64_t row = scales ? a / 32 : a / 2;
  StoredView stored;
  if (stacked)
    stored.shape.push_back(fused.front());
  stored.shape.append({b, a / 32});
  stored.strides = {strides[0] * row, scales ? 1 : 16};
  if (!scales) {
    stored.shape.push_back(16);
    stored.strides.push_back(1);
  }
  stored.offset = view.getOffset() * row;
  stored.expertStride = b * row;
  return stored;
}

LogicalResult InitLowering::emitLoad(
    const WeightSlot &slot, const WeightPart &part, Value ctx, Value file,
    Value stateBuffer,
    llvm::function_ref<Value(Location, PlanAttr, ShardAxis, int64_t)>
        shardOffset) {
  func::FuncOp func = state.getFunction();
  OpBuilder &builder = state.getBuilder();
  BlockArgument arg = part.arg;
  Location l = arg.getLoc();
  auto type = cast<RankedTensorType>(arg.getType());
  // The rest of the slot from this part on: a packed part's last expert
  // ends a stride-multiple further than its own elements.
  ViewType slotType = slot.scales ? state.scaleViewTypeOf(slot.value)
                                  : state.viewTypeOf(slot.value);
  ViewType vt = ViewType::get(func.getContext(), slotType.getElementType(),
                              slotType.getCount() - part.elementOffset);
  Value v =
      ViewOp::create(builder, l, vt, stateBuffer,
                     slot.offset / vt.getElementBytes() + part.elementOffset);
  std::string key = func.getArgAttrOfType<StringAttr>(
                            arg.getArgNumber(), MoeDialect::kWeightAttrName)
                        .getValue()
                        .str();
  // The checkpoint's names: fp8 (DeepSeek-V3, Qwen3-FP8) keeps the data
  // under "<name>.weight" and the scales under "<name>.weight_scale_inv";
  // mxfp4 (gpt-oss) stores "<key>_blocks" [.., G, 16] and "<key>_scales".
  bool mx = state.isQuantized(arg) &&
            state.getWeightFormat() == moert::WeightFormat::mxfp4;
  if (mx) {
    key += slot.scales ? "_scales" : "_blocks";
  } else if (slot.scales) {
    if (!StringRef(key).ends_with("weight"))
      return func.emitError()
             << "argument #" << arg.getArgNumber() << ": fp8 weight key '"
             << key << "' does not end in 'weight', so its '_scale_inv' "
             << "scales have no name";
    key += "_scale_inv";
  }
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
  bool split = plan && llvm::any_of(axes, [&, plan = plan](ShardAxis a) {
                 return plan.getDegree(a) > 1;
               });
  if (auto rows = func.getArgAttrOfType<DenseI64ArrayAttr>(
          arg.getArgNumber(), MoeDialect::kWeightRowsAttrName)) {
    // Block scales of a fused tensor's row range are not cut out yet.
    if (state.isQuantized(arg))
      return func.emitError()
             << "argument #" << arg.getArgNumber() << " ('" << key
             << "'): quantized weights stored fused with others ('"
             << MoeDialect::kWeightRowsAttrName << "') are not supported";
    return emitFusedRowsLoad(arg, rows, key, v, ctx, file, plan, axes,
                             shardOffset);
  }
  if (state.isQuantized(arg) &&
      llvm::any_of(ArrayRef<ShardAxis>(axes).take_back(2),
                   [&, plan = plan](ShardAxis a) {
                     return plan && plan.getDegree(a) > 1;
                   }))
    return func.emitError()
           << "argument #" << arg.getArgNumber() << " ('" << key
           << "'): block-quantized weights (fp8, mxfp4) are split over "
              "experts only, not sliced (expert slicing or tensor-parallel "
              "FFNs)";
  auto fusedView = func.getArgAttrOfType<FusedViewAttr>(
      arg.getArgNumber(), MoeDialect::kFusedViewAttrName);
  // fp8 block scales of a view into a fused tensor are not cut out yet;
  // mxfp4 views read their rows' blocks and scales (mxfp4FusedViews).
  if (fusedView && state.isQuantized(arg) && !mx)
    return func.emitError()
           << "argument #" << arg.getArgNumber() << " ('" << key
           << "'): fp8 weights stored fused with others ('"
           << MoeDialect::kFusedViewAttrName << "') are not supported";
  bool stacked = fusedView
                     ? static_cast<int64_t>(fusedView.getStrides().size()) ==
                           type.getRank() - 1
                     : StringRef(key).contains(MoeDialect::kExpertPlaceholder);
  SmallVector<int64_t> shape(type.getShape());
  if (slot.scales) { // [E?, ceil(rows / R), ceil(cols / C)]
    int64_t rank = shape.size();
    shape[rank - 2] = llvm::divideCeil(shape[rank - 2], state.getBlockRows());
    shape[rank - 1] = llvm::divideCeil(shape[rank - 1], state.getBlockCols());
  } else if (mx) { // [E?, rows, cols / 32, 16]
    shape.back() /= 32;
    shape.push_back(16);
    axes.push_back(ShardAxis::none);
  }
  ArrayRef<int64_t> local = shape;
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
  if (fusedView) {
    // Straight from the fused tensor into the slot; a weight without
    // experts is expert 0 of 1.
    if (!range)
      range = builder.getDenseI64ArrayAttr({0, 1});
    StoredView stored{llvm::to_vector(fusedView.getShape()),
                      fusedView.getOffset(), fusedView.getExpertStride(),
                      llvm::to_vector(fusedView.getStrides())};
    if (mx) {
      FailureOr<StoredView> packed =
          mxfp4FusedView(func, arg, key, fusedView, stacked, slot.scales);
      if (failed(packed))
        return failure();
      stored = *packed;
    }
    moert::LoadFusedWeightOp::create(
        builder, l, ctx, file, builder.getStringAttr(key),
        builder.getDenseI64ArrayAttr(stored.shape),
        builder.getI64IntegerAttr(stored.offset),
        builder.getI64IntegerAttr(stored.expertStride),
        builder.getDenseI64ArrayAttr(stored.strides),
        builder.getDenseI64ArrayAttr(full), builder.getDenseI64ArrayAttr(zeros),
        builder.getDenseI64ArrayAttr(end), range, expertOffset, offsets,
        part.stride, v);
    return success();
  }
  moert::LoadWeightOp::create(builder, l, ctx, file, builder.getStringAttr(key),
                              builder.getDenseI64ArrayAttr(full),
                              builder.getDenseI64ArrayAttr(zeros),
                              builder.getDenseI64ArrayAttr(end), range,
                              expertOffset, offsets, part.stride, v);
  return success();
}

/// A `moe.weight_rows` part: the argument `[R, rest...]` is rows part*r ..
/// (part+1)*r of each of G groups of P*r rows in the stored `[G*P*r,
/// rest...]` (r = R/G). It is requested as `[G, r, rest...]` through a
/// fused view; a tp split of R splits the groups.
LogicalResult InitLowering::emitFusedRowsLoad(
    BlockArgument arg, DenseI64ArrayAttr rows, StringRef key, Value dst,
    Value ctx, Value file, PlanAttr plan, ArrayRef<ShardAxis> axes,
    llvm::function_ref<Value(Location, PlanAttr, ShardAxis, int64_t)>
        shardOffset) {
  func::FuncOp func = state.getFunction();
  OpBuilder &builder = state.getBuilder();
  Location l = arg.getLoc();
  auto type = cast<RankedTensorType>(arg.getType());
  int64_t groups = rows[0], parts = rows[1], part = rows[2];
  auto degree = [&](ShardAxis axis) {
    return plan ? plan.getDegree(axis) : int64_t(1);
  };
  if (key.contains(MoeDialect::kExpertPlaceholder) || type.getRank() > 3)
    return func.emitError() << "argument #" << arg.getArgNumber() << ": '"
                            << MoeDialect::kWeightRowsAttrName
                            << "' takes one tensor of rank 1 to 3, not '" << key
                            << "' of " << type;
  int64_t splits = degree(axes[0]);
  int64_t fullRows = type.getDimSize(0) * splits;
  if (fullRows % groups != 0 || groups % splits != 0)
    return func.emitError()
           << "argument #" << arg.getArgNumber() << ": " << fullRows
           << " rows do not split into " << groups << " groups of parts"
           << (splits > 1 ? " on " + std::to_string(splits) + " ranks" : "");
  int64_t r = fullRows / groups;
  SmallVector<int64_t> shape = {groups, r}, fused = {groups * parts * r};
  SmallVector<int64_t> localShape = {groups / splits, r};
  int64_t inner = 1;
  for (int64_t d = 1; d < type.getRank(); ++d) {
    int64_t full = type.getDimSize(d) * degree(axes[d]);
    shape.push_back(full);
    fused.push_back(full);
    localShape.push_back(type.getDimSize(d));
    inner *= full;
  }
  // Row-major strides of the stored tensor, seen through [G, r, rest...].
  SmallVector<int64_t> strides(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 2; --d)
    strides[d] = strides[d + 1] * shape[d + 1];
  strides[1] = inner;
  strides[0] = parts * r * inner;
  bool split = plan && llvm::any_of(axes, [&, plan = plan](ShardAxis a) {
                 return plan.getDegree(a) > 1;
               });
  SmallVector<int64_t> zeros(shape.size(), 0), end(shape.size(), 0);
  SmallVector<Value> offsets;
  if (split) {
    end.assign(localShape.begin(), localShape.end());
    offsets.push_back(shardOffset(l, plan, axes[0], groups / splits));
    offsets.push_back(shardOffset(l, plan, ShardAxis::none, r));
    for (int64_t d = 1; d < type.getRank(); ++d)
      offsets.push_back(shardOffset(l, plan, axes[d], type.getDimSize(d)));
  }
  // One part of one tensor: expert 0 of 1 of the fused view.
  moert::LoadFusedWeightOp::create(
      builder, l, ctx, file, builder.getStringAttr(key),
      builder.getDenseI64ArrayAttr(fused),
      builder.getI64IntegerAttr(part * r * inner), builder.getI64IntegerAttr(0),
      builder.getDenseI64ArrayAttr(strides),
      builder.getDenseI64ArrayAttr(shape), builder.getDenseI64ArrayAttr(zeros),
      builder.getDenseI64ArrayAttr(end), builder.getDenseI64ArrayAttr({0, 1}),
      Value(), offsets, /*dst_expert_stride=*/0, dst);
  return success();
}

void InitLowering::emitWeightViews() {
  OpBuilder &builder = state.getBuilder();
  for (const WeightSlot &slot : slots) {
    ViewType vt = slot.scales ? state.scaleViewTypeOf(slot.value)
                              : state.viewTypeOf(slot.value);
    Value view =
        ViewOp::create(builder, slot.value.getLoc(), vt, state.getArena(),
                       slot.offset / vt.getElementBytes());
    if (slot.scales)
      state.setScaleView(slot.value, view);
    else
      state.setView(slot.value, view);
  }
  for (auto [arg, offset] : caches) {
    auto vt =
        ViewType::get(builder.getContext(), cacheElementType(arg.getType()),
                      state.cacheElements(arg.getType()));
    state.setView(arg,
                  ViewOp::create(builder, arg.getLoc(), vt, state.getArena(),
                                 offset / vt.getElementBytes()));
  }
}

void InitLowering::emitKeptGroups() {
  OpBuilder &builder = state.getBuilder();
  OpBuilder::InsertionGuard guard(builder);
  Block &body = initFunc.getBody().front();
  builder.setInsertionPoint(body.getTerminator());
  for (auto [table, slot] : state.getGroupSlots())
    moert::KeepGroupOp::create(builder, initFunc.getLoc(), body.getArgument(0),
                               cast<DenseIntElementsAttr>(table), slot);
}
