//===- MoeOps.cpp - moe dialect operations --------------------------------===//

#include "dialects/moe/IR/MoeOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallSet.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

//===----------------------------------------------------------------------===//
// Shape helpers: the single place the dialect's shape rules are spelled.
//===----------------------------------------------------------------------===//

static RankedTensorType tensorType(Value value) {
  return cast<RankedTensorType>(value.getType());
}

/// Two dimensions agree unless both are static and differ.
static bool dimsAgree(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

static std::string shapeString(ArrayRef<int64_t> shape) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "[";
  llvm::interleave(
      shape, os,
      [&](int64_t d) {
        if (ShapedType::isDynamic(d))
          os << "?";
        else
          os << d;
      },
      ", ");
  os << "]";
  return text;
}

/// Checks that `value` has `rank` dimensions agreeing with `expected`
/// (kDynamic entries of `expected` match anything).
static LogicalResult expectShape(Operation *op, StringRef what, Value value,
                                 ArrayRef<int64_t> expected) {
  ArrayRef<int64_t> shape = tensorType(value).getShape();
  if (shape.size() != expected.size() ||
      !llvm::all_of(llvm::zip(shape, expected), [](auto pair) {
        return dimsAgree(std::get<0>(pair), std::get<1>(pair));
      }))
    return op->emitOpError()
           << what << " must have shape " << shapeString(expected) << ", got "
           << shapeString(shape);
  return success();
}

static LogicalResult expectRank(Operation *op, StringRef what, Value value,
                                int64_t rank) {
  if (tensorType(value).getRank() != rank)
    return op->emitOpError() << what << " must be a rank-" << rank
                             << " tensor, got " << value.getType();
  return success();
}

static LogicalResult expectSameElementType(Operation *op, StringRef what,
                                           Value value, Value reference) {
  Type expected = tensorType(reference).getElementType();
  if (tensorType(value).getElementType() != expected)
    return op->emitOpError() << what << " must have element type " << expected
                             << ", got " << tensorType(value).getElementType();
  return success();
}

//===----------------------------------------------------------------------===//
// Rank groups: [[0, 1, 2, 3], [4, 5, 6, 7]], stored as a 2-D i64 tensor.
//===----------------------------------------------------------------------===//

ParseResult mlir::moe::parseRankGroups(OpAsmParser &parser,
                                       DenseIntElementsAttr &groups) {
  SmallVector<SmallVector<int64_t>> rows;
  SMLoc loc = parser.getCurrentLocation();
  auto parseRow = [&]() -> ParseResult {
    SmallVector<int64_t> &row = rows.emplace_back();
    return parser.parseCommaSeparatedList(
        OpAsmParser::Delimiter::Square, [&]() -> ParseResult {
          return parser.parseInteger(row.emplace_back());
        });
  };
  if (parser.parseCommaSeparatedList(OpAsmParser::Delimiter::Square, parseRow))
    return failure();
  SmallVector<int64_t> flat;
  for (const SmallVector<int64_t> &row : rows) {
    if (row.size() != rows.front().size())
      return parser.emitError(loc) << "rank groups must all have the same size";
    flat.append(row);
  }
  auto type = RankedTensorType::get(
      {static_cast<int64_t>(rows.size()),
       static_cast<int64_t>(rows.empty() ? 0 : rows.front().size())},
      parser.getBuilder().getI64Type());
  groups = DenseIntElementsAttr::get(type, flat);
  return success();
}

void mlir::moe::printRankGroups(OpAsmPrinter &p, Operation *,
                                DenseIntElementsAttr groups) {
  auto type = cast<ShapedType>(groups.getType());
  int64_t width =
      type.getRank() == 2 ? type.getDimSize(1) : type.getNumElements();
  SmallVector<int64_t> flat(groups.getValues<int64_t>());
  p << "[";
  for (int64_t start = 0; start < static_cast<int64_t>(flat.size());
       start += std::max<int64_t>(width, 1)) {
    if (start)
      p << ", ";
    p << "[";
    llvm::interleaveComma(ArrayRef(flat).slice(start, width), p);
    p << "]";
  }
  p << "]";
}

//===----------------------------------------------------------------------===//
// LayerOp
//===----------------------------------------------------------------------===//

// moe.layer 3 (%h = %x) : tensor<?x64xf32> { ... }
ParseResult LayerOp::parse(OpAsmParser &parser, OperationState &result) {
  int64_t index = 0;
  OpAsmParser::Argument bodyInput;
  OpAsmParser::UnresolvedOperand input;
  Type type;
  if (parser.parseInteger(index) || parser.parseLParen() ||
      parser.parseArgument(bodyInput) || parser.parseEqual() ||
      parser.parseOperand(input) || parser.parseRParen() ||
      parser.parseColonType(type))
    return failure();
  bodyInput.type = type;
  result.getOrAddProperties<Properties>().index = index;
  if (parser.resolveOperand(input, type, result.operands))
    return failure();
  result.addTypes(type);
  Region *body = result.addRegion();
  if (parser.parseRegion(*body, {bodyInput}) ||
      parser.parseOptionalAttrDict(result.attributes))
    return failure();
  return success();
}

void LayerOp::print(OpAsmPrinter &p) {
  p << " " << getIndex() << " (";
  p.printRegionArgument(getBodyInput(), /*argAttrs=*/{}, /*omitType=*/true);
  p << " = " << getInput() << ") : " << getInput().getType() << " ";
  p.printRegion(getBody(), /*printEntryBlockArgs=*/false);
  p.printOptionalAttrDict((*this)->getAttrs());
}

void LayerOp::getAsmBlockArgumentNames(Region &region,
                                       OpAsmSetValueNameFn setNameFn) {
  setNameFn(getBodyInput(), "h");
}

