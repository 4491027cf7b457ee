//===- MoertOps.cpp - moert dialect operations ----------------------------===//
//
// Verifiers check what the runtime would reject, at compile time: dtypes,
// and that every view can hold the extents the call will touch at its
// static bound (a view's count is its capacity; token-major views share one
// token bound per op).
//
//===----------------------------------------------------------------------===//

#include "dialects/moert/IR/MoertOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moert;
using mlir::moe::parseRankGroups;
using mlir::moe::printRankGroups;

//===----------------------------------------------------------------------===//
// Helpers: the single place the view rules are spelled.
//===----------------------------------------------------------------------===//

static ViewType viewType(Value value) {
  return cast<ViewType>(value.getType());
}

static LogicalResult expectPositive(Operation *op, StringRef what,
                                    int64_t value) {
  if (value <= 0)
    return op->emitOpError() << what << " must be positive, got " << value;
  return success();
}

/// `view` holds at least `elements` elements.
static LogicalResult expectCount(Operation *op, StringRef what, Value view,
                                 int64_t elements) {
  if (viewType(view).getCount() < elements)
    return op->emitOpError() << what << " must hold at least " << elements
                             << " elements, got " << viewType(view).getCount();
  return success();
}

static LogicalResult expectFloat(Operation *op, StringRef what, Value view) {
  if (!viewType(view).isFloat())
    return op->emitOpError() << what << " must be a f32, f16 or bf16 view, got "
                             << view.getType();
  return success();
}

static LogicalResult expectType(Operation *op, StringRef what, Value view,
                                Type elementType) {
  if (viewType(view).getElementType() != elementType)
    return op->emitOpError() << what << " must be a view of " << elementType
                             << ", got " << view.getType();
  return success();
}

/// Token bound of a token-major `[S, width]` view: its count / width.
static FailureOr<int64_t> tokenBound(Operation *op, StringRef what, Value view,
                                     int64_t width) {
  int64_t count = viewType(view).getCount();
  if (count % width != 0)
    return op->emitOpError()
           << what << " holds " << count
           << " elements, not a multiple of its row width " << width;
  return count / width;
}

//===----------------------------------------------------------------------===//
// ViewOp
//===----------------------------------------------------------------------===//

LogicalResult ViewOp::verify() {
  ViewType view = viewType(getView());
  int64_t bytes = cast<BufferType>(getBuffer().getType()).getBytes();
  if (getOffset() < 0)
    return emitOpError() << "offset must be non-negative, got " << getOffset();
  int64_t end = (getOffset() + view.getCount()) * view.getElementBytes();
  if (end > bytes)
    return emitOpError() << "view ends at byte " << end
                         << ", past the end of the " << bytes << "-byte buffer";
  return success();
}

//===----------------------------------------------------------------------===//
// Router and gate
//===----------------------------------------------------------------------===//

LogicalResult RouterOp::verify() {
  Operation *op = *this;
  if (failed(expectPositive(op, "hidden", getHidden())) ||
      failed(expectPositive(op, "experts", getExperts())) ||
      failed(expectFloat(op, "x", getX())) ||
      failed(expectFloat(op, "weight", getWeight())) ||
      failed(expectType(op, "logits", getLogits(),
                        Float32Type::get(getContext()))) ||
      failed(
          expectCount(op, "weight", getWeight(), getExperts() * getHidden())))
    return failure();
  if (getBias() && (failed(expectFloat(op, "bias", getBias())) ||
                    failed(expectCount(op, "bias", getBias(), getExperts()))))
    return failure();
  FailureOr<int64_t> bound = tokenBound(op, "x", getX(), getHidden());
  if (failed(bound))
    return failure();
  return expectCount(op, "logits", getLogits(), *bound * getExperts());
}

LogicalResult GateOp::verify() {
  Operation *op = *this;
  moe::RoutingAttr routing = getRouting();
  int64_t k = routing.getTopK();
  Type i32 = IntegerType::get(getContext(), 32);
  if (failed(expectPositive(op, "experts", getExperts())))
    return failure();
  if (k > getExperts())
    return emitOpError() << "top_k = " << k << " exceeds the " << getExperts()
                         << " experts";
  if (routing.isGroupLimited() && getExperts() % routing.getNGroup() != 0)
    return emitOpError() << getExperts() << " experts do not split into "
                         << routing.getNGroup() << " groups";
  if (failed(expectType(op, "logits", getLogits(),
                        Float32Type::get(getContext()))) ||
      failed(expectType(op, "ids", getIds(), i32)) ||
      failed(expectType(op, "weights", getWeights(),
                        Float32Type::get(getContext()))) ||
      failed(expectType(op, "slots", getSlots(), i32)) ||
      failed(expectType(op, "counts", getCounts(), i32)) ||
      failed(expectCount(op, "counts", getCounts(), getExperts())))
    return failure();
  if (getCorrectionBias() &&
      (failed(expectFloat(op, "correction bias", getCorrectionBias())) ||
       failed(expectCount(op, "correction bias", getCorrectionBias(),
                          getExperts()))))
    return failure();
  FailureOr<int64_t> bound =
      tokenBound(op, "logits", getLogits(), getExperts());
  if (failed(bound))
    return failure();
  if (failed(expectCount(op, "ids", getIds(), *bound * k)) ||
      failed(expectCount(op, "weights", getWeights(), *bound * k)) ||
      failed(expectCount(op, "slots", getSlots(), *bound * k)))
    return failure();
  return success();
}

/// The routing rules every gate stage shares, then the views: `perExpert`
/// rows of E and `perChoice` rows of k, all with one token bound; f32 or i32
/// as named.
static LogicalResult
verifyGateStage(Operation *op, moe::RoutingAttr routing, int64_t experts,
                ArrayRef<std::tuple<StringRef, Value, bool>> perExpert,
                ArrayRef<std::tuple<StringRef, Value, bool>> perChoice) {
  if (failed(expectPositive(op, "experts", experts)))
    return failure();
  int64_t k = routing.getTopK();
  if (k > experts)
    return op->emitOpError()
           << "top_k = " << k << " exceeds the " << experts << " experts";
  Type f32 = Float32Type::get(op->getContext());
  Type i32 = IntegerType::get(op->getContext(), 32);
  std::optional<int64_t> tokens;
  for (auto [rows, width] : {std::pair{perExpert, experts}, {perChoice, k}})
    for (auto [what, view, isFloat] : rows) {
      if (failed(expectType(op, what, view, isFloat ? f32 : i32)))
        return failure();
      FailureOr<int64_t> bound = tokenBound(op, what, view, width);
      if (failed(bound))
        return failure();
      if (tokens && *tokens != *bound)
        return op->emitOpError() << what << " holds " << *bound
                                 << " tokens, the other views " << *tokens;
      tokens = *bound;
    }
  return success();
}

