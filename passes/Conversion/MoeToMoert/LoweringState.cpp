//===- LoweringState.cpp - what the moe op lowerings share ----------------===//

#include "passes/Conversion/MoeToMoert/LoweringState.h"

#include "passes/Conversion/MoeToMoert/BufferPlan.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace mlir::moe;
using moert::ViewOp;
using moert::ViewType;

int64_t mlir::moe::alignTo(int64_t bytes) {
  return (bytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
}

int64_t mlir::moe::elementBytes(Type type) {
  return type.isF32() || type.isInteger(32) ? 4 : type.isInteger(64) ? 8 : 2;
}

LoweringState::LoweringState(func::FuncOp func, int64_t maxTokens,
                             bool staticCapacity, int64_t maxBatch,
                             int64_t maxSeq)
    : func(func), maxTokens(maxTokens), staticCapacity(staticCapacity),
      maxBatch(maxBatch), maxSeq(maxSeq), builder(func.getContext()) {
  Block &entry = func.getBody().front();
  auto first = entry.getNumArguments()
                   ? dyn_cast<RankedTensorType>(entry.getArgument(0).getType())
                   : RankedTensorType();
  decoder =
      first && first.getRank() == 1 && first.getElementType().isInteger(32);
}

int64_t LoweringState::cacheElements(Type cacheType) const {
  return mulSizes(mulSizes(maxBatch, maxSeq),
                  cacheElementsPerPosition(cacheType));
}

bool LoweringState::isModelOutput(Value value) const {
  if (!decoder)
    return false;
  func::FuncOp f = func; // a handle: getBody is not const
  Operation *ret = f.getBody().front().getTerminator();
  return llvm::is_contained(ret->getOperands(), value);
}

int64_t LoweringState::staticElements(Value value) const {
  int64_t elements = 1;
  for (int64_t d : cast<ShapedType>(value.getType()).getShape())
    elements =
        mulSizes(elements, ShapedType::isDynamic(d) ? bounds.lookup(value) : d);
  return elements;
}

ViewType LoweringState::viewTypeOf(Value tensor) const {
  MLIRContext *context = tensor.getContext();
  if (!isQuantized(tensor))
    return ViewType::get(context,
                         cast<ShapedType>(tensor.getType()).getElementType(),
                         staticElements(tensor));
  // mxfp4: two e2m1 values a byte.
  if (weightFormat == moert::WeightFormat::mxfp4)
    return ViewType::get(context,
                         IntegerType::get(context, 8, IntegerType::Unsigned),
                         staticElements(tensor) / 2);
  return ViewType::get(context, Float8E4M3FNType::get(context),
                       staticElements(tensor));
}

ViewType LoweringState::scaleViewTypeOf(Value weight) const {
  ArrayRef<int64_t> shape = cast<ShapedType>(weight.getType()).getShape();
  int64_t rows = shape[shape.size() - 2], cols = shape.back();
  int64_t elements =
      llvm::divideCeil(rows, blockRows) * llvm::divideCeil(cols, blockCols);
  if (shape.size() == 3)
    elements = mulSizes(elements, shape.front());
  MLIRContext *context = weight.getContext();
  Type element = weightFormat == moert::WeightFormat::mxfp4
                     ? Type(IntegerType::get(context, 8, IntegerType::Unsigned))
                     : Type(Float32Type::get(context));
  return ViewType::get(context, element, elements);
}

LogicalResult LoweringState::collectQuantizedWeights() {
  auto module = func->getParentOfType<ModuleOp>();
  auto quant = module ? module->getAttrOfType<DictionaryAttr>(
                            MoeDialect::kWeightQuantAttrName)
                      : DictionaryAttr();
  if (!quant)
    return success();
  auto block = quant.getAs<DenseI64ArrayAttr>("block");
  blockRows = block[0];
  blockCols = block[1];
  if (quant.getAs<StringAttr>("format").getValue() == "mxfp4")
    weightFormat = moert::WeightFormat::mxfp4;
  auto add = [&](Operation *ffn, Value weight) -> LogicalResult {
    auto arg = dyn_cast<BlockArgument>(weight);
    if (!arg || arg.getOwner()->getParentOp() != func)
      return ffn->emitError() << "convert-moe-to-moert loads fp8 "
                                 "block-quantized FFN weights only as "
                                 "function arguments";
    auto type = cast<ShapedType>(arg.getType());
    if (weightFormat == moert::WeightFormat::mxfp4 &&
        type.getShape().back() % 32)
      return ffn->emitError()
             << "mxfp4 weights need a multiple of 32 columns, got "
             << type.getShape().back();
    quantizedWeights.insert(arg);
    return success();
  };
  WalkResult walk = func.walk([&](Operation *op) -> WalkResult {
    Value gate, up, down;
    if (auto experts = dyn_cast<ExpertsOp>(op)) {
      gate = experts.getGateWeight();
      up = experts.getUpWeight();
      down = experts.getDownWeight();
    } else if (auto dense = dyn_cast<DenseFfnOp>(op)) {
      gate = dense.getGateWeight();
      up = dense.getUpWeight();
      down = dense.getDownWeight();
    } else if (isa<AttentionOp>(op) &&
               weightFormat == moert::WeightFormat::mxfp4) {
      // MXFP4 checkpoints (gpt-oss) quantize the experts only: attention
      // weights load in the model dtype like any other.
      return WalkResult::advance();
    } else if (isa<FusedExpertsOp, AttentionOp, LatentAttentionOp>(op)) {
      op->emitError() << "convert-moe-to-moert lowers fp8 block-quantized "
                         "weights ('"
                      << MoeDialect::kWeightQuantAttrName
                      << "') for the gated experts and dense FFNs of an FFN "
                         "stack only";
      return WalkResult::interrupt();
    } else {
      return WalkResult::advance();
    }
    if (!gate) {
      op->emitError() << "fp8 block-quantized weights need a gated FFN "
                         "(moert_quantized_experts)";
      return WalkResult::interrupt();
    }
    for (Value w : {gate, up, down})
      if (failed(add(op, w)))
        return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return failure(walk.wasInterrupted());
}

LogicalResult LoweringState::bindInput() {
  Block &entry = func.getBody().front();
  if (entry.getNumArguments() < 1)
    return func.emitError("a model function takes the tokens x hidden input");
  // Only ranked tensors of the runtime's dtypes become views; an empty one
  // or one past the state's bytes could not be planned.
  auto checkView = [&](BlockArgument arg) -> LogicalResult {
    Type elementType = getElementTypeOrSelf(arg.getType());
    int64_t elements = staticElements(arg);
    auto diag = [&] {
      return emitError(arg.getLoc())
             << "model function argument #" << arg.getArgNumber() << ": ";
    };
    if (failed(moert::ViewType::verify(diag, elementType, elements)))
      return failure();
    if (mulSizes(elements, elementBytes(elementType)) <= kMaxStateBytes)
      return success();
    InFlightDiagnostic d = diag() << arg.getType();
    if (arg.getArgNumber() == 0)
      d << " at " << maxTokens << " tokens";
    return d << " takes more than " << kMaxStateBytes << " bytes";
  };
  if (decoder) {
    if (entry.getNumArguments() < 4)
      return func.emitError("a decoder takes token ids, sequences, "
                            "positions and the rows that sample");
    for (BlockArgument arg : entry.getArguments().take_front(4)) {
      auto type = dyn_cast<RankedTensorType>(arg.getType());
      if (!type || type.getRank() != 1 || !type.isDynamicDim(0) ||
          !type.getElementType().isInteger(32))
        return emitError(arg.getLoc())
               << "a decoder takes its token ids, sequences, positions and "
                  "the rows that sample as tensor<?xi32>, got "
               << arg.getType();
      setBound(arg, maxTokens);
    }
    // A step samples at most one row per sequence it holds.
    if (maxBatch > 0)
      setBound(entry.getArgument(3), std::min(maxBatch, maxTokens));
    bool hasCache = llvm::any_of(entry.getArguments(), [](BlockArgument a) {
      return cacheElementsPerPosition(a.getType()) > 0;
    });
    if (hasCache && (maxBatch <= 0 || maxSeq <= 0))
      return func.emitError()
             << "convert-moe-to-moert plans the KV caches per rank from "
                "max-batch and max-seq; pass both (got "
             << maxBatch << " and " << maxSeq << ")";
  } else {
    BlockArgument x = entry.getArgument(0);
    auto xType = dyn_cast<RankedTensorType>(x.getType());
    if (!xType || xType.getRank() != 2 || !xType.isDynamicDim(0) ||
        xType.isDynamicDim(1) || !isa<FloatType>(xType.getElementType()))
      return emitError(x.getLoc())
             << "a model function takes the tokens x hidden input as "
                "tensor<?xHxT> (T a float type), got "
             << x.getType();
    setBound(x, maxTokens);
    if (failed(checkView(x)))
      return failure();
  }
  for (BlockArgument arg : entry.getArguments().drop_front(getNumInputs())) {
    if (Type cacheElement = cacheElementType(arg.getType())) {
      if (!decoder)
        return emitError(arg.getLoc())
               << "a KV cache argument needs the decoder form (token ids "
                  "first)";
      if (mulSizes(cacheElements(arg.getType()), elementBytes(cacheElement)) >
          kMaxStateBytes)
        return emitError(arg.getLoc())
               << "the KV cache at max-batch " << maxBatch << " x max-seq "
               << maxSeq << " takes more than " << kMaxStateBytes << " bytes";
      continue;
    }
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!type || !type.hasStaticShape())
      return emitError(arg.getLoc())
             << "model function argument #" << arg.getArgNumber()
             << " must be a weight tensor of static shape, got "
             << arg.getType();
    if (failed(checkView(arg)))
      return failure();
  }
  return success();
}

LogicalResult LoweringState::checkOperandsLowered(Operation *op) const {
  for (OpOperand &operand : op->getOpOperands()) {
    Value value = operand.get();
    // Arguments: the input and the weights (checked by bindInput).
    if (isa<BlockArgument>(value) ||
        cacheElementsPerPosition(value.getType()) > 0 ||
        (isa<RankedTensorType>(value.getType()) ? view(value) : i64(value)))
      continue;
    return op->emitError() << "convert-moe-to-moert has no lowered value for "
                              "operand #"
                           << operand.getOperandNumber() << " ("
                           << value.getType() << ", from '"
                           << value.getDefiningOp()->getName() << "')";
  }
  return success();
}

void LoweringState::computeLiveRanges() {
  func.walk([&](Operation *op) {
    // A layer's result is its input, updated in place. Outside layers only
    // the decoder's prologue and epilogue (embedding, final norm, LM head)
    // produce tensors.
    if (isa<LayerOp>(op))
      return;
    for (Value result : op->getResults()) {
      if (!isa<RankedTensorType>(result.getType()) ||
          outOfArena.contains(result) || isModelOutput(result))
        continue;
      int64_t last = points[op];
      for (Operation *user : result.getUsers())
        last = std::max(last, points[user]);
      ranges[result] = {points[op], last};
      planned.push_back(result);
    }
  });
  for (auto [tensor, reader] : hiddenUses)
    ranges[tensor].second = std::max(ranges[tensor].second, points[reader]);
}

FailureOr<int64_t> LoweringState::planArena(int64_t weightBytes) {
  std::vector<PlannedBuffer> buffers;
  for (Value v : planned)
    buffers.push_back(
        {addSizes(
             alignTo(mulSizes(staticElements(v),
                              elementBytes(getElementTypeOrSelf(v.getType())))),
             extraBytes.lookup(v)),
         ranges[v].first, ranges[v].second});
  for (auto [op, bytes] : scratchBytes)
    buffers.push_back({bytes, points[op], points[op]});
  // The arena is at most the sum of its buffers: bound that, and the plan's
  // offsets cannot overflow.
  int64_t total = weightBytes;
  for (const PlannedBuffer &b : buffers)
    total = addSizes(total, b.bytes);
  if (total > kMaxStateBytes)
    return func.emitError()
           << "convert-moe-to-moert: the state of this function (weights "
           << weightBytes << " bytes, activations at " << maxTokens
           << " tokens) passes " << kMaxStateBytes << " bytes per rank";
  int64_t arenaBytes = planBuffers(buffers, kArenaAlignment);
  for (auto [v, b] : llvm::zip(planned, buffers))
    offsets[v] = weightBytes + b.offset;
  for (auto [scratch, b] :
       llvm::zip(scratchBytes, ArrayRef(buffers).drop_front(planned.size())))
    scratchOffsets[scratch.first] = weightBytes + b.offset;
  stateType = moert::BufferType::get(
      func.getContext(),
      std::max<int64_t>(weightBytes + arenaBytes, kArenaAlignment));
  return arenaBytes;
}

Block *LoweringState::beginStep() {
  MLIRContext *context = func.getContext();
  Block &entry = func.getBody().front();
  Block *body = new Block();
  ctx = body->addArgument(moert::ContextType::get(context), func.getLoc());
  arena = body->addArgument(stateType, func.getLoc());
  stats = body->addArgument(moert::StatsType::get(context), func.getLoc());
  tokens = body->addArgument(builder.getI64Type(), func.getLoc());
  if (decoder)
    sampleCount = body->addArgument(builder.getI64Type(), func.getLoc());
  for (Value input : entry.getArguments().take_front(getNumInputs()))
    views[input] = body->addArgument(viewTypeOf(input), input.getLoc());
  if (decoder) // the returned logits and next ids
    for (Value output : entry.getTerminator()->getOperands())
      if (!views.count(output))
        views[output] = body->addArgument(viewTypeOf(output), output.getLoc());
  builder.setInsertionPointToEnd(body);
  return body;
}

void LoweringState::finishStep(Block *body) {
  MLIRContext *context = func.getContext();
  if (decoder) {
    // What moe_model_info says of a decoder (runtime/moert_model.h).
    func.walk([&](EmbeddingOp embedding) {
      auto table = cast<ShapedType>(embedding.getTable().getType());
      func->setAttr("moert.hidden",
                    builder.getI64IntegerAttr(table.getDimSize(1)));
      func->setAttr("moert.dtype", TypeAttr::get(table.getElementType()));
    });
    func.walk([&](LmHeadOp head) {
      func->setAttr("moert.vocab", builder.getI64IntegerAttr(hiddenOf(head)));
    });
    int64_t attentionTp = 1;
    func.walk([&](Operation *op) {
      if (isa<AttentionOp, LatentAttentionOp>(op))
        if (PlanAttr plan = planOf(op))
          attentionTp = std::max(attentionTp, plan.getTp());
    });
    func->setAttr("moert.attention_tp", builder.getI64IntegerAttr(attentionTp));
    // longrope switches regime inside a generation the runner cannot redo
    // (transformers re-encodes the sequence there): the runner refuses it.
    int64_t ropeRegimeSwitch = 0;
    func.walk([&](AttentionOp attention) {
      std::optional<RopeAttr> rope = attention.getRope();
      if (rope && rope->getType() == RopeType::longrope)
        ropeRegimeSwitch = rope->getOriginalMaxPosition();
    });
    func->setAttr("moert.rope_regime_switch",
                  builder.getI64IntegerAttr(ropeRegimeSwitch));
    func->setAttr("moert.max_batch", builder.getI64IntegerAttr(maxBatch));
    func->setAttr("moert.max_seq", builder.getI64IntegerAttr(maxSeq));
  }
  func::ReturnOp::create(builder, func.getLoc());
  func.getBody().getBlocks().clear();
  func.getBody().push_back(body);
  func.setType(FunctionType::get(context, body->getArgumentTypes(), {}));
  func.setAllArgAttrs(SmallVector<DictionaryAttr>(
      body->getNumArguments(), DictionaryAttr::get(context)));
  func.setSymName((func.getSymName() + "_step").str());
  // The decoder's step has its own C signature: moe_model_forward.
  func->setAttr("moert.entry",
                builder.getStringAttr(decoder ? "forward" : "step"));
}

Value LoweringState::newView(Value result) {
  if (isModelOutput(result))
    return views.lookup(result);
  ViewType vt = viewTypeOf(result);
  Value v = ViewOp::create(builder, result.getLoc(), vt, arena,
                           offsets.lookup(result) / vt.getElementBytes());
  views[result] = v;
  return v;
}

Value LoweringState::group(DenseIntElementsAttr table, Location loc) {
  Value &g = layerGroups[table];
  if (!g) {
    auto slot = groupSlots.insert({table, int32_t(groupSlots.size())});
    g = moert::GroupOp::create(builder, loc,
                               moert::GroupType::get(builder.getContext()), ctx,
                               slot.first->second);
  }
  return g;
}

Value LoweringState::tpGroup(PlanAttr plan, Location loc) {
  int64_t rows = plan.getDp() * plan.getEp(), tp = plan.getTp();
  SmallVector<int64_t> ranks(rows * tp);
  for (int64_t r = 0; r < rows * tp; ++r)
    ranks[r] = r; // rank = (d * ep + e) * tp + t
  auto type = RankedTensorType::get({rows, tp}, builder.getI64Type());
  return group(DenseIntElementsAttr::get(type, ArrayRef<int64_t>(ranks)), loc);
}

Value LoweringState::firstSlice(PlanAttr plan, Location loc) {
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

Value LoweringState::downBiasIf(Value down, Value downBias, Location loc) {
  auto arg = dyn_cast<BlockArgument>(down);
  if (!downBias || !arg)
    return Value();
  auto [plan, shard] = shardOf(func, arg);
  if (!plan || plan.getTp() == 1 || !shard ||
      !llvm::is_contained(shard.getDims(), ShardAxis::tp))
    return Value();
  return firstSlice(plan, loc);
}

Value LoweringState::tokenElements(int64_t hidden, Location loc) {
  return arith::MulIOp::create(
      builder, loc, tokens,
      arith::ConstantIntOp::create(builder, loc, hidden, 64));
}

int64_t mlir::moe::hiddenOf(Value tensor) {
  return cast<ShapedType>(tensor.getType()).getShape().back();
}

PlanAttr mlir::moe::planOf(Operation *op) {
  auto layer = op->getParentOfType<LayerOp>();
  return layer ? layer->getAttrOfType<PlanAttr>(MoeDialect::kPlanAttrName)
               : PlanAttr();
}

std::pair<PlanAttr, ShardAttr> mlir::moe::shardOf(func::FuncOp func,
                                                  BlockArgument arg) {
  auto shard = func.getArgAttrOfType<ShardAttr>(arg.getArgNumber(),
                                                MoeDialect::kShardAttrName);
  for (Operation *user : arg.getUsers())
    if (auto layer = user->getParentOfType<LayerOp>())
      return {layer->getAttrOfType<PlanAttr>(MoeDialect::kPlanAttrName), shard};
  return {PlanAttr(), shard};
}

LogicalResult mlir::moe::checkSliced(Operation *ffn, Value down,
                                     int64_t parts) {
  auto arg = dyn_cast<BlockArgument>(down);
  auto func = ffn->getParentOfType<func::FuncOp>();
  auto [plan, shard] =
      arg && func ? shardOf(func, arg) : std::pair<PlanAttr, ShardAttr>();
  if (plan && shard && plan.getTp() == parts &&
      llvm::is_contained(shard.getDims(), ShardAxis::tp))
    return success();
  return ffn->emitError() << "convert-moe-to-moert sums this FFN's partial "
                             "outputs over "
                          << parts
                          << " tp slices: its down weight must be a function "
                             "argument split over tp by moe.shard";
}

DispatchOp mlir::moe::dispatchOf(Value expertsInput) {
  if (auto a2a = expertsInput.getDefiningOp<AllToAllOp>())
    expertsInput = a2a.getInput();
  return expertsInput.getDefiningOp<DispatchOp>();
}

Value mlir::moe::routedExpertsInput(Value rows) {
  if (auto experts = rows.getDefiningOp<ExpertsOp>())
    return experts.getInput();
  if (auto experts = rows.getDefiningOp<FusedExpertsOp>())
    return experts.getInput();
  return Value();
}

Value mlir::moe::gateCounts(Value ids) {
  if (auto gate = ids.getDefiningOp<GateOp>())
    return gate.getCounts();
  if (auto gate = ids.getDefiningOp<FusedGateOp>())
    return gate.getCounts();
  return Value();
}