YieldOp LayerOp::getYield() {
  return cast<YieldOp>(getBody().front().getTerminator());
}

LogicalResult LayerOp::verifyRegions() {
  Block &body = getBody().front();
  if (body.getNumArguments() != 1 ||
      body.getArgument(0).getType() != getInput().getType())
    return emitOpError() << "body must take one argument of the input type "
                         << getInput().getType();
  if (getIndex() < 0)
    return emitOpError() << "layer index must be >= 0, got " << getIndex();
  Type yielded = getYield().getValue().getType();
  if (yielded != getInput().getType())
    return emitOpError() << "yields " << yielded
                         << " but the residual connection needs "
                         << getInput().getType();
  return success();
}

//===----------------------------------------------------------------------===//
// RouterOp
//===----------------------------------------------------------------------===//

LogicalResult RouterOp::inferReturnTypes(MLIRContext *context,
                                         std::optional<Location>,
                                         RouterOp::Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  auto input = cast<RankedTensorType>(adaptor.getInput().getType());
  auto weight = cast<RankedTensorType>(adaptor.getWeight().getType());
  if (input.getRank() != 2 || weight.getRank() != 2)
    return failure();
  inferred.push_back(RankedTensorType::get(
      {input.getDimSize(0), weight.getDimSize(0)}, Float32Type::get(context)));
  return success();
}

LogicalResult RouterOp::verify() {
  if (failed(expectRank(*this, "input", getInput(), 2)) ||
      failed(expectRank(*this, "weight", getWeight(), 2)))
    return failure();
  int64_t hidden = tensorType(getInput()).getDimSize(1);
  int64_t experts = tensorType(getWeight()).getDimSize(0);
  if (failed(expectShape(*this, "weight", getWeight(), {experts, hidden})))
    return failure();
  if (getBias() && failed(expectShape(*this, "bias", getBias(), {experts})))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// GateOp
//===----------------------------------------------------------------------===//

/// Shared by moe.gate and moe.fused_gate (same operands and results).
template <typename Adaptor>
static LogicalResult inferGateTypes(MLIRContext *context, Adaptor adaptor,
                                    SmallVectorImpl<Type> &inferred) {
  auto logits = cast<RankedTensorType>(adaptor.getLogits().getType());
  if (logits.getRank() != 2 || !adaptor.getRouting())
    return failure();
  int64_t tokens = logits.getDimSize(0);
  int64_t k = adaptor.getRouting().getTopK();
  Type i32 = IntegerType::get(context, 32);
  Type f32 = Float32Type::get(context);
  inferred.push_back(RankedTensorType::get({tokens, k}, i32));
  inferred.push_back(RankedTensorType::get({tokens, k}, f32));
  inferred.push_back(RankedTensorType::get({tokens, k}, i32));
  inferred.push_back(RankedTensorType::get({logits.getDimSize(1)}, i32));
  inferred.push_back(IndexType::get(context));
  return success();
}

LogicalResult GateOp::inferReturnTypes(MLIRContext *context,
                                       std::optional<Location>,
                                       GateOp::Adaptor adaptor,
                                       SmallVectorImpl<Type> &inferred) {
  return inferGateTypes(context, adaptor, inferred);
}

LogicalResult FusedGateOp::inferReturnTypes(MLIRContext *context,
                                            std::optional<Location>,
                                            FusedGateOp::Adaptor adaptor,
                                            SmallVectorImpl<Type> &inferred) {
  return inferGateTypes(context, adaptor, inferred);
}

void GateOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getExpertIds(), "expert_ids");
  setNameFn(getWeights(), "weights");
  setNameFn(getSlots(), "slots");
  setNameFn(getCounts(), "counts");
  setNameFn(getCapacity(), "capacity");
}

/// Shared by moe.gate and moe.fused_gate.
template <typename OpT> static LogicalResult verifyGate(OpT op) {
  if (failed(expectRank(op, "logits", op.getLogits(), 2)))
    return failure();
  int64_t experts = op.getNumExperts();
  if (ShapedType::isDynamic(experts))
    return op.emitOpError() << "the expert count (logits dimension 1) must be "
                               "static";
  RoutingAttr routing = op.getRouting();
  int64_t k = routing.getTopK();
  if (k > experts)
    return op.emitOpError()
           << "top_k = " << k << " exceeds the " << experts << " experts";
  int64_t groups = routing.getNGroup();
  if (experts % groups != 0)
    return op.emitOpError()
           << experts << " experts do not split into n_group = " << groups
           << " equal groups";
  int64_t perGroup = experts / groups;
  if (routing.getTopkGroup() * perGroup < k)
    return op.emitOpError()
           << "topk_group = " << routing.getTopkGroup() << " groups of "
           << perGroup << " experts hold fewer than top_k = " << k
           << " experts";
  if (routing.getGroupScore() == GroupScore::top2_sum && perGroup < 2)
    return op.emitOpError()
           << "group_score = top2_sum needs at least 2 experts "
              "per group, got "
           << perGroup;
  // The bias would change the choices but not the logits sparsemixer's
  // weights are taken from.
  if (op.getCorrectionBias() &&
      routing.getScoring() == ScoringFunc::sparsemixer)
    return op.emitOpError() << "scoring = sparsemixer takes no correction bias";
  if (op.getCorrectionBias() &&
      failed(expectShape(op, "correction bias", op.getCorrectionBias(),
                         {experts})))
    return failure();
  return success();
}

LogicalResult GateOp::verify() { return verifyGate(*this); }

LogicalResult FusedGateOp::verify() { return verifyGate(*this); }

void FusedGateOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getExpertIds(), "expert_ids");
  setNameFn(getWeights(), "weights");
  setNameFn(getSlots(), "slots");
  setNameFn(getCounts(), "counts");
  setNameFn(getCapacity(), "capacity");
}