LogicalResult GateScoresOp::verify() {
  return verifyGateStage(
      *this, getRouting(), getExperts(),
      {{"logits", getLogits(), true}, {"scores", getScores(), true}}, {});
}

LogicalResult GateSelectOp::verify() {
  if (getCorrectionBias() &&
      (failed(expectFloat(*this, "correction bias", getCorrectionBias())) ||
       failed(expectCount(*this, "correction bias", getCorrectionBias(),
                          getExperts()))))
    return failure();
  if (getRouting().isGroupLimited() &&
      getExperts() % getRouting().getNGroup() != 0)
    return emitOpError() << getExperts() << " experts do not split into "
                         << getRouting().getNGroup() << " groups";
  return verifyGateStage(
      *this, getRouting(), getExperts(), {{"scores", getScores(), true}},
      {{"ids", getIds(), false}, {"weights", getWeights(), true}});
}

LogicalResult GateSlotsOp::verify() {
  if (failed(expectType(*this, "counts", getCounts(),
                        IntegerType::get(getContext(), 32))) ||
      failed(expectCount(*this, "counts", getCounts(), getExperts())))
    return failure();
  return verifyGateStage(*this, getRouting(), getExperts(), {},
                         {{"ids", getIds(), false},
                          {"weights", getWeights(), true},
                          {"slots", getSlots(), false}});
}

LogicalResult GateNormalizeOp::verify() {
  return verifyGateStage(
      *this, getRouting(), getExperts(), {},
      {{"slots", getSlots(), false}, {"weights", getWeights(), true}});
}

//===----------------------------------------------------------------------===//
// Token permutation
//===----------------------------------------------------------------------===//

/// The operands shared by dispatch and combine: x/out `[S, H]`, ids and
/// slots `[S, k]` i32, the expert buffer `[E, C, H]`.
static LogicalResult verifyTokenMapping(Operation *op, Value tokens, Value ids,
                                        Value slots, Value buffer,
                                        int64_t hidden, int64_t topK,
                                        int64_t experts) {
  Type i32 = IntegerType::get(op->getContext(), 32);
  if (failed(expectPositive(op, "hidden", hidden)) ||
      failed(expectPositive(op, "top_k", topK)) ||
      failed(expectPositive(op, "experts", experts)) ||
      failed(expectFloat(op, "token view", tokens)) ||
      failed(expectFloat(op, "expert buffer", buffer)) ||
      failed(expectType(op, "ids", ids, i32)) ||
      failed(expectType(op, "slots", slots, i32)))
    return failure();
  if (topK > experts)
    return op->emitOpError()
           << "top_k = " << topK << " exceeds the " << experts << " experts";
  FailureOr<int64_t> bound = tokenBound(op, "token view", tokens, hidden);
  if (failed(bound) ||
      failed(tokenBound(op, "expert buffer", buffer, experts * hidden)) ||
      failed(expectCount(op, "ids", ids, *bound * topK)) ||
      failed(expectCount(op, "slots", slots, *bound * topK)))
    return failure();
  return success();
}

/// Optional fp32 weights, one per (token row, choice) of `rows` rows.
static LogicalResult verifyChoiceWeights(Operation *op, Value weights,
                                         int64_t rows, int64_t topK) {
  if (!weights)
    return success();
  if (failed(expectType(op, "weights", weights,
                        Float32Type::get(op->getContext()))) ||
      failed(expectCount(op, "weights", weights, rows * topK)))
    return failure();
  return success();
}

LogicalResult DispatchOp::verify() {
  if (failed(verifyTokenMapping(*this, getX(), getIds(), getSlots(),
                                getBuffer(), getHidden(), getTopK(),
                                getExperts())))
    return failure();
  return verifyChoiceWeights(*this, getWeights(),
                             viewType(getX()).getCount() / getHidden(),
                             getTopK());
}

/// Shared by combine and fused_combine: the mapping table and the optional
/// fp32 weights [rows, k]; returns the token-row bound of `out`.
template <typename CombineLikeOp>
static FailureOr<int64_t> verifyCombineTable(CombineLikeOp op) {
  if (failed(verifyTokenMapping(op, op.getOut(), op.getIds(), op.getSlots(),
                                op.getY(), op.getHidden(), op.getTopK(),
                                op.getExperts())))
    return failure();
  int64_t rows = viewType(op.getOut()).getCount() / op.getHidden();
  if (failed(verifyChoiceWeights(op, op.getWeights(), rows, op.getTopK())))
    return failure();
  return rows;
}