//===----------------------------------------------------------------------===//
// DispatchOp / CombineOp
//===----------------------------------------------------------------------===//

/// Shared by dispatch and combine: the mapping table is [S, k] and `buffer`
/// is the expert-major [E, C, H] view of `tokens` [S, H].
static LogicalResult verifyTokenMapping(Operation *op, Value tokens,
                                        Value buffer, Value expertIds) {
  if (failed(expectRank(op, "token tensor", tokens, 2)) ||
      failed(expectRank(op, "expert buffer", buffer, 3)) ||
      failed(expectRank(op, "expert_ids", expertIds, 2)))
    return failure();
  RankedTensorType tokenType = tensorType(tokens);
  RankedTensorType bufferType = tensorType(buffer);
  if (!dimsAgree(tensorType(expertIds).getDimSize(0), tokenType.getDimSize(0)))
    return op->emitOpError()
           << "expert_ids has " << tensorType(expertIds).getDimSize(0)
           << " rows but there are " << tokenType.getDimSize(0) << " tokens";
  if (!dimsAgree(bufferType.getDimSize(2), tokenType.getDimSize(1)))
    return op->emitOpError()
           << "expert buffer hidden size " << bufferType.getDimSize(2)
           << " differs from the token hidden size " << tokenType.getDimSize(1);
  if (bufferType.getElementType() != tokenType.getElementType())
    return op->emitOpError()
           << "expert buffer element type " << bufferType.getElementType()
           << " differs from the token element type "
           << tokenType.getElementType();
  return success();
}

/// The routing of the gate that chose `expertIds`, when it is in sight.
static RoutingAttr routingOf(Value expertIds) {
  if (auto gate = expertIds.getDefiningOp<GateOp>())
    return gate.getRouting();
  if (auto gate = expertIds.getDefiningOp<FusedGateOp>())
    return gate.getRouting();
  return RoutingAttr();
}

/// The gate's weights apply exactly once: at the dispatch when its routing
/// says `weights = input`, at the combine otherwise.
static LogicalResult verifyWeightSite(Operation *op, Value expertIds,
                                      bool weighted, bool atDispatch) {
  RoutingAttr routing = routingOf(expertIds);
  if (!routing || weighted == (routing.weighsInput() == atDispatch))
    return success();
  return op->emitOpError()
         << (weighted ? "takes weights but its gate's routing has weights = "
                      : "takes no weights but its gate's routing has "
                        "weights = ")
         << stringifyWeightSite(routing.getWeights());
}

LogicalResult DispatchOp::verify() {
  if (failed(
          verifyTokenMapping(*this, getInput(), getResult(), getExpertIds())))
    return failure();
  if (failed(verifyWeightSite(*this, getExpertIds(),
                              static_cast<bool>(getWeights()),
                              /*atDispatch=*/true)))
    return failure();
  APInt capacity;
  int64_t rows = tensorType(getResult()).getDimSize(1);
  if (matchPattern(getCapacity(), m_ConstantInt(&capacity)) &&
      !dimsAgree(rows, capacity.getSExtValue()))
    return emitOpError() << "result has " << rows
                         << " rows per expert but the capacity is "
                         << capacity.getSExtValue();
  return success();
}

LogicalResult CombineOp::inferReturnTypes(MLIRContext *,
                                          std::optional<Location>,
                                          CombineOp::Adaptor adaptor,
                                          SmallVectorImpl<Type> &inferred) {
  auto buffer = cast<RankedTensorType>(adaptor.getInput().getType());
  auto ids = cast<RankedTensorType>(adaptor.getExpertIds().getType());
  if (buffer.getRank() != 3 || ids.getRank() != 2)
    return failure();
  inferred.push_back(RankedTensorType::get(
      {ids.getDimSize(0), buffer.getDimSize(2)}, buffer.getElementType()));
  return success();
}

LogicalResult CombineOp::verify() {
  if (failed(
          verifyTokenMapping(*this, getResult(), getInput(), getExpertIds())))
    return failure();
  return verifyWeightSite(*this, getExpertIds(),
                          static_cast<bool>(getWeights()),
                          /*atDispatch=*/false);
}

//===----------------------------------------------------------------------===//
// AllToAllOp
//===----------------------------------------------------------------------===//

LogicalResult mlir::moe::verifyRankGroups(Operation *op,
                                          DenseIntElementsAttr groups) {
  auto groupsType = cast<ShapedType>(groups.getType());
  if (groupsType.getRank() != 2 || groupsType.getNumElements() == 0)
    return op->emitOpError() << "groups must be a non-empty 2-D list of ranks "
                                "(one row per group)";
  llvm::SmallSet<int64_t, 16> seen;
  for (int64_t rank : groups.getValues<int64_t>()) {
    if (rank < 0)
      return op->emitOpError() << "rank " << rank << " in groups is negative";
    if (!seen.insert(rank).second)
      return op->emitOpError()
             << "rank " << rank << " appears in more than one place in groups";
  }
  return success();
}

LogicalResult SyncCapacityOp::verify() {
  return verifyRankGroups(*this, getGroups());
}

LogicalResult AllToAllOp::verify() {
  if (failed(verifyRankGroups(*this, getGroups())))
    return failure();
  int64_t groupSize = getGroupSize();
  int64_t slices = getSlices();
  if (slices < 1 || groupSize % slices != 0)
    return emitOpError() << "slices = " << slices
                         << " must be positive and divide the group size "
                         << groupSize;
  if (getVariant() == AllToAllVariant::hierarchical) {
    if (!getRanksPerNode())
      return emitOpError() << "hierarchical all_to_all needs ranks_per_node";
    int64_t perNode = *getRanksPerNode();
    if (perNode <= 1 || perNode >= groupSize || groupSize % perNode != 0)
      return emitOpError()
             << "hierarchical all_to_all needs 1 < ranks_per_node < group "
                "size with ranks_per_node dividing it; got ranks_per_node = "
             << perNode << " for groups of " << groupSize;
  } else if (getRanksPerNode()) {
    return emitOpError() << "ranks_per_node applies only to the hierarchical "
                            "variant";
  }

  if (failed(expectRank(*this, "input", getInput(), 3)) ||
      failed(expectRank(*this, "result", getResult(), 3)) ||
      failed(expectSameElementType(*this, "result", getResult(), getInput())))
    return failure();
  bool toExperts = getDirection() == AllToAllDirection::to_experts;
  // `global` is the [E, C, H] side, `local` the [E / EP, G * C, H] side.
  RankedTensorType global = tensorType(toExperts ? getInput() : getResult());
  int64_t experts = global.getDimSize(0), capacity = global.getDimSize(1);
  int64_t shards = groupSize / slices;
  if (ShapedType::isDynamic(experts))
    return emitOpError() << "the expert count must be static";
  if (experts % shards != 0)
    return emitOpError() << experts << " experts do not split over " << shards
                         << " expert-parallel ranks";
  int64_t rows = ShapedType::isDynamic(capacity) ? ShapedType::kDynamic
                                                 : capacity * groupSize;
  return expectShape(*this, toExperts ? "result" : "input",
                     toExperts ? getResult() : getInput(),
                     {experts / shards, rows, global.getDimSize(2)});
}

//===----------------------------------------------------------------------===//
// ExpertsOp / DenseFfnOp
//===----------------------------------------------------------------------===//

/// swiglu_clamped takes its alpha and limit (finite, > 0) and a gate to
/// clamp; every other activation takes neither.
static LogicalResult verifySwigluClamp(Operation *op, Activation activation,
                                       bool gated, FloatAttr alpha,
                                       FloatAttr limit) {
  if (activation != Activation::swiglu_clamped) {
    if (alpha || limit)
      return op->emitOpError()
             << "swiglu_alpha and swiglu_limit belong to swiglu_clamped, not "
             << stringifyActivation(activation);
    return success();
  }
  if (!gated)
    return op->emitOpError() << "swiglu_clamped needs a gate weight";
  for (auto [name, value] :
       {std::pair<StringRef, FloatAttr>{"swiglu_alpha", alpha},
        {"swiglu_limit", limit}}) {
    if (!value)
      return op->emitOpError() << "swiglu_clamped needs " << name;
    double v = value.getValueAsDouble();
    if (!std::isfinite(v) || v <= 0)
      return op->emitOpError() << name << " must be finite and > 0, got " << v;
  }
  return success();
}

/// One home for the FFN weight rules. `stack` is {E} for experts and {} for a
/// dense FFN: every weight and bias shape is prefixed by it.
template <typename FfnOp>
static LogicalResult verifyFfn(FfnOp op, ArrayRef<int64_t> stack) {
  int64_t rank = static_cast<int64_t>(stack.size()) + 2;
  if (failed(expectRank(op, "input", op.getInput(), rank)))
    return failure();
  if (!stack.empty() && failed(expectShape(op, "input", op.getInput(),
                                           {stack[0], ShapedType::kDynamic,
                                            ShapedType::kDynamic})))
    return failure();
  int64_t hidden = tensorType(op.getInput()).getDimSize(rank - 1);
  if (failed(expectRank(op, "up weight", op.getUpWeight(), rank)))
    return failure();
  int64_t ffn = op.getFfnSize();
  auto shape = [&](std::initializer_list<int64_t> tail) {
    SmallVector<int64_t> full(stack.begin(), stack.end());
    full.append(tail.begin(), tail.end());
    return full;
  };
  struct Expected {
    StringRef what;
    Value value;
    SmallVector<int64_t> shape;
  };
  Expected expected[] = {
      {"gate weight", op.getGateWeight(), shape({ffn, hidden})},
      {"gate bias", op.getGateBias(), shape({ffn})},
      {"up weight", op.getUpWeight(), shape({ffn, hidden})},
      {"up bias", op.getUpBias(), shape({ffn})},
      {"down weight", op.getDownWeight(), shape({hidden, ffn})},
      {"down bias", op.getDownBias(), shape({hidden})},
  };
  for (const Expected &e : expected) {
    if (!e.value)
      continue;
    if (failed(expectShape(op, e.what, e.value, e.shape)) ||
        failed(expectSameElementType(op, e.what, e.value, op.getInput())))
      return failure();
  }
  if (op.getGateBias() && !op.getGateWeight())
    return op.emitOpError() << "gate bias needs a gate weight";
  return verifySwigluClamp(op, op.getActivation(), op.isGated(),
                           op.getSwigluAlphaAttr(), op.getSwigluLimitAttr());
}

LogicalResult ExpertsOp::verify() {
  int64_t experts = tensorType(getUpWeight()).getRank() == 3
                        ? tensorType(getUpWeight()).getDimSize(0)
                        : ShapedType::kDynamic;
  if (ShapedType::isDynamic(experts))
    return emitOpError() << "up weight must be a stacked [E, F, H] tensor with "
                            "a static expert count, got "
                         << getUpWeight().getType();
  if (failed(verifyFfn(*this, {experts})))
    return failure();
  // Stacked weights loaded from per-expert safetensors keys name the expert.
  for (Value weight : getOperands().drop_front()) {
    auto arg = dyn_cast<BlockArgument>(weight);
    auto func = arg ? dyn_cast<func::FuncOp>(arg.getOwner()->getParentOp())
                    : func::FuncOp();
    if (!func)
      continue;
    auto key = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                 MoeDialect::kWeightAttrName);
    // ... or lie in one fused tensor (moe.fused_view).
    if (key && !key.getValue().contains(MoeDialect::kExpertPlaceholder) &&
        !func.getArgAttr(arg.getArgNumber(), MoeDialect::kFusedViewAttrName))
      return emitOpError() << "stacked expert weight '" << key.getValue()
                           << "' must name the expert with '"
                           << MoeDialect::kExpertPlaceholder
                           << "' or be a view of a fused tensor ('"
                           << MoeDialect::kFusedViewAttrName << "')";
  }
  return success();
}