LogicalResult CombineOp::verify() {
  Operation *op = *this;
  FailureOr<int64_t> table = verifyCombineTable(*this);
  if (failed(table))
    return failure();
  int64_t rows = *table;
  if (getAddend() &&
      (failed(expectFloat(op, "addend", getAddend())) ||
       failed(expectCount(op, "addend", getAddend(), rows * getHidden()))))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// FFN
//===----------------------------------------------------------------------===//

/// Weights of `experts` stacked FFNs (1 for a dense FFN).
template <typename FfnOp>
static LogicalResult verifyFfn(FfnOp op, int64_t experts) {
  Operation *raw = op;
  int64_t h = op.getHidden(), f = op.getFfn();
  if (failed(expectPositive(raw, "hidden", h)) ||
      failed(expectPositive(raw, "ffn", f)) ||
      failed(expectFloat(raw, "input", op.getInput())) ||
      failed(expectFloat(raw, "output", op.getOutput())) ||
      failed(expectFloat(raw, "up weight", op.getUp())) ||
      failed(expectFloat(raw, "down weight", op.getDown())) ||
      failed(expectCount(raw, "up weight", op.getUp(), experts * f * h)) ||
      failed(expectCount(raw, "down weight", op.getDown(), experts * h * f)))
    return failure();
  if (op.getGate()) {
    if (op.getUpBias() || op.getDownBias())
      return op.emitOpError()
             << "a gated FFN takes no biases (only the plain fc1/fc2 form)";
    if (failed(expectFloat(raw, "gate weight", op.getGate())) ||
        failed(expectCount(raw, "gate weight", op.getGate(), experts * f * h)))
      return failure();
  }
  if (op.getUpBias() &&
      (failed(expectFloat(raw, "up bias", op.getUpBias())) ||
       failed(expectCount(raw, "up bias", op.getUpBias(), experts * f))))
    return failure();
  if (op.getDownBias() &&
      (failed(expectFloat(raw, "down bias", op.getDownBias())) ||
       failed(expectCount(raw, "down bias", op.getDownBias(), experts * h))))
    return failure();
  if (op.getDownBiasIf() && !op.getDownBias())
    return op.emitOpError() << "has a down bias predicate but no down bias";
  return success();
}

static LogicalResult
verifyTokenViews(Operation *op, int64_t hidden,
                 ArrayRef<std::pair<StringRef, Value>> views);

/// Rows of an expert-major view `[E, C, width]` that a grouped call writes
/// must hold the input's rows; `rows [E, blocks]` is i32.
static LogicalResult verifyExpertRows(Operation *op, Value input,
                                      int64_t inWidth, Value output,
                                      int64_t outWidth, Value rows,
                                      int64_t experts, int64_t blocks) {
  if (failed(expectPositive(op, "experts", experts)) ||
      failed(expectPositive(op, "blocks", blocks)))
    return failure();
  FailureOr<int64_t> in = tokenBound(op, "input", input, experts * inWidth);
  FailureOr<int64_t> out = tokenBound(op, "output", output, experts * outWidth);
  if (failed(in) || failed(out))
    return failure();
  if (*out < *in)
    return op->emitOpError()
           << "output holds " << *out
           << " rows per expert, fewer than the input's " << *in;
  if (rows && (failed(expectType(op, "rows", rows,
                                 IntegerType::get(op->getContext(), 32))) ||
               failed(expectCount(op, "rows", rows, experts * blocks))))
    return failure();
  return success();
}

LogicalResult ExpertsOp::verify() {
  if (failed(expectPositive(*this, "experts", getExperts())) ||
      failed(verifyFfn(*this, getExperts())))
    return failure();
  return verifyExpertRows(*this, getInput(), getHidden(), getOutput(),
                          getHidden(), getRows(), getExperts(), getBlocks());
}

LogicalResult ExpertsLinearOp::verify() {
  Operation *op = *this;
  int64_t n = getN(), k = getK();
  if (failed(expectPositive(op, "n", n)) ||
      failed(expectPositive(op, "k", k)) ||
      failed(expectFloat(op, "weight", getWeight())) ||
      failed(expectFloat(op, "input", getInput())) ||
      failed(expectFloat(op, "output", getOutput())) ||
      failed(expectCount(op, "weight", getWeight(),
                         std::max<int64_t>(getExperts(), 0) * n * k)))
    return failure();
  return verifyExpertRows(op, getInput(), k, getOutput(), n, getRows(),
                          getExperts(), getBlocks());
}

/// Elementwise stages: float views, `out` as large as every input (the
/// run-time count is at most an input's).
static LogicalResult verifyElementwise(Operation *op, ValueRange inputs,
                                       Value out) {
  if (failed(expectFloat(op, "out", out)))
    return failure();
  for (Value in : inputs)
    if (failed(expectFloat(op, "input", in)) ||
        failed(expectCount(op, "out", out, viewType(in).getCount())))
      return failure();
  return success();
}

LogicalResult ActivationOp::verify() {
  return verifyElementwise(*this, getX(), getOut());
}

LogicalResult MultiplyOp::verify() {
  return verifyElementwise(*this, {getLhs(), getRhs()}, getOut());
}

LogicalResult SwigluClampedOp::verify() {
  for (auto [name, value] :
       {std::pair<StringRef, float>{"alpha", getAlpha().convertToFloat()},
        {"limit", getLimit().convertToFloat()}})
    if (!std::isfinite(value) || value <= 0.0f)
      return emitOpError() << name << " must be finite and > 0, got " << value;
  return verifyElementwise(*this, {getGate(), getUp()}, getOut());
}

LogicalResult ExpertsBiasAddOp::verify() {
  Operation *op = *this;
  int64_t n = getN();
  if (failed(expectPositive(op, "n", n)) ||
      failed(expectFloat(op, "bias", getBias())) ||
      failed(expectFloat(op, "input", getInput())) ||
      failed(expectFloat(op, "output", getOutput())) ||
      failed(expectCount(op, "bias", getBias(),
                         std::max<int64_t>(getExperts(), 0) * n)))
    return failure();
  return verifyExpertRows(op, getInput(), n, getOutput(), n, getRows(),
                          getExperts(), getBlocks());
}

LogicalResult FusedExpertsOp::verify() {
  Operation *op = *this;
  int64_t h = getHidden(), f = getFfn(), e = getExperts();
  if (failed(expectPositive(op, "hidden", h)) ||
      failed(expectPositive(op, "ffn", f)) ||
      failed(expectFloat(op, "input", getInput())) ||
      failed(expectFloat(op, "output", getOutput())) ||
      failed(expectFloat(op, "gate_up weight", getGateUp())) ||
      failed(expectFloat(op, "down weight", getDown())) ||
      failed(verifyExpertRows(op, getInput(), h, getOutput(), h, getRows(), e,
                              getBlocks())) ||
      failed(expectCount(op, "gate_up weight", getGateUp(), e * 2 * f * h)) ||
      failed(expectCount(op, "down weight", getDown(), e * h * f)))
    return failure();
  bool shared = static_cast<bool>(getSharedInput());
  if (shared != static_cast<bool>(getSharedGateUp()) ||
      shared != static_cast<bool>(getSharedDown()) ||
      shared != static_cast<bool>(getSharedOutput()) ||
      shared != static_cast<bool>(getTokens()))
    return emitOpError() << "a shared expert needs its input, gate_up, down, "
                            "output and tokens";
  if (!shared)
    return getSharedFfn() == 0
               ? success()
               : emitOpError() << "has a shared ffn width but no shared expert";
  int64_t fs = getSharedFfn();
  if (failed(expectPositive(op, "shared ffn", fs)) ||
      failed(expectFloat(op, "shared gate_up weight", getSharedGateUp())) ||
      failed(expectFloat(op, "shared down weight", getSharedDown())) ||
      failed(expectCount(op, "shared gate_up weight", getSharedGateUp(),
                         2 * fs * h)) ||
      failed(expectCount(op, "shared down weight", getSharedDown(), h * fs)))
    return failure();
  if (getSharedOutput() == getSharedInput())
    return emitOpError() << "shared output must not alias the shared input";
  return verifyTokenViews(op, h,
                          {{"shared input", getSharedInput()},
                           {"shared output", getSharedOutput()}});
}

/// `experts` quantized [rows, cols] weights: data and scales of the format's
/// types and sizes (blocks of br x bc).
static LogicalResult verifyQuantizedWeight(Operation *op, StringRef what,
                                           Value data, Value scales,
                                           WeightFormat format, int64_t br,
                                           int64_t bc, int64_t experts,
                                           int64_t rows, int64_t cols) {
  auto ceilDiv = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  MLIRContext *context = op->getContext();
  bool mx = format == WeightFormat::mxfp4;
  Type u8 = IntegerType::get(context, 8, IntegerType::Unsigned);
  Type dataType = mx ? u8 : Type(Float8E4M3FNType::get(context));
  Type scaleType = mx ? u8 : Type(Float32Type::get(context));
  // Elements of one expert's data: mxfp4 packs two values a byte.
  int64_t perByte = mx ? 2 : 1;
  std::string scalesName = (what + " scales").str();
  if (failed(expectType(op, what, data, dataType)) ||
      failed(expectType(op, scalesName, scales, scaleType)) ||
      failed(expectCount(op, what, data, experts * rows * cols / perByte)) ||
      failed(expectCount(op, scalesName, scales,
                         experts * ceilDiv(rows, br) * ceilDiv(cols, bc))))
    return failure();
  return success();
}

LogicalResult QuantizedExpertsLinearOp::verify() {
  Operation *op = *this;
  int64_t n = getN(), k = getK(), e = getExperts();
  int64_t br = getBlockRows(), bc = getBlockCols();
  if (failed(expectPositive(op, "n", n)) ||
      failed(expectPositive(op, "k", k)) ||
      failed(expectPositive(op, "block rows", br)) ||
      failed(expectPositive(op, "block columns", bc)) ||
      failed(expectFloat(op, "input", getInput())) ||
      failed(expectFloat(op, "output", getOutput())) ||
      failed(verifyExpertRows(op, getInput(), k, getOutput(), n, getRows(), e,
                              getBlocks())))
    return failure();
  if (getFormat() == WeightFormat::mxfp4 && (br != 1 || bc != 32 || k % 32))
    return emitOpError() << "mxfp4 needs 1 x 32 blocks and k a multiple of "
                            "32, got blocks "
                         << br << " x " << bc << ", k " << k;
  return verifyQuantizedWeight(op, "weight", getWeight(), getWeightScales(),
                               getFormat(), br, bc, std::max<int64_t>(e, 0), n,
                               k);
}

LogicalResult QuantizedExpertsOp::verify() {
  Operation *op = *this;
  int64_t h = getHidden(), f = getFfn(), e = getExperts();
  int64_t br = getBlockRows(), bc = getBlockCols();
  if (failed(expectPositive(op, "hidden", h)) ||
      failed(expectPositive(op, "ffn", f)) ||
      failed(expectPositive(op, "block rows", br)) ||
      failed(expectPositive(op, "block columns", bc)) ||
      failed(expectFloat(op, "input", getInput())) ||
      failed(expectFloat(op, "output", getOutput())) ||
      failed(verifyExpertRows(op, getInput(), h, getOutput(), h, getRows(), e,
                              getBlocks())))
    return failure();
  bool mx = getFormat() == WeightFormat::mxfp4;
  if (mx && (br != 1 || bc != 32 || h % 32 || f % 32))
    return emitOpError() << "mxfp4 needs 1 x 32 blocks and hidden and ffn "
                            "multiples of 32, got blocks "
                         << br << " x " << bc << ", hidden " << h << ", ffn "
                         << f;
  struct Weight {
    StringRef what;
    Value data, scales;
    int64_t rows, cols;
  };
  for (const Weight &w : {Weight{"gate", getGate(), getGateScales(), f, h},
                          Weight{"up", getUp(), getUpScales(), f, h},
                          Weight{"down", getDown(), getDownScales(), h, f}})
    if (failed(verifyQuantizedWeight(op, w.what, w.data, w.scales, getFormat(),
                                     br, bc, e, w.rows, w.cols)))
      return failure();
  return success();
}

LogicalResult DenseFfnOp::verify() {
  Operation *op = *this;
  if (failed(verifyFfn(*this, 1)))
    return failure();
  FailureOr<int64_t> in = tokenBound(op, "input", getInput(), getHidden());
  if (failed(in))
    return failure();
  return expectCount(op, "output", getOutput(), *in * getHidden());
}

//===----------------------------------------------------------------------===//
// Elementwise mixes
//===----------------------------------------------------------------------===//

/// Token-major float views `[S, H]` that must hold the same token bound.
static LogicalResult
verifyTokenViews(Operation *op, int64_t hidden,
                 ArrayRef<std::pair<StringRef, Value>> views) {
  if (failed(expectPositive(op, "hidden", hidden)))
    return failure();
  int64_t bound = -1;
  for (auto [what, view] : views) {
    if (failed(expectFloat(op, what, view)))
      return failure();
    FailureOr<int64_t> rows = tokenBound(op, what, view, hidden);
    if (failed(rows))
      return failure();
    if (bound < 0)
      bound = *rows;
    else if (failed(expectCount(op, what, view, bound * hidden)))
      return failure();
  }
  return success();
}

LogicalResult FusedCombineOp::verify() {
  Operation *op = *this;
  FailureOr<int64_t> table = verifyCombineTable(*this);
  if (failed(table))
    return failure();
  int64_t rows = *table;
  for (auto [what, view] :
       {std::pair<StringRef, Value>{"mlp output", getMlpOutput()},
        {"shared", getShared()},
        {"x", getX()},
        {"addend", getAddend()}})
    if (view && (failed(expectFloat(op, what, view)) ||
                 failed(expectCount(op, what, view, rows * getHidden()))))
      return failure();
  if (static_cast<bool>(getMlpOutput()) != static_cast<bool>(getCoefWeight()) ||
      (getCoefBias() && !getMlpOutput()))
    return emitOpError() << "the mix needs the mlp output and the "
                            "coefficient weight";
  if (getSharedGateWeight() && !getShared())
    return emitOpError() << "the shared gate needs the shared output";
  bool needsX = getMlpOutput() || getSharedGateWeight();
  if (needsX != static_cast<bool>(getX()))
    return emitOpError() << (needsX ? "the mix and the shared gate read x; "
                                      "it is missing"
                                    : "x is given but nothing reads it");
  if (getMlpOutput() &&
      (failed(expectFloat(op, "coefficient weight", getCoefWeight())) ||
       failed(expectCount(op, "coefficient weight", getCoefWeight(),
                          2 * getHidden()))))
    return failure();
  if (getCoefBias() &&
      (failed(expectFloat(op, "coefficient bias", getCoefBias())) ||
       failed(expectCount(op, "coefficient bias", getCoefBias(), 2))))
    return failure();
  if (getSharedGateWeight() &&
      (failed(expectFloat(op, "shared gate weight", getSharedGateWeight())) ||
       failed(expectCount(op, "shared gate weight", getSharedGateWeight(),
                          getHidden()))))
    return failure();
  return success();
}

LogicalResult ResidualMixOp::verify() {
  Operation *op = *this;
  if (failed(verifyTokenViews(op, getHidden(),
                              {{"x", getX()},
                               {"moe output", getMoeOutput()},
                               {"mlp output", getMlpOutput()},
                               {"out", getOut()}})) ||
      failed(expectFloat(op, "coefficient weight", getCoefWeight())) ||
      failed(expectCount(op, "coefficient weight", getCoefWeight(),
                         2 * getHidden())))
    return failure();
  if (getCoefBias() &&
      (failed(expectFloat(op, "coefficient bias", getCoefBias())) ||
       failed(expectCount(op, "coefficient bias", getCoefBias(), 2))))
    return failure();
  return success();
}

LogicalResult SharedAddOp::verify() {
  Operation *op = *this;
  if (failed(verifyTokenViews(op, getHidden(),
                              {{"routed", getRouted()},
                               {"shared", getShared()},
                               {"out", getOut()}})))
    return failure();
  if (static_cast<bool>(getX()) != static_cast<bool>(getGateWeight()))
    return emitOpError() << "the shared-expert gate needs both x and its "
                            "weight";
  if (getX() &&
      (failed(verifyTokenViews(op, getHidden(),
                               {{"routed", getRouted()}, {"x", getX()}})) ||
       failed(expectFloat(op, "gate weight", getGateWeight())) ||
       failed(expectCount(op, "gate weight", getGateWeight(), getHidden()))))
    return failure();
  return success();
}

LogicalResult AddOp::verify() {
  return verifyElementwise(*this, {getLhs(), getRhs()}, getOut());
}

//===----------------------------------------------------------------------===//
// Norms
//===----------------------------------------------------------------------===//

LogicalResult RmsNormOp::verify() {
  Operation *op = *this;
  if (failed(verifyTokenViews(op, getHidden(),
                              {{"x", getX()}, {"out", getOut()}})) ||
      failed(expectFloat(op, "weight", getWeight())) ||
      failed(expectCount(op, "weight", getWeight(), getHidden())))
    return failure();
  float epsilon = getEpsilon().convertToFloat();
  if (!(epsilon >= 0.0f) || std::isinf(epsilon))
    return emitOpError() << "epsilon must be finite and >= 0, got " << epsilon;
  return success();
}

//===----------------------------------------------------------------------===//
// The decoder
//===----------------------------------------------------------------------===//

/// A view of `rows` token rows of `width` i32 elements or more.
static LogicalResult expectIndexRows(Operation *op, StringRef what, Value view,
                                     int64_t rows) {
  if (failed(
          expectType(op, what, view, IntegerType::get(op->getContext(), 32))))
    return failure();
  return expectCount(op, what, view, rows);
}

LogicalResult LinearOp::verify() {
  Operation *op = *this;
  if (failed(expectPositive(op, "n", getN())) ||
      failed(expectPositive(op, "k", getK())) ||
      failed(expectFloat(op, "weight", getWeight())) ||
      failed(expectCount(op, "weight", getWeight(), getN() * getK())) ||
      failed(expectFloat(op, "out", getOut())))
    return failure();
  if (getBias() && (failed(expectFloat(op, "bias", getBias())) ||
                    failed(expectCount(op, "bias", getBias(), getN()))))
    return failure();
  FailureOr<int64_t> rows = tokenBound(op, "x", getX(), getK());
  if (failed(rows) || failed(expectFloat(op, "x", getX())))
    return failure();
  return expectCount(op, "out", getOut(), *rows * getN());
}

LogicalResult EmbeddingOp::verify() {
  Operation *op = *this;
  // The table's rows are a run-time count: it holds whole rows.
  if (failed(expectPositive(op, "hidden", getHidden())) ||
      failed(expectFloat(op, "table", getTable())) ||
      failed(tokenBound(op, "table", getTable(), getHidden())))
    return failure();
  if (failed(verifyTokenViews(op, getHidden(), {{"out", getOut()}})))
    return failure();
  return expectIndexRows(op, "ids", getIds(),
                         viewType(getOut()).getCount() / getHidden());
}

LogicalResult RopeOp::verify() {
  Operation *op = *this;
  if (failed(expectPositive(op, "heads", getHeads())) ||
      failed(expectPositive(op, "head_dim", getHeadDim())))
    return failure();
  if (getHeadDim() % 2 != 0)
    return emitOpError() << "head_dim must be even, got " << getHeadDim();
  FailureOr<int64_t> rows =
      tokenBound(op, "x", getX(), getHeads() * getHeadDim());
  if (failed(rows) || failed(expectFloat(op, "x", getX())))
    return failure();
  return expectIndexRows(op, "positions", getPositions(), *rows);
}

/// The cache holds its extents; sequences and positions one entry per row
/// of `rows`.
template <typename OpTy>
static LogicalResult verifyCache(OpTy op, int64_t rows) {
  for (auto [what, v] :
       {std::pair<StringRef, int64_t>{"kv_heads", op.getKvHeads()},
        {"head_dim", op.getHeadDim()},
        {"max_batch", op.getMaxBatch()},
        {"max_seq", op.getMaxSeq()}})
    if (failed(expectPositive(op, what, v)))
      return failure();
  int64_t elements =
      2 * op.getMaxBatch() * op.getMaxSeq() * op.getKvHeads() * op.getHeadDim();
  if (failed(expectFloat(op, "cache", op.getCache())) ||
      failed(expectCount(op, "cache", op.getCache(), elements)) ||
      failed(expectIndexRows(op, "sequences", op.getSequences(), rows)))
    return failure();
  return expectIndexRows(op, "positions", op.getPositions(), rows);
}

LogicalResult KvAppendOp::verify() {
  int64_t width = getKvHeads() * getHeadDim();
  if (failed(expectPositive(*this, "kv_heads x head_dim", width)) ||
      failed(verifyTokenViews(*this, width, {{"k", getK()}, {"v", getV()}})))
    return failure();
  return verifyCache(*this, viewType(getK()).getCount() / width);
}

LogicalResult AttentionOp::verify() {
  if (failed(expectPositive(*this, "heads", getHeads())) ||
      failed(expectPositive(*this, "kv_heads", getKvHeads())))
    return failure();
  if (getHeads() % getKvHeads() != 0)
    return emitOpError() << "heads (" << getHeads()
                         << ") must be a multiple of kv_heads (" << getKvHeads()
                         << ")";
  float scale = getScale().convertToFloat();
  if (!(scale > 0.0f) || std::isinf(scale))
    return emitOpError() << "scale must be finite and > 0, got " << scale;
  if (getWindow() < 0)
    return emitOpError() << "window must be >= 0 (0: none), got "
                         << getWindow();
  if (getSinks() && failed(expectFloat(*this, "sinks", getSinks())))
    return failure();
  if (getSinks() && viewType(getSinks()).getCount() != getHeads())
    return emitOpError() << "sinks must hold one logit per head (" << getHeads()
                         << "), got " << viewType(getSinks()).getCount();
  int64_t width = getHeads() * getHeadDim();
  if (failed(expectPositive(*this, "head_dim", getHeadDim())) ||
      failed(
          verifyTokenViews(*this, width, {{"q", getQ()}, {"out", getOut()}})))
    return failure();
  return verifyCache(*this, viewType(getQ()).getCount() / width);
}

LogicalResult ArgmaxOp::verify() {
  Operation *op = *this;
  if (failed(expectPositive(op, "vocab", getVocab())) ||
      failed(expectType(op, "logits", getLogits(),
                        Float32Type::get(getContext()))))
    return failure();
  FailureOr<int64_t> rows = tokenBound(op, "logits", getLogits(), getVocab());
  if (failed(rows))
    return failure();
  return expectIndexRows(op, "ids", getIds(), *rows);
}

//===----------------------------------------------------------------------===//
// DeepSeek multi-head latent attention
//===----------------------------------------------------------------------===//

/// The latent cache holds its extents; sequences and positions one entry
/// per row of `rows`.
template <typename OpTy>
static LogicalResult verifyLatentCache(OpTy op, int64_t rows) {
  for (auto [what, v] : {std::pair<StringRef, int64_t>{"rank", op.getRank()},
                         {"rope_dim", op.getRopeDim()},
                         {"max_batch", op.getMaxBatch()},
                         {"max_seq", op.getMaxSeq()}})
    if (failed(expectPositive(op, what, v)))
      return failure();
  if (op.getRopeDim() % 2 != 0)
    return op.emitOpError() << "rope_dim must be even, got " << op.getRopeDim();
  int64_t elements =
      op.getMaxBatch() * op.getMaxSeq() * (op.getRank() + op.getRopeDim());
  if (failed(expectFloat(op, "cache", op.getCache())) ||
      failed(expectCount(op, "cache", op.getCache(), elements)) ||
      failed(expectIndexRows(op, "sequences", op.getSequences(), rows)))
    return failure();
  return expectIndexRows(op, "positions", op.getPositions(), rows);
}

LogicalResult LatentAppendOp::verify() {
  Operation *op = *this;
  int64_t width = getRank() + getRopeDim();
  if (failed(expectPositive(op, "rank + rope_dim", width)) ||
      failed(verifyTokenViews(op, width, {{"kv", getKv()}})) ||
      failed(expectFloat(op, "norm", getNorm())) ||
      failed(expectCount(op, "norm", getNorm(), getRank())))
    return failure();
  float epsilon = getEpsilon().convertToFloat();
  if (!(epsilon >= 0.0f) || std::isinf(epsilon))
    return emitOpError() << "epsilon must be finite and >= 0, got " << epsilon;
  return verifyLatentCache(*this, viewType(getKv()).getCount() / width);
}

LogicalResult LatentAttentionOp::verify() {
  Operation *op = *this;
  for (auto [what, v] : {std::pair<StringRef, int64_t>{"heads", getHeads()},
                         {"nope_dim", getNopeDim()},
                         {"v_dim", getVDim()}})
    if (failed(expectPositive(op, what, v)))
      return failure();
  float scale = getScale().convertToFloat();
  if (!(scale > 0.0f) || std::isinf(scale))
    return emitOpError() << "scale must be finite and > 0, got " << scale;
  int64_t qWidth = getHeads() * (getNopeDim() + getRopeDim());
  FailureOr<int64_t> rows = tokenBound(op, "q", getQ(), qWidth);
  if (failed(rows) || failed(expectFloat(op, "q", getQ())) ||
      failed(expectFloat(op, "out", getOut())) ||
      failed(
          expectCount(op, "out", getOut(), *rows * getHeads() * getVDim())) ||
      failed(expectFloat(op, "kv_b", getKvB())) ||
      failed(expectCount(op, "kv_b", getKvB(),
                         getHeads() * (getNopeDim() + getVDim()) * getRank())))
    return failure();
  return verifyLatentCache(*this, *rows);
}

//===----------------------------------------------------------------------===//
// Collectives
//===----------------------------------------------------------------------===//

static LogicalResult verifySlot(Operation *op, int32_t slot) {
  if (slot < 0)
    return op->emitOpError() << "slot must be >= 0, got " << slot;
  return success();
}

LogicalResult KeepGroupOp::verify() {
  if (failed(verifySlot(*this, getSlot())))
    return failure();
  return moe::verifyRankGroups(*this, getGroups());
}

LogicalResult GroupOp::verify() { return verifySlot(*this, getSlot()); }

template <typename AllToAllT>
static LogicalResult verifyAllToAll(AllToAllT op) {
  if (failed(expectPositive(op, "experts_local", op.getExpertsLocal())) ||
      failed(expectPositive(op, "hidden", op.getHidden())))
    return failure();
  if (viewType(op.getSend()).getElementType() !=
      viewType(op.getRecv()).getElementType())
    return op.emitOpError()
           << "send and receive views must have the same "
              "element type, got "
           << op.getSend().getType() << " and " << op.getRecv().getType();
  if (op.getSend() == op.getRecv())
    return op.emitOpError() << "send and receive must not overlap";
  int64_t width = op.getExpertsLocal() * op.getHidden();
  if (failed(tokenBound(op, "send", op.getSend(), width)) ||
      failed(tokenBound(op, "recv", op.getRecv(), width)))
    return failure();
  return success();
}

LogicalResult AllToAllOp::verify() { return verifyAllToAll(*this); }

LogicalResult AllToAllSlicedOp::verify() {
  if (failed(expectPositive(*this, "slices", getSlices())))
    return failure();
  return verifyAllToAll(*this);
}

LogicalResult AllReduceOp::verify() {
  if (viewType(getSend()) != viewType(getRecv()))
    return emitOpError() << "send and receive views must have the same type, "
                            "got "
                         << getSend().getType() << " and "
                         << getRecv().getType();
  return success();
}

/// send and recv of a gather or scatter: one dtype, distinct views.
static LogicalResult verifyGatherScatter(Operation *op, Value send,
                                         Value recv) {
  if (viewType(send).getElementType() != viewType(recv).getElementType())
    return op->emitOpError()
           << "send and receive views must have the same element type, got "
           << send.getType() << " and " << recv.getType();
  if (send == recv)
    return op->emitOpError() << "send and receive must not overlap";
  return success();
}

LogicalResult AllGatherOp::verify() {
  return verifyGatherScatter(*this, getSend(), getRecv());
}

LogicalResult ReduceScatterOp::verify() {
  return verifyGatherScatter(*this, getSend(), getRecv());
}

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

static ParseResult parseExpertRange(OpAsmParser &parser,
                                    DenseI64ArrayAttr &range) {
  int64_t begin, end;
  if (parser.parseLSquare() || parser.parseInteger(begin) ||
      parser.parseComma() || parser.parseInteger(end) || parser.parseRParen())
    return failure();
  range = parser.getBuilder().getDenseI64ArrayAttr({begin, end});
  return success();
}

static void printExpertRange(OpAsmPrinter &p, Operation *,
                             DenseI64ArrayAttr range) {
  p << "[" << range[0] << ", " << range[1] << ")";
}

LogicalResult RecordDropsOp::verify() {
  if (failed(expectPositive(*this, "experts", getExperts())) ||
      failed(expectPositive(*this, "top_k", getTopK())) ||
      failed(expectType(*this, "counts", getCounts(),
                        IntegerType::get(getContext(), 32))))
    return failure();
  return expectCount(*this, "counts", getCounts(), getExperts());
}

/// Elements a weight load of `shape`'s box [begin, end) over `range`
/// experts writes.
static int64_t loadedElements(ArrayRef<int64_t> shape, ArrayRef<int64_t> begin,
                              ArrayRef<int64_t> end,
                              std::optional<ArrayRef<int64_t>> range) {
  int64_t elements = 1;
  for (auto [extent, first, stop] : llvm::zip(shape, begin, end))
    elements *= (stop == 0 ? extent : stop) - first;
  if (range)
    elements *= (*range)[1] - (*range)[0];
  return elements;
}

int64_t LoadWeightOp::getLoadedElements() {
  return loadedElements(getShape(), getBegin(), getEnd(), getExpertRange());
}

int64_t LoadFusedWeightOp::getLoadedElements() {
  return loadedElements(getShape(), getBegin(), getEnd(), getExpertRange());
}

/// What both weight loads check: the box, the expert range, the
/// destination's size.
template <typename LoadOp>
static LogicalResult verifyLoad(LoadOp op,
                                std::optional<ArrayRef<int64_t>> range) {
  ArrayRef<int64_t> shape = op.getShape(), begin = op.getBegin(),
                    end = op.getEnd();
  if (shape.empty() || shape.size() > 4)
    return op.emitOpError()
           << "a weight has 1 to 4 dimensions, got " << shape.size();
  if (begin.size() != shape.size() || end.size() != shape.size())
    return op.emitOpError() << "begin and end must have " << shape.size()
                            << " entries like shape, got " << begin.size()
                            << " and " << end.size();
  if (!op.getOffsets().empty() && op.getOffsets().size() != shape.size())
    return op.emitOpError()
           << "offsets must be absent or one per dimension (" << shape.size()
           << "), got " << op.getOffsets().size();
  for (size_t d = 0; d < shape.size(); ++d) {
    if (!op.getOffsets().empty() && end[d] == 0)
      return op.emitOpError()
             << "dimension " << d << ": a shifted box needs an explicit end";
    int64_t stop = end[d] == 0 ? shape[d] : end[d];
    if (shape[d] <= 0 || begin[d] < 0 || begin[d] >= stop || stop > shape[d])
      return op.emitOpError()
             << "dimension " << d << ": slice [" << begin[d] << ", " << stop
             << ") is not a non-empty part of [0, " << shape[d] << ")";
  }
  if (op.getExpertOffset() && !range)
    return op.emitOpError() << "an expert offset needs an expert range";
  if (range && ((*range)[0] < 0 || (*range)[1] <= (*range)[0]))
    return op.emitOpError() << "expert range [" << (*range)[0] << ", "
                            << (*range)[1] << ") is empty or negative";
  // Quantized data and mxfp4 scales load as stored
  // (moert.quantized_experts reads them).
  Type element = viewType(op.getDst()).getElementType();
  if (!isa<Float8E4M3FNType>(element) && !element.isUnsignedInteger(8) &&
      failed(expectFloat(op, "destination", op.getDst())))
    return failure();
  int64_t loaded = loadedElements(shape, begin, end, range);
  int64_t box = loaded / (range ? (*range)[1] - (*range)[0] : 1);
  int64_t stride = op.getDstExpertStride();
  if (stride != 0 && stride < box)
    return op.emitOpError()
           << "stride " << stride << " is smaller than one expert's box of "
           << box << " elements";
  if (stride == 0)
    return expectCount(op, "destination", op.getDst(), loaded);
  // The last expert ends at (n - 1) * stride + box.
  int64_t count = range ? (*range)[1] - (*range)[0] : 1;
  return expectCount(op, "destination", op.getDst(),
                     (count - 1) * stride + box);
}

LogicalResult LoadWeightOp::verify() {
  bool pattern = getKey().contains(moe::MoeDialect::kExpertPlaceholder);
  std::optional<ArrayRef<int64_t>> range = getExpertRange();
  if (pattern != range.has_value())
    return emitOpError() << "key '" << getKey() << "' "
                         << (pattern ? "is a per-expert pattern and needs an "
                                       "expert range"
                                     : "has no '{e}' placeholder and takes no "
                                       "expert range");
  return verifyLoad(*this, range);
}

LogicalResult LoadFusedWeightOp::verify() {
  if (getKey().contains(moe::MoeDialect::kExpertPlaceholder))
    return emitOpError() << "key '" << getKey()
                         << "' must name the fused tensor, not a per-expert "
                            "pattern";
  ArrayRef<int64_t> fused = getFusedShape(), strides = getFusedStrides();
  if (fused.empty() || fused.size() > 4)
    return emitOpError() << "the fused tensor has 1 to 4 dimensions, got "
                         << fused.size();
  if (strides.size() != getShape().size())
    return emitOpError() << "fused strides must have one entry per dimension "
                            "of shape ("
                         << getShape().size() << "), got " << strides.size();
  // I64Attr's getters are unsigned: a negative offset or stride would wrap.
  int64_t offset = getFusedOffsetAttr().getInt(),
          expertStride = getFusedExpertStrideAttr().getInt();
  if (llvm::any_of(fused, [](int64_t d) { return d <= 0; }) || offset < 0 ||
      expertStride < 0 ||
      llvm::any_of(strides, [](int64_t d) { return d < 0; }))
    return emitOpError() << "fused extents must be positive, offset and "
                            "strides non-negative";
  // The last element of the last expert's tensor lies inside the fused one
  // (before a run-time shift: the runtime checks shifted boxes).
  int64_t fusedElements = 1, last = offset;
  for (int64_t extent : fused)
    fusedElements *= extent;
  for (auto [extent, stride] : llvm::zip(getShape(), strides))
    last += (extent - 1) * stride;
  ArrayRef<int64_t> range = getExpertRange();
  if (range.size() == 2 && range[1] > range[0] && !getExpertOffset())
    last += (range[1] - 1) * expertStride;
  if (last >= fusedElements)
    return emitOpError() << "the view reaches element " << last
                         << " of a fused tensor of " << fusedElements;
  return verifyLoad(*this, getExpertRange());
}

//===----------------------------------------------------------------------===//
// The PR-MoE GPT: LayerNorm, a bias alone, per-head fused QKV weights
//===----------------------------------------------------------------------===//

LogicalResult LayerNormOp::verify() {
  Operation *op = *this;
  if (failed(verifyTokenViews(op, getHidden(),
                              {{"x", getX()}, {"out", getOut()}})) ||
      failed(expectFloat(op, "weight", getWeight())) ||
      failed(expectCount(op, "weight", getWeight(), getHidden())) ||
      (getBias() && (failed(expectFloat(op, "bias", getBias())) ||
                     failed(expectCount(op, "bias", getBias(), getHidden())))))
    return failure();
  float epsilon = getEpsilon().convertToFloat();
  if (!(epsilon >= 0.0f) || std::isinf(epsilon))
    return emitOpError() << "epsilon must be finite and >= 0, got " << epsilon;
  return success();
}

LogicalResult BiasAddOp::verify() {
  Operation *op = *this;
  return success(succeeded(verifyTokenViews(
                     op, getHidden(), {{"x", getX()}, {"out", getOut()}})) &&
                 succeeded(expectFloat(op, "bias", getBias())) &&
                 succeeded(expectCount(op, "bias", getBias(), getHidden())));
}

LogicalResult ClampOp::verify() {
  Operation *op = *this;
  if (failed(expectFloat(op, "x", getX())) ||
      failed(expectFloat(op, "out", getOut())))
    return failure();
  float limit = getLimit().convertToFloat();
  if (!(limit > 0.0f) || std::isinf(limit))
    return emitOpError() << "limit must be finite and > 0, got " << limit;
  return success();
}

LogicalResult ScaleOp::verify() {
  Operation *op = *this;
  if (failed(expectFloat(op, "x", getX())) ||
      failed(expectFloat(op, "out", getOut())))
    return failure();
  if (!std::isfinite(getFactor().convertToFloat()))
    return emitOpError() << "factor must be finite, got "
                         << getFactor().convertToFloat();
  return success();
}

#include "dialects/moert/IR/MoertCallInterface.cpp.inc"

#define GET_OP_CLASSES
#include "dialects/moert/IR/MoertOps.cpp.inc"