LogicalResult DenseFfnOp::verify() {
  // The dense lowering has no stage calls for these (moe.experts has).
  if (getGateBias())
    return emitOpError() << "a gate bias is supported on moe.experts only";
  if (getActivation() == Activation::swiglu_clamped)
    return emitOpError() << "swiglu_clamped is supported on moe.experts only";
  return verifyFfn(*this, {});
}

LogicalResult FusedExpertsOp::verify() {
  if (getActivation() == Activation::swiglu_clamped)
    return emitOpError() << "swiglu_clamped experts stay unfused (moe.experts)";
  if (failed(expectRank(*this, "input", getInput(), 3)) ||
      failed(expectRank(*this, "down weight", getDownWeight(), 3)))
    return failure();
  ArrayRef<int64_t> down = tensorType(getDownWeight()).getShape();
  int64_t experts = down[0], hidden = down[1], ffn = down[2];
  if (failed(expectShape(*this, "input", getInput(),
                         {experts, ShapedType::kDynamic, hidden})) ||
      failed(expectShape(*this, "gate_up weight", getGateUp(),
                         {experts, 2 * ffn, hidden})) ||
      failed(expectSameElementType(*this, "gate_up weight", getGateUp(),
                                   getInput())) ||
      failed(expectSameElementType(*this, "down weight", getDownWeight(),
                                   getInput())))
    return failure();
  bool shared = static_cast<bool>(getSharedInput());
  if (shared != static_cast<bool>(getSharedGateUp()) ||
      shared != static_cast<bool>(getSharedDownWeight()) ||
      shared != static_cast<bool>(getSharedResult()))
    return emitOpError() << "a shared expert needs all its operands and its "
                            "result";
  if (!shared)
    return success();
  if (failed(expectRank(*this, "shared input", getSharedInput(), 2)) ||
      failed(expectRank(*this, "shared down weight", getSharedDownWeight(), 2)))
    return failure();
  int64_t sharedFfn = getSharedFfnSize();
  if (failed(expectShape(*this, "shared input", getSharedInput(),
                         {ShapedType::kDynamic, hidden})) ||
      failed(expectShape(*this, "shared result", getSharedResult(),
                         tensorType(getSharedInput()).getShape())) ||
      failed(expectShape(*this, "shared gate_up weight", getSharedGateUp(),
                         {2 * sharedFfn, hidden})) ||
      failed(expectShape(*this, "shared down weight", getSharedDownWeight(),
                         {hidden, sharedFfn})))
    return failure();
  for (auto [name, value] :
       {std::pair<StringRef, Value>{"shared input", getSharedInput()},
        {"shared gate_up weight", getSharedGateUp()},
        {"shared down weight", getSharedDownWeight()},
        {"shared result", getSharedResult()}})
    if (failed(expectSameElementType(*this, name, value, getInput())))
      return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// ResidualMixOp / SharedAddOp
//===----------------------------------------------------------------------===//

LogicalResult ResidualMixOp::verify() {
  if (failed(expectRank(*this, "moe output", getMoeOutput(), 2)))
    return failure();
  bool learned = static_cast<bool>(getInput());
  if (learned != static_cast<bool>(getCoefWeight()) ||
      learned != static_cast<bool>(getCoefBias()))
    return emitOpError() << "a learned coefficient needs the input, the "
                            "weight and the bias";
  if (learned == getCoefficients().has_value())
    return emitOpError() << "needs exactly one of a learned coefficient or a "
                            "constant one";
  if (!learned) {
    ArrayRef<double> coefficients = *getCoefficients();
    if (coefficients.size() != 2)
      return emitOpError() << "constant coefficient must have 2 entries, got "
                           << coefficients.size();
    return success();
  }
  int64_t hidden = tensorType(getMoeOutput()).getDimSize(1);
  if (failed(expectShape(*this, "input", getInput(),
                         tensorType(getMoeOutput()).getShape())) ||
      failed(expectShape(*this, "coefficient weight", getCoefWeight(),
                         {2, hidden})) ||
      failed(expectShape(*this, "coefficient bias", getCoefBias(), {2})))
    return failure();
  return success();
}

LogicalResult SharedAddOp::verify() {
  if (failed(expectRank(*this, "routed output", getRouted(), 2)))
    return failure();
  if (static_cast<bool>(getInput()) != static_cast<bool>(getGateWeight()))
    return emitOpError() << "a gated shared expert needs both the input and "
                            "the gate weight";
  if (!getInput())
    return success();
  int64_t hidden = tensorType(getRouted()).getDimSize(1);
  if (failed(expectShape(*this, "input", getInput(),
                         tensorType(getRouted()).getShape())) ||
      failed(expectShape(*this, "shared gate weight", getGateWeight(),
                         {1, hidden})))
    return failure();
  return success();
}

LogicalResult FusedCombineOp::verify() {
  if (failed(
          verifyTokenMapping(*this, getResult(), getInput(), getExpertIds())))
    return failure();
  if (failed(verifyWeightSite(*this, getExpertIds(),
                              static_cast<bool>(getWeights()),
                              /*atDispatch=*/false)))
    return failure();
  ArrayRef<int64_t> shape = tensorType(getResult()).getShape();
  int64_t hidden = shape[1];
  bool mix = static_cast<bool>(getMlpOutput());
  if (mix != static_cast<bool>(getCoefWeight()) ||
      mix != static_cast<bool>(getCoefBias()))
    return emitOpError() << "mix needs the MLP output, the coefficient "
                            "weight and the coefficient bias";
  if (getSharedGateWeight() && !getShared())
    return emitOpError() << "shared_gate needs shared";
  bool needsX = mix || getSharedGateWeight();
  if (needsX != static_cast<bool>(getX()))
    return emitOpError() << (needsX ? "mix and shared_gate read x; it is "
                                      "missing"
                                    : "x is given but nothing reads it");
  for (auto [name, value] :
       {std::pair<StringRef, Value>{"MLP output", getMlpOutput()},
        {"shared output", getShared()},
        {"x", getX()}})
    if (value && failed(expectShape(*this, name, value, shape)))
      return failure();
  if (mix &&
      (failed(expectShape(*this, "coefficient weight", getCoefWeight(),
                          {2, hidden})) ||
       failed(expectShape(*this, "coefficient bias", getCoefBias(), {2}))))
    return failure();
  if (getSharedGateWeight() &&
      failed(expectShape(*this, "shared gate weight", getSharedGateWeight(),
                         {1, hidden})))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// The decoder: embedding, norms, attention, LM head, argmax
//===----------------------------------------------------------------------===//

/// A per-token tensor `[S, H]`: rank 2, H static (the runtime's row size).
static LogicalResult expectTokenRows(Operation *op, StringRef what, Value v) {
  if (failed(expectRank(op, what, v, 2)))
    return failure();
  if (tensorType(v).isDynamicDim(1))
    return op->emitOpError()
           << what << " must have a static row size, got " << v.getType();
  return success();
}

LogicalResult EmbeddingOp::verify() {
  if (failed(expectRank(*this, "ids", getIds(), 1)) ||
      failed(expectRank(*this, "table", getTable(), 2)) ||
      failed(expectTokenRows(*this, "result", getResult())) ||
      failed(expectSameElementType(*this, "result", getResult(), getTable())))
    return failure();
  auto table = tensorType(getTable());
  if (!table.hasStaticShape())
    return emitOpError() << "table must have a static shape, got "
                         << getTable().getType();
  return expectShape(*this, "result", getResult(),
                     {tensorType(getIds()).getDimSize(0), table.getDimSize(1)});
}

LogicalResult RmsNormOp::verify() {
  if (failed(expectTokenRows(*this, "input", getInput())))
    return failure();
  double epsilon = getEpsilon().convertToDouble();
  if (!(epsilon >= 0.0) || !std::isfinite(epsilon))
    return emitOpError() << "epsilon must be finite and >= 0, got " << epsilon;
  return expectShape(*this, "weight", getWeight(),
                     {tensorType(getInput()).getDimSize(1)});
}

LogicalResult KvCacheType::verify(function_ref<InFlightDiagnostic()> emitError,
                                  int64_t kvHeads, int64_t headDim,
                                  Type elementType) {
  if (kvHeads < 1 || headDim < 1)
    return emitError() << "kv_cache needs kv_heads and head_dim >= 1, got "
                       << kvHeads << " and " << headDim;
  if (!elementType.isF32() && !elementType.isF16() && !elementType.isBF16())
    return emitError() << "kv_cache element type must be f32, f16 or bf16, "
                          "got "
                       << elementType;
  return success();
}

LogicalResult AttentionOp::verify() {
  if (failed(expectTokenRows(*this, "input", getInput())))
    return failure();
  int64_t tokens = tensorType(getInput()).getDimSize(0);
  int64_t hidden = tensorType(getInput()).getDimSize(1);
  int64_t heads = getHeads(), kvHeads = getKvHeads(), dim = getHeadDim();
  if (heads < 1 || kvHeads < 1 || dim < 1)
    return emitOpError() << "heads, kv_heads and head_dim must be >= 1, got "
                         << heads << ", " << kvHeads << " and " << dim;
  if (heads % kvHeads != 0)
    return emitOpError() << "heads (" << heads
                         << ") must be a multiple of kv_heads (" << kvHeads
                         << ")";
  if (getRopeAttr() && dim % 2 != 0)
    return emitOpError() << "rotary embedding pairs dimensions: head_dim "
                         << dim << " must be even";
  RopeAttr rope = getRopeAttr();
  int64_t rotaryDim = rope && rope.getRotaryDim() ? rope.getRotaryDim() : dim;
  if (rotaryDim > dim)
    return emitOpError() << "rope rotary_dim " << rotaryDim
                         << " exceeds head_dim " << dim;
  if (rope && rope.getType() == RopeType::longrope &&
      static_cast<int64_t>(rope.getShortFactor().size()) != rotaryDim / 2)
    return emitOpError() << "longrope holds " << rope.getShortFactor().size()
                         << " factors per list but its " << rotaryDim
                         << " rotated dims have " << rotaryDim / 2 << " pairs";
  KvCacheType cache = getCache().getType();
  if (cache.getKvHeads() != kvHeads || cache.getHeadDim() != dim)
    return emitOpError() << "cache holds " << cache.getKvHeads() << " heads of "
                         << cache.getHeadDim() << " but the op has kv_heads "
                         << kvHeads << " and head_dim " << dim;
  if (failed(expectShape(*this, "positions", getPositions(), {tokens})) ||
      failed(expectShape(*this, "sequences", getSequences(), {tokens})) ||
      failed(expectShape(*this, "q weight", getQWeight(),
                         {heads * dim, hidden})) ||
      failed(expectShape(*this, "k weight", getKWeight(),
                         {kvHeads * dim, hidden})) ||
      failed(expectShape(*this, "v weight", getVWeight(),
                         {kvHeads * dim, hidden})) ||
      failed(expectShape(*this, "o weight", getOWeight(),
                         {hidden, heads * dim})) ||
      failed(expectShape(*this, "result", getResult(), {tokens, hidden})))
    return failure();
  for (auto [what, w] : {std::pair<StringRef, Value>{"q weight", getQWeight()},
                         {"k weight", getKWeight()},
                         {"v weight", getVWeight()},
                         {"o weight", getOWeight()},
                         {"result", getResult()}})
    if (failed(expectSameElementType(*this, what, w, getInput())))
      return failure();
  if (getQBias() &&
      (failed(expectShape(*this, "q bias", getQBias(), {heads * dim})) ||
       failed(expectShape(*this, "k bias", getKBias(), {kvHeads * dim})) ||
       failed(expectShape(*this, "v bias", getVBias(), {kvHeads * dim}))))
    return failure();
  if (getSlidingWindow() < 0)
    return emitOpError() << "sliding_window must be >= 0 (0: none), got "
                         << getSlidingWindow();
  if (std::optional<APFloat> clip = getClipQkv()) {
    double limit = clip->convertToDouble();
    if (!(std::isfinite(limit) && limit > 0.0))
      return emitOpError() << "clip_qkv must be finite and > 0, got " << limit;
  }
  if (std::optional<APFloat> scale = getScale()) {
    double factor = scale->convertToDouble();
    if (!(std::isfinite(factor) && factor > 0.0))
      return emitOpError() << "scale must be finite and > 0, got " << factor;
  }
  if (getSinks() &&
      (failed(expectShape(*this, "sinks", getSinks(), {heads})) ||
       failed(expectSameElementType(*this, "sinks", getSinks(), getInput()))))
    return failure();
  if (getQNorm()) {
    // Per head ([D], Qwen3-MoE) or over the whole projection (OLMoE).
    bool perHead = tensorType(getQNorm()).getRank() == 1 &&
                   tensorType(getQNorm()).getDimSize(0) == dim;
    if (failed(expectShape(*this, "q norm", getQNorm(),
                           {perHead ? dim : heads * dim})) ||
        failed(expectShape(*this, "k norm", getKNorm(),
                           {perHead ? dim : kvHeads * dim})))
      return failure();
    double epsilon = getNormEpsilon().convertToDouble();
    if (!(epsilon >= 0.0) || !std::isfinite(epsilon))
      return emitOpError() << "epsilon must be finite and >= 0, got "
                           << epsilon;
  } else if (getQkNormAfterRope()) {
    return emitOpError() << "qk_norm_after_rope needs a q/k norm";
  }
  if (cache.getElementType() != tensorType(getInput()).getElementType())
    return emitOpError() << "cache element type " << cache.getElementType()
                         << " must be the input's, "
                         << tensorType(getInput()).getElementType();
  return success();
}

LogicalResult GatherRowsOp::verify() {
  if (failed(expectTokenRows(*this, "input", getInput())) ||
      failed(expectRank(*this, "rows", getRows(), 1)) ||
      failed(expectSameElementType(*this, "result", getResult(), getInput())))
    return failure();
  return expectShape(*this, "result", getResult(),
                     {tensorType(getRows()).getDimSize(0),
                      tensorType(getInput()).getDimSize(1)});
}

LogicalResult LmHeadOp::verify() {
  if (failed(expectTokenRows(*this, "input", getInput())) ||
      failed(expectRank(*this, "weight", getWeight(), 2)) ||
      failed(expectTokenRows(*this, "result", getResult())))
    return failure();
  int64_t vocab = tensorType(getWeight()).getDimSize(0);
  return failure(
      failed(expectShape(*this, "weight", getWeight(),
                         {vocab, tensorType(getInput()).getDimSize(1)})) ||
      failed(expectShape(*this, "result", getResult(),
                         {tensorType(getInput()).getDimSize(0), vocab})));
}

LogicalResult ArgmaxOp::verify() {
  if (failed(expectTokenRows(*this, "input", getInput())))
    return failure();
  return expectShape(*this, "result", getResult(),
                     {tensorType(getInput()).getDimSize(0)});
}

LogicalResult LayerNormOp::verify() {
  if (failed(expectTokenRows(*this, "input", getInput())))
    return failure();
  double epsilon = getEpsilon().convertToDouble();
  if (!(epsilon >= 0.0) || !std::isfinite(epsilon))
    return emitOpError() << "epsilon must be finite and >= 0, got " << epsilon;
  int64_t hidden = tensorType(getInput()).getDimSize(1);
  if (failed(expectShape(*this, "weight", getWeight(), {hidden})))
    return failure();
  return success(!getBias() ||
                 succeeded(expectShape(*this, "bias", getBias(), {hidden})));
}

LogicalResult ScaleOp::verify() {
  if (failed(expectTokenRows(*this, "input", getInput())))
    return failure();
  double factor = getFactor().convertToDouble();
  if (!std::isfinite(factor))
    return emitOpError() << "factor must be finite, got " << factor;
  return success();
}

LogicalResult BiasAddOp::verify() {
  if (failed(expectTokenRows(*this, "input", getInput())))
    return failure();
  return expectShape(*this, "bias", getBias(),
                     {tensorType(getInput()).getDimSize(1)});
}

LogicalResult PositionEmbeddingOp::verify() {
  if (failed(expectTokenRows(*this, "input", getInput())) ||
      failed(expectRank(*this, "positions", getPositions(), 1)) ||
      failed(expectRank(*this, "table", getTable(), 2)) ||
      failed(expectSameElementType(*this, "table", getTable(), getInput())))
    return failure();
  auto input = tensorType(getInput());
  auto table = tensorType(getTable());
  if (!table.hasStaticShape())
    return emitOpError() << "table must have a static shape, got "
                         << getTable().getType();
  if (table.getDimSize(1) != input.getDimSize(1))
    return emitOpError() << "table rows have " << table.getDimSize(1)
                         << " elements but the hidden size is "
                         << input.getDimSize(1);
  int64_t rows = input.getDimSize(0),
          positions = tensorType(getPositions()).getDimSize(0);
  if (!ShapedType::isDynamic(rows) && !ShapedType::isDynamic(positions) &&
      rows != positions)
    return emitOpError() << "has " << positions << " positions for " << rows
                         << " tokens";
  return success();
}

//===----------------------------------------------------------------------===//
// DeepSeek multi-head latent attention
//===----------------------------------------------------------------------===//

LogicalResult
LatentCacheType::verify(function_ref<InFlightDiagnostic()> emitError,
                        int64_t rank, int64_t ropeDim, Type elementType) {
  if (rank < 1 || ropeDim < 2 || ropeDim % 2 != 0)
    return emitError() << "latent_cache needs rank >= 1 and an even rope_dim "
                          ">= 2, got "
                       << rank << " and " << ropeDim;
  if (!elementType.isF32() && !elementType.isF16() && !elementType.isBF16())
    return emitError() << "latent_cache element type must be f32, f16 or "
                          "bf16, got "
                       << elementType;
  return success();
}

int64_t mlir::moe::cacheElementsPerPosition(Type type) {
  if (auto kv = dyn_cast<KvCacheType>(type))
    return 2 * kv.getKvHeads() * kv.getHeadDim(); // keys and values
  if (auto latent = dyn_cast<LatentCacheType>(type))
    return latent.getRank() + latent.getRopeDim();
  return 0;
}

Type mlir::moe::cacheElementType(Type type) {
  if (auto kv = dyn_cast<KvCacheType>(type))
    return kv.getElementType();
  if (auto latent = dyn_cast<LatentCacheType>(type))
    return latent.getElementType();
  return {};
}

LogicalResult LatentAttentionOp::verify() {
  if (getRope().getType() == RopeType::longrope)
    return emitOpError() << "latent attention does not take longrope";
  if (getRope().getRotaryDim() != 0 || getRope().getInterleaved())
    return emitOpError() << "latent attention takes no rope rotary_dim or "
                            "interleaved: its rope_dim dims rotate, always "
                            "in interleaved pairs";
  if (failed(expectTokenRows(*this, "input", getInput())))
    return failure();
  int64_t tokens = tensorType(getInput()).getDimSize(0);
  int64_t hidden = tensorType(getInput()).getDimSize(1);
  int64_t heads = getHeads(), nope = getNopeDim(), v = getVDim();
  int64_t rank = getRank(), rope = getRopeDim();
  if (heads < 1 || nope < 1 || v < 1)
    return emitOpError() << "heads, nope_dim and v_dim must be >= 1, got "
                         << heads << ", " << nope << " and " << v;
  double scale = getScale().convertToDouble();
  if (!(scale > 0.0) || !std::isfinite(scale))
    return emitOpError() << "scale must be finite and > 0, got " << scale;
  double epsilon = getEpsilon().convertToDouble();
  if (!(epsilon >= 0.0) || !std::isfinite(epsilon))
    return emitOpError() << "epsilon must be finite and >= 0, got " << epsilon;
  if (static_cast<bool>(getQAWeight()) != static_cast<bool>(getQANorm()))
    return emitOpError() << "q_a weight and its norm come together";
  int64_t qIn = hidden;
  if (getQAWeight()) {
    if (failed(expectRank(*this, "q_a weight", getQAWeight(), 2)))
      return failure();
    qIn = tensorType(getQAWeight()).getDimSize(0);
    if (failed(
            expectShape(*this, "q_a weight", getQAWeight(), {qIn, hidden})) ||
        failed(expectShape(*this, "q_a norm", getQANorm(), {qIn})))
      return failure();
  }
  if (failed(expectShape(*this, "positions", getPositions(), {tokens})) ||
      failed(expectShape(*this, "sequences", getSequences(), {tokens})) ||
      failed(expectShape(*this, "q weight", getQWeight(),
                         {heads * (nope + rope), qIn})) ||
      failed(expectShape(*this, "kv_a weight", getKvAWeight(),
                         {rank + rope, hidden})) ||
      failed(expectShape(*this, "kv_a norm", getKvANorm(), {rank})) ||
      failed(expectShape(*this, "kv_b weight", getKvBWeight(),
                         {heads * (nope + v), rank})) ||
      failed(
          expectShape(*this, "o weight", getOWeight(), {hidden, heads * v})) ||
      failed(expectShape(*this, "result", getResult(), {tokens, hidden})))
    return failure();
  for (auto [what, w] : {std::pair<StringRef, Value>{"q weight", getQWeight()},
                         {"kv_a weight", getKvAWeight()},
                         {"kv_b weight", getKvBWeight()},
                         {"o weight", getOWeight()},
                         {"result", getResult()}})
    if (failed(expectSameElementType(*this, what, w, getInput())))
      return failure();
  if (getQAWeight() && failed(expectSameElementType(*this, "q_a weight",
                                                    getQAWeight(), getInput())))
    return failure();
  Type cacheElement = getCache().getType().getElementType();
  if (cacheElement != tensorType(getInput()).getElementType())
    return emitOpError() << "cache element type " << cacheElement
                         << " must be the input's, "
                         << tensorType(getInput()).getElementType();
  return success();
}

#define GET_OP_CLASSES
#include "dialects/moe/IR/MoeOps.cpp.inc"
