//===- MoertToEmitC.cpp - moert calls to EmitC ----------------------------===//
//
// Each moert op is one runtime call, so each pattern builds one
// emitc.call_opaque on the converted operands, with static sizes and enums
// as literal arguments, and a status check after it. EmitC has no early
// return inside a region (emitc.return must sit in the function body), so
// the check is the one emitc.verbatim line per call.
//
//===----------------------------------------------------------------------===//

#include "passes/Conversion/MoertToEmitC/MoertToEmitC.h"
#include "passes/Conversion/MoertToEmitC/Passes.h"

#include "dialects/moe/IR/MoeDialect.h"
#include "dialects/moert/IR/MoertOps.h"

#include "mlir/Conversion/ArithToEmitC/ArithToEmitC.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/EmitC/IR/EmitC.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/FormatVariadic.h"

namespace mlir::moert {
#define GEN_PASS_DEF_MOERTTOEMITC
#include "passes/Conversion/MoertToEmitC/Passes.h.inc"
} // namespace mlir::moert

using namespace mlir;
using namespace mlir::moert;

namespace {

emitc::OpaqueType opaque(MLIRContext *context, StringRef name) {
  return emitc::OpaqueType::get(context, name);
}
Type statusType(MLIRContext *context) {
  return opaque(context, "moert_status_t");
}
Type whereType(MLIRContext *context) {
  return emitc::PointerType::get(
      emitc::PointerType::get(opaque(context, "const char")));
}

std::string dtypeName(Type type) {
  if (type.isF32())
    return "MOERT_F32";
  if (type.isF16())
    return "MOERT_F16";
  if (type.isBF16())
    return "MOERT_BF16";
  return type.isInteger(64) ? "MOERT_I64" : "MOERT_I32";
}

std::string quoted(StringRef text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\')
      out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

/// Literal call arguments and operand references, in call order.
class CallArgs {
public:
  explicit CallArgs(MLIRContext *context) : context(context) {}
  CallArgs &value(Value v) {
    if (!v)
      return absent();
    attrs.push_back(IntegerAttr::get(IndexType::get(context), operands.size()));
    operands.push_back(v);
    return *this;
  }
  CallArgs &integer(int64_t v) {
    attrs.push_back(IntegerAttr::get(IntegerType::get(context, 64), v));
    return *this;
  }
  CallArgs &literal(StringRef text) {
    attrs.push_back(emitc::OpaqueAttr::get(context, text));
    return *this;
  }
  CallArgs &absent() { return literal("moert_absent_view()"); }

  MLIRContext *context;
  SmallVector<Attribute> attrs;
  SmallVector<Value> operands;
};

/// "layer 3: moert_gate" (or "init: moert_weights_load 'key'").
constexpr StringLiteral kLayerOfCall = "moert.layer_of_call";

std::string where(Operation *op, StringRef callee) {
  if (auto layer = op->getAttrOfType<IntegerAttr>(kLayerOfCall))
    return llvm::formatv("layer {0}: {1}", layer.getInt(), callee).str();
  if (auto load = dyn_cast<LoadWeightOp>(op))
    return llvm::formatv("init: {0} '{1}'", callee, load.getKey()).str();
  if (auto keep = dyn_cast<KeepGroupOp>(op))
    return llvm::formatv("init: {0} (slot {1})", callee, keep.getSlot()).str();
  return callee.str();
}

/// The `const char **where` argument of the enclosing exported function.
Value whereArgument(Operation *op) {
  auto func = op->getParentOfType<emitc::FuncOp>();
  return func ? func.getArgument(func.getNumArguments() - 1) : Value();
}

/// status = callee(args); if failed, return it naming `op`.
LogicalResult checkedCall(ConversionPatternRewriter &rewriter, Operation *op,
                          StringRef callee, CallArgs &args) {
  Location loc = op->getLoc();
  Value whereArg = whereArgument(op);
  if (!whereArg)
    return rewriter.notifyMatchFailure(op, "not inside a model entry");
  auto call = emitc::CallOpaqueOp::create(
      rewriter, loc, TypeRange{statusType(op->getContext())}, callee,
      args.operands, rewriter.getArrayAttr(args.attrs), ArrayAttr());
  std::string name = quoted(where(op, callee)), escaped;
  for (char c : name)
    escaped += c == '{' ? std::string("{{") : std::string(1, c);
  std::string check =
      llvm::formatv("if ({{} != MOERT_OK) return moert_model_fail({{}, {{}, "
                    "{0});",
                    escaped)
          .str();
  emitc::VerbatimOp::create(
      rewriter, loc, rewriter.getStringAttr(check),
      ValueRange{call.getResult(0), call.getResult(0), whereArg});
  return success();
}

/// Replaces `op`, which has no results, with checkedCall(callee, args).
LogicalResult callInsteadOf(ConversionPatternRewriter &rewriter, Operation *op,
                            StringRef callee, CallArgs &args) {
  if (failed(checkedCall(rewriter, op, callee, args)))
    return failure();
  rewriter.eraseOp(op);
  return success();
}

/// A local `T name;` whose members are then assigned.
Value localStruct(ConversionPatternRewriter &rewriter, Location loc,
                  StringRef type) {
  return emitc::VariableOp::create(
      rewriter, loc,
      emitc::LValueType::get(opaque(rewriter.getContext(), type)),
      emitc::OpaqueAttr::get(rewriter.getContext(), ""));
}

void assignMember(ConversionPatternRewriter &rewriter, Location loc,
                  Value record, StringRef member, Value value) {
  Value field = emitc::MemberOp::create(rewriter, loc,
                                        emitc::LValueType::get(value.getType()),
                                        rewriter.getStringAttr(member), record);
  emitc::AssignOp::create(rewriter, loc, field, value);
}

Value literal(ConversionPatternRewriter &rewriter, Location loc, Type type,
              StringRef text) {
  return emitc::LiteralOp::create(rewriter, loc, type,
                                  rewriter.getStringAttr(text));
}

Value i64Literal(ConversionPatternRewriter &rewriter, Location loc, int64_t v) {
  return literal(rewriter, loc, rewriter.getI64Type(), std::to_string(v));
}

Value addressOf(ConversionPatternRewriter &rewriter, Location loc,
                Value lvalue) {
  auto type = cast<emitc::LValueType>(lvalue.getType()).getValueType();
  return emitc::AddressOfOp::create(rewriter, loc,
                                    emitc::PointerType::get(type), lvalue);
}

Value absentView(ConversionPatternRewriter &rewriter, Location loc) {
  return emitc::CallOpaqueOp::create(
             rewriter, loc,
             TypeRange{opaque(rewriter.getContext(), "moert_view_t")},
             "moert_absent_view", ValueRange{})
      .getResult(0);
}

template <typename OpTy>
struct MoertPattern : public OpConversionPattern<OpTy> {
  using OpConversionPattern<OpTy>::OpConversionPattern;
};

//===----------------------------------------------------------------------===//
// Entries
//===----------------------------------------------------------------------===//

/// func.func {moert.entry = "init" | "step"} -> the exported C function
/// moe_model_<entry>(..., const char **where) returning moert_status_t.
struct EntryPattern : public MoertPattern<func::FuncOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(func::FuncOp func, OpAdaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto entry = func->getAttrOfType<StringAttr>("moert.entry");
    if (!entry)
      return rewriter.notifyMatchFailure(func, "not a model entry");
    MLIRContext *context = func.getContext();
    TypeConverter::SignatureConversion signature(func.getNumArguments());
    for (auto [i, type] : llvm::enumerate(func.getArgumentTypes())) {
      Type converted = getTypeConverter()->convertType(type);
      if (!converted)
        return rewriter.notifyMatchFailure(func, "unconvertible argument");
      signature.addInputs(i, converted);
    }
    SmallVector<Type> inputs(signature.getConvertedTypes());
    inputs.push_back(whereType(context));
    auto cfunc = emitc::FuncOp::create(
        rewriter, func.getLoc(), ("moe_model_" + entry.getValue()).str(),
        FunctionType::get(context, inputs, {statusType(context)}));
    rewriter.inlineRegionBefore(func.getBody(), cfunc.getBody(), cfunc.end());
    if (failed(rewriter.convertRegionTypes(&cfunc.getBody(),
                                           *getTypeConverter(), &signature)))
      return failure();
    cfunc.getBody().front().addArgument(whereType(context), func.getLoc());
    rewriter.eraseOp(func);
    return success();
  }
};

struct ReturnPattern : public MoertPattern<func::ReturnOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(func::ReturnOp ret, OpAdaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Value ok = literal(rewriter, ret.getLoc(), statusType(ret.getContext()),
                       "MOERT_OK");
    rewriter.replaceOpWithNewOp<emitc::ReturnOp>(ret, ok);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Memory, statistics
//===----------------------------------------------------------------------===//

struct ViewPattern : public MoertPattern<ViewOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(ViewOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto type = cast<ViewType>(op.getType());
    CallArgs args(op.getContext());
    args.value(adaptor.getBuffer())
        .integer(op.getOffset())
        .literal(dtypeName(type.getElementType()));
    rewriter.replaceOpWithNewOp<emitc::CallOpaqueOp>(
        op, TypeRange{getTypeConverter()->convertType(type)}, "moert_make_view",
        args.operands, rewriter.getArrayAttr(args.attrs), ArrayAttr());
    return success();
  }
};

struct RankPattern : public MoertPattern<RankOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(RankOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto call = emitc::CallOpaqueOp::create(
        rewriter, op.getLoc(), TypeRange{rewriter.getI32Type()},
        "moert_context_rank", ValueRange{adaptor.getCtx()});
    rewriter.replaceOpWithNewOp<emitc::CastOp>(op, rewriter.getI64Type(),
                                               call.getResult(0));
    return success();
  }
};

/// The body inline, timed into stats[index].
struct LayerPattern : public MoertPattern<LayerOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(LayerOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto start = emitc::CallOpaqueOp::create(
        rewriter, loc, TypeRange{rewriter.getI64Type()}, "moert_model_clock_ns",
        ValueRange{});
    // The body is inlined before its ops are converted: remember their layer
    // for the failure messages.
    for (Operation &inner : op.getBody().front())
      rewriter.modifyOpInPlace(&inner, [&] {
        inner.setAttr(kLayerOfCall, rewriter.getI64IntegerAttr(op.getIndex()));
      });
    rewriter.inlineBlockBefore(&op.getBody().front(), op);
    CallArgs args(op.getContext());
    args.value(adaptor.getStats())
        .integer(op.getIndex())
        .value(start.getResult(0));
    emitc::CallOpaqueOp::create(rewriter, loc, TypeRange{},
                                "moert_model_record_time", args.operands,
                                rewriter.getArrayAttr(args.attrs), ArrayAttr());
    rewriter.eraseOp(op);
    return success();
  }
};

struct RecordDropsPattern : public MoertPattern<RecordDropsOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(RecordDropsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(adaptor.getCtx())
        .value(adaptor.getStats())
        .integer(op.getLayer())
        .value(adaptor.getCounts())
        .value(adaptor.getTokens())
        .integer(op.getTopK())
        .integer(op.getExperts());
    return callInsteadOf(rewriter, op, "moert_model_record_drops", args);
  }
};

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

struct RouterPattern : public MoertPattern<RouterOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(RouterOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(a.getX())
        .value(a.getWeight())
        .value(a.getBias())
        .value(a.getLogits())
        .value(a.getTokens())
        .integer(op.getHidden())
        .integer(op.getExperts());
    return callInsteadOf(rewriter, op, "moert_router", args);
  }
};

/// A local moert_gate_config_t filled from `routing`; returns its address.
Value gateConfig(ConversionPatternRewriter &rewriter, Location loc,
                 moe::RoutingAttr routing, int64_t experts,
                 int64_t staticCapacity = 0) {
  MLIRContext *context = rewriter.getContext();
  Value cfg = localStruct(rewriter, loc, "moert_gate_config_t");
  CallArgs init(context);
  init.value(addressOf(rewriter, loc, cfg))
      .integer(experts)
      .integer(routing.getTopK());
  emitc::CallOpaqueOp::create(rewriter, loc, TypeRange{},
                              "moert_gate_config_init", init.operands,
                              rewriter.getArrayAttr(init.attrs), ArrayAttr());
  auto set = [&](StringRef member, StringRef type, std::string text) {
    assignMember(rewriter, loc, cfg, member,
                 literal(rewriter, loc, opaque(context, type), text));
  };
  set("score_func", "moert_score_func_t",
      routing.getScoring() == moe::ScoringFunc::sigmoid
          ? "MOERT_SCORE_SIGMOID"
          : "MOERT_SCORE_SOFTMAX");
  set("n_group", "int32_t", std::to_string(routing.getNGroup()));
  set("topk_group", "int32_t", std::to_string(routing.getTopkGroup()));
  set("group_score", "moert_group_score_t",
      routing.getGroupScore() == moe::GroupScore::top2_sum
          ? "MOERT_GROUP_SCORE_TOP2_SUM"
          : "MOERT_GROUP_SCORE_MAX");
  const char *norms[] = {"MOERT_NORM_NONE", "MOERT_NORM_SELECTED",
                         "MOERT_NORM_KEPT"};
  set("norm", "moert_gate_norm_t",
      norms[static_cast<int>(routing.getNormalize())]);
  set("norm_epsilon", "float",
      llvm::formatv("{0:e}f", routing.getNormEpsilon().convertToDouble())
          .str());
  set("routed_scaling_factor", "float",
      llvm::formatv("{0:e}f",
                    routing.getRoutedScalingFactor().convertToDouble())
          .str());
  set("capacity_factor", "double",
      llvm::formatv("{0:e}", routing.getCapacityFactor().convertToDouble())
          .str());
  set("min_capacity", "int64_t", std::to_string(routing.getMinCapacity()));
  const char *orders[] = {"MOERT_DROP_CHOICE_MAJOR", "MOERT_DROP_TOKEN_MAJOR",
                          "MOERT_DROP_PROBS"};
  set("drop_order", "moert_drop_order_t",
      orders[static_cast<int>(routing.getDropOrder())]);
  if (staticCapacity > 0)
    set("static_capacity", "int64_t", std::to_string(staticCapacity));
  return addressOf(rewriter, loc, cfg);
}

struct GatePattern : public MoertPattern<GateOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(GateOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *context = op.getContext();
    Value cfg = gateConfig(rewriter, loc, op.getRouting(), op.getExperts(),
                           op.getStaticCapacity());
    Value capacity = emitc::VariableOp::create(
        rewriter, loc, emitc::LValueType::get(rewriter.getI64Type()),
        emitc::OpaqueAttr::get(context, "0"));
    CallArgs args(context);
    args.value(a.getCtx())
        .value(cfg)
        .value(a.getLogits())
        .value(a.getCorrectionBias())
        .value(a.getTokens())
        .value(a.getIds())
        .value(a.getWeights())
        .value(a.getSlots())
        .value(a.getCounts())
        .value(addressOf(rewriter, loc, capacity));
    if (failed(checkedCall(rewriter, op, "moert_gate", args)))
      return failure();
    rewriter.replaceOp(op, emitc::LoadOp::create(
                               rewriter, loc, rewriter.getI64Type(), capacity));
    return success();
  }
};

struct GateScoresPattern : public MoertPattern<GateScoresOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(GateScoresOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(
            gateConfig(rewriter, op.getLoc(), op.getRouting(), op.getExperts()))
        .value(a.getLogits())
        .value(a.getTokens())
        .value(a.getScores());
    return callInsteadOf(rewriter, op, "moert_gate_scores", args);
  }
};

struct GateSelectPattern : public MoertPattern<GateSelectOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(GateSelectOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(
            gateConfig(rewriter, op.getLoc(), op.getRouting(), op.getExperts()))
        .value(a.getScores())
        .value(a.getCorrectionBias())
        .value(a.getTokens())
        .value(a.getIds())
        .value(a.getWeights());
    return callInsteadOf(rewriter, op, "moert_gate_select", args);
  }
};

struct GateSlotsPattern : public MoertPattern<GateSlotsOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(GateSlotsOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value cfg = gateConfig(rewriter, loc, op.getRouting(), op.getExperts());
    Value capacity = emitc::VariableOp::create(
        rewriter, loc, emitc::LValueType::get(rewriter.getI64Type()),
        emitc::OpaqueAttr::get(op.getContext(), "0"));
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(cfg)
        .value(a.getIds())
        .value(a.getWeights())
        .value(a.getTokens())
        .value(a.getSlots())
        .value(a.getCounts())
        .value(addressOf(rewriter, loc, capacity));
    if (failed(checkedCall(rewriter, op, "moert_gate_slots", args)))
      return failure();
    rewriter.replaceOp(op, emitc::LoadOp::create(
                               rewriter, loc, rewriter.getI64Type(), capacity));
    return success();
  }
};

struct GateNormalizePattern : public MoertPattern<GateNormalizeOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(GateNormalizeOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(
            gateConfig(rewriter, op.getLoc(), op.getRouting(), op.getExperts()))
        .value(a.getSlots())
        .value(a.getTokens())
        .value(a.getWeights());
    return callInsteadOf(rewriter, op, "moert_gate_normalize", args);
  }
};

struct DispatchPattern : public MoertPattern<DispatchOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(DispatchOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(a.getX())
        .value(a.getIds())
        .value(a.getSlots())
        .value(a.getBuffer())
        .value(a.getTokens())
        .integer(op.getHidden())
        .integer(op.getTopK())
        .integer(op.getExperts())
        .value(a.getCapacity());
    return callInsteadOf(rewriter, op, "moert_dispatch", args);
  }
};

struct CombinePattern : public MoertPattern<CombineOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(CombineOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(a.getY())
        .value(a.getIds())
        .value(a.getSlots())
        .value(a.getWeights())
        .value(a.getAddend())
        .value(a.getOut())
        .value(a.getTokens())
        .integer(op.getHidden())
        .integer(op.getTopK())
        .integer(op.getExperts())
        .value(a.getCapacity());
    return callInsteadOf(rewriter, op, "moert_combine", args);
  }
};

std::string activationName(moe::Activation activation) {
  const char *names[] = {"MOERT_ACT_SILU", "MOERT_ACT_GELU",
                         "MOERT_ACT_GELU_TANH", "MOERT_ACT_RELU"};
  return names[static_cast<int>(activation)];
}

/// moert_ffn_desc_t from the FFN operands: gated when a gate weight is
/// present, plain (w_gate = fc1) otherwise.
template <typename OpTy, typename Adaptor>
Value ffnDesc(ConversionPatternRewriter &rewriter, OpTy op, Adaptor a) {
  Location loc = op.getLoc();
  MLIRContext *context = op.getContext();
  Value desc = localStruct(rewriter, loc, "moert_ffn_desc_t");
  auto set = [&](StringRef member, StringRef type, std::string text) {
    assignMember(rewriter, loc, desc, member,
                 literal(rewriter, loc, opaque(context, type), text));
  };
  auto setView = [&](StringRef member, Value v) {
    assignMember(rewriter, loc, desc, member,
                 v ? v : absentView(rewriter, loc));
  };
  bool gated = static_cast<bool>(op.getGate());
  set("kind", "moert_ffn_kind_t",
      gated ? "MOERT_FFN_GATED" : "MOERT_FFN_PLAIN");
  set("activation", "moert_activation_t", activationName(op.getActivation()));
  set("hidden", "int64_t", std::to_string(op.getHidden()));
  set("ffn", "int64_t", std::to_string(op.getFfn()));
  setView("w_gate", gated ? a.getGate() : a.getUp());
  setView("w_up", gated ? a.getUp() : Value());
  setView("w_down", a.getDown());
  setView("b1", a.getUpBias());
  Value b2 = a.getDownBias();
  if (b2 && a.getDownBiasIf()) // only one slice adds the bias
    b2 = emitc::ConditionalOp::create(rewriter, loc, b2.getType(),
                                      a.getDownBiasIf(), b2,
                                      absentView(rewriter, loc));
  setView("b2", b2);
  return addressOf(rewriter, loc, desc);
}

struct ExpertsPattern : public MoertPattern<ExpertsOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(ExpertsOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(ffnDesc(rewriter, op, a))
        .value(a.getInput())
        .value(a.getOutput())
        .value(a.getRows())
        .integer(op.getExperts())
        .value(a.getCapacity())
        .integer(op.getBlocks());
    return callInsteadOf(rewriter, op, "moert_experts", args);
  }
};

struct ExpertsLinearPattern : public MoertPattern<ExpertsLinearOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(ExpertsLinearOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(a.getWeight())
        .value(a.getInput())
        .value(a.getOutput())
        .value(a.getRows())
        .integer(op.getExperts())
        .value(a.getCapacity())
        .integer(op.getBlocks())
        .integer(op.getN())
        .integer(op.getK());
    return callInsteadOf(rewriter, op, "moert_experts_linear", args);
  }
};

struct ActivationPattern : public MoertPattern<ActivationOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(ActivationOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .literal(activationName(op.getActivation()))
        .value(a.getX())
        .value(a.getOut())
        .value(a.getCount());
    return callInsteadOf(rewriter, op, "moert_activation", args);
  }
};

struct MultiplyPattern : public MoertPattern<MultiplyOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(MultiplyOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(a.getLhs())
        .value(a.getRhs())
        .value(a.getOut())
        .value(a.getCount());
    return callInsteadOf(rewriter, op, "moert_multiply", args);
  }
};

/// &desc of a moert_packed_ffn_desc_t.
Value packedFfnDesc(ConversionPatternRewriter &rewriter, Location loc,
                    moe::Activation activation, int64_t hidden, int64_t ffn,
                    Value gateUp, Value down) {
  MLIRContext *context = rewriter.getContext();
  Value desc = localStruct(rewriter, loc, "moert_packed_ffn_desc_t");
  auto set = [&](StringRef member, StringRef type, std::string text) {
    assignMember(rewriter, loc, desc, member,
                 literal(rewriter, loc, opaque(context, type), text));
  };
  set("activation", "moert_activation_t", activationName(activation));
  set("hidden", "int64_t", std::to_string(hidden));
  set("ffn", "int64_t", std::to_string(ffn));
  assignMember(rewriter, loc, desc, "w_gate_up", gateUp);
  assignMember(rewriter, loc, desc, "w_down", down);
  return addressOf(rewriter, loc, desc);
}

struct FusedExpertsPattern : public MoertPattern<FusedExpertsOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(FusedExpertsOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(packedFfnDesc(rewriter, loc, op.getActivation(), op.getHidden(),
                             op.getFfn(), a.getGateUp(), a.getDown()))
        .value(a.getInput())
        .value(a.getOutput())
        .value(a.getRows())
        .integer(op.getExperts())
        .value(a.getCapacity())
        .integer(op.getBlocks());
    if (a.getSharedInput())
      args.value(packedFfnDesc(rewriter, loc, op.getActivation(),
                               op.getHidden(), op.getSharedFfn(),
                               a.getSharedGateUp(), a.getSharedDown()))
          .value(a.getSharedInput())
          .value(a.getSharedOutput())
          .value(a.getTokens());
    else
      args.literal("nullptr").absent().absent().integer(0);
    return callInsteadOf(rewriter, op, "moert_fused_experts", args);
  }
};

struct DenseFfnPattern : public MoertPattern<DenseFfnOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(DenseFfnOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(ffnDesc(rewriter, op, a))
        .value(a.getInput())
        .value(a.getOutput())
        .value(a.getTokens());
    return callInsteadOf(rewriter, op, "moert_dense_ffn", args);
  }
};

struct ResidualMixPattern : public MoertPattern<ResidualMixOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(ResidualMixOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(a.getX())
        .value(a.getCoefWeight())
        .value(a.getCoefBias())
        .value(a.getMoeOutput())
        .value(a.getMlpOutput())
        .value(a.getOut())
        .value(a.getTokens())
        .integer(op.getHidden());
    return callInsteadOf(rewriter, op, "moert_residual_mix", args);
  }
};

struct FusedCombinePattern : public MoertPattern<FusedCombineOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(FusedCombineOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(a.getY())
        .value(a.getIds())
        .value(a.getSlots())
        .value(a.getWeights())
        .value(a.getMlpOutput())
        .value(a.getCoefWeight())
        .value(a.getCoefBias())
        .value(a.getShared())
        .value(a.getSharedGateWeight())
        .value(a.getX())
        .value(a.getAddend())
        .value(a.getOut())
        .value(a.getTokens())
        .integer(op.getHidden())
        .integer(op.getTopK())
        .integer(op.getExperts())
        .value(a.getCapacity());
    return callInsteadOf(rewriter, op, "moert_fused_combine", args);
  }
};

struct SharedAddPattern : public MoertPattern<SharedAddOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(SharedAddOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(a.getRouted())
        .value(a.getShared())
        .value(a.getX())
        .value(a.getGateWeight())
        .value(a.getOut())
        .value(a.getTokens())
        .integer(op.getHidden());
    return callInsteadOf(rewriter, op, "moert_shared_add", args);
  }
};

struct AddPattern : public MoertPattern<AddOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(AddOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    // count = tokens * hidden
    Value count = emitc::MulOp::create(
        rewriter, op.getLoc(), rewriter.getI64Type(), a.getTokens(),
        i64Literal(rewriter, op.getLoc(), op.getHidden()));
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(a.getLhs())
        .value(a.getRhs())
        .value(a.getOut())
        .value(count);
    return callInsteadOf(rewriter, op, "moert_add", args);
  }
};

//===----------------------------------------------------------------------===//
// Groups and collectives
//===----------------------------------------------------------------------===//

struct KeepGroupPattern : public MoertPattern<KeepGroupOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(KeepGroupOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *context = op.getContext();
    auto shape = cast<ShapedType>(op.getGroups().getType());
    std::string table = "{";
    for (auto [i, r] : llvm::enumerate(op.getGroups().getValues<int64_t>()))
      table += (i ? ", " : "") + std::to_string(r);
    table += "}";
    Value ranks = emitc::VariableOp::create(
        rewriter, loc,
        emitc::ArrayType::get({shape.getNumElements()}, rewriter.getI32Type()),
        emitc::OpaqueAttr::get(context, table));
    CallArgs args(context);
    args.value(a.getCtx())
        .value(ranks)
        .integer(shape.getDimSize(0))
        .integer(shape.getDimSize(1))
        .integer(op.getSlot());
    return callInsteadOf(rewriter, op, "moert_model_keep_group", args);
  }
};

struct GroupPattern : public MoertPattern<GroupOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(GroupOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *context = op.getContext();
    Value group = emitc::VariableOp::create(
        rewriter, loc, emitc::LValueType::get(opaque(context, "moert_group_t")),
        emitc::OpaqueAttr::get(context, "NULL"));
    CallArgs args(context);
    args.value(a.getCtx())
        .integer(op.getSlot())
        .value(addressOf(rewriter, loc, group));
    if (failed(checkedCall(rewriter, op, "moert_context_group", args)))
      return failure();
    rewriter.replaceOp(
        op, emitc::LoadOp::create(rewriter, loc,
                                  opaque(context, "moert_group_t"), group));
    return success();
  }
};

struct AllToAllPattern : public MoertPattern<AllToAllOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(AllToAllOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(a.getGroup())
        .literal(op.getDirection() == moe::AllToAllDirection::to_experts
                     ? "MOERT_A2A_TO_EXPERTS"
                     : "MOERT_A2A_FROM_EXPERTS")
        .literal(op.getAlgorithm() == moe::AllToAllVariant::hierarchical
                     ? "MOERT_A2A_HIERARCHICAL"
                     : "MOERT_A2A_FLAT")
        .value(a.getSend())
        .value(a.getRecv())
        .integer(op.getExpertsLocal())
        .value(a.getCapacity())
        .integer(op.getHidden());
    bool sliced = op.getSlices() > 1;
    if (sliced)
      args.integer(op.getSlices());
    return callInsteadOf(
        rewriter, op, sliced ? "moert_all_to_all_sliced" : "moert_all_to_all",
        args);
  }
};

StringRef reduceName(ReduceOp op) {
  return op == ReduceOp::max ? "MOERT_REDUCE_MAX" : "MOERT_REDUCE_SUM";
}

struct AllReducePattern : public MoertPattern<AllReduceOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(AllReduceOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(a.getGroup())
        .literal(reduceName(op.getOp()))
        .value(a.getSend())
        .value(a.getRecv())
        .value(a.getCount());
    return callInsteadOf(rewriter, op, "moert_all_reduce", args);
  }
};

template <typename OpTy>
struct GatherScatterPattern : public MoertPattern<OpTy> {
  GatherScatterPattern(const TypeConverter &converter, MLIRContext *context,
                       StringRef callee)
      : MoertPattern<OpTy>(converter, context), callee(callee) {}
  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(a.getGroup())
        .value(a.getSend())
        .value(a.getRecv())
        .value(a.getCount());
    return callInsteadOf(rewriter, op, callee, args);
  }
  std::string callee;
};

struct AllReduceI64Pattern : public MoertPattern<AllReduceI64Op> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(AllReduceI64Op op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value value = emitc::VariableOp::create(
        rewriter, loc, emitc::LValueType::get(rewriter.getI64Type()),
        emitc::OpaqueAttr::get(op.getContext(), "0"));
    emitc::AssignOp::create(rewriter, loc, value, a.getValue());
    CallArgs args(op.getContext());
    args.value(a.getCtx())
        .value(a.getGroup())
        .literal(reduceName(op.getOp()))
        .value(addressOf(rewriter, loc, value));
    if (failed(checkedCall(rewriter, op, "moert_all_reduce_i64", args)))
      return failure();
    rewriter.replaceOp(
        op, emitc::LoadOp::create(rewriter, loc, rewriter.getI64Type(), value));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

struct LoadWeightPattern : public MoertPattern<LoadWeightOp> {
  using MoertPattern::MoertPattern;
  LogicalResult
  matchAndRewrite(LoadWeightOp op, OpAdaptor a,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *context = op.getContext();
    ArrayRef<int64_t> shape = op.getShape();
    std::string extents = "{";
    for (auto [i, d] : llvm::enumerate(shape))
      extents += (i ? ", " : "") + std::to_string(d);
    extents += "}";
    Value shapeArray = emitc::VariableOp::create(
        rewriter, loc,
        emitc::ArrayType::get({(int64_t)shape.size()}, rewriter.getI64Type()),
        emitc::OpaqueAttr::get(context, extents));
    Value req = localStruct(rewriter, loc, "moert_weight_request_t");
    CallArgs init(context);
    init.value(addressOf(rewriter, loc, req))
        .literal(quoted(op.getKey()))
        .integer(shape.size())
        .value(shapeArray);
    emitc::CallOpaqueOp::create(rewriter, loc, TypeRange{},
                                "moert_weight_request_init", init.operands,
                                rewriter.getArrayAttr(init.attrs), ArrayAttr());
    Type i64 = rewriter.getI64Type();
    auto shifted = [&](int64_t base, Value offset) -> Value {
      Value v = i64Literal(rewriter, loc, base);
      return offset ? emitc::AddOp::create(rewriter, loc, i64, v, offset)
                          .getResult()
                    : v;
    };
    if (auto range = op.getExpertRange()) {
      assignMember(rewriter, loc, req, "expert_begin",
                   shifted((*range)[0], a.getExpertOffset()));
      assignMember(rewriter, loc, req, "expert_end",
                   shifted((*range)[1], a.getExpertOffset()));
    }
    for (auto [field, bounds] :
         {std::pair<StringRef, ArrayRef<int64_t>>{"begin", op.getBegin()},
          {"end", op.getEnd()}}) {
      for (auto [d, bound] : llvm::enumerate(bounds)) {
        Value offset = a.getOffsets().empty() ? Value() : a.getOffsets()[d];
        if (bound == 0 && !offset)
          continue; // moert_weight_request_init: begin 0, end 0 = full
        Value array = emitc::MemberOp::create(
            rewriter, loc, emitc::ArrayType::get({4}, i64),
            rewriter.getStringAttr(field), req);
        Value index =
            literal(rewriter, loc, rewriter.getIndexType(), std::to_string(d));
        Value element = emitc::SubscriptOp::create(
            rewriter, loc, cast<TypedValue<emitc::ArrayType>>(array),
            ValueRange{index});
        emitc::AssignOp::create(rewriter, loc, element, shifted(bound, offset));
      }
    }
    if (op.getDstExpertStride() != 0)
      assignMember(rewriter, loc, req, "dst_expert_stride",
                   i64Literal(rewriter, loc, op.getDstExpertStride()));
    CallArgs args(context);
    args.value(a.getCtx())
        .value(a.getWeights())
        .value(addressOf(rewriter, loc, req))
        .value(a.getDst());
    return callInsteadOf(rewriter, op, "moert_weights_load", args);
  }
};

//===----------------------------------------------------------------------===//
// The model's description
//===----------------------------------------------------------------------===//

/// moe_model_info(): a pointer to a static moert_model_info_t.
LogicalResult emitInfo(ModuleOp module, func::FuncOp step) {
  MLIRContext *context = module.getContext();
  OpBuilder b(context);
  b.setInsertionPointToEnd(module.getBody());
  Location loc = module.getLoc();
  auto x = cast<ViewType>(step.getArgumentTypes().back());
  auto state = cast<BufferType>(step.getArgumentTypes()[1]);
  int64_t maxTokens = 0;
  if (auto attr = module->getAttrOfType<IntegerAttr>("moert.max_tokens"))
    maxTokens = attr.getInt();
  int64_t layers = 0;
  step.walk(
      [&](LayerOp l) { layers = std::max<int64_t>(layers, l.getIndex() + 1); });
  int64_t nodes = 1, gpus = 1;
  if (auto mesh = module->getAttrOfType<moe::MeshAttr>(
          moe::MoeDialect::kMeshAttrName)) {
    nodes = mesh.getNodes();
    gpus = mesh.getGpusPerNode();
  }
  std::string table;
  if (auto attr = module->getAttrOfType<StringAttr>(
          moe::MoeDialect::kPlanTableAttrName))
    table = attr.getValue().str();
  auto i64Attr = [&](StringRef name) {
    auto attr = step->getAttrOfType<IntegerAttr>(name);
    return attr ? attr.getInt() : 0;
  };
  StringRef name = step.getSymName();
  name.consume_back("_step");
  std::string init = llvm::formatv(
      "{{{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}, {10}}", quoted(name),
      nodes, gpus, maxTokens, maxTokens ? x.getCount() / maxTokens : 0,
      dtypeName(x.getElementType()), layers, state.getBytes(),
      i64Attr("moert.weight_bytes"), i64Attr("moert.peak_bytes"),
      quoted(table));
  Type infoType = opaque(context, "moert_model_info_t");
  emitc::GlobalOp::create(b, loc, b.getStringAttr("moe_model_info_data"),
                          TypeAttr::get(infoType),
                          emitc::OpaqueAttr::get(context, init),
                          /*extern_specifier=*/nullptr,
                          /*static_specifier=*/b.getUnitAttr(),
                          /*const_specifier=*/b.getUnitAttr());
  auto func = emitc::FuncOp::create(
      b, loc, "moe_model_info",
      FunctionType::get(context, {}, {emitc::PointerType::get(infoType)}));
  b.setInsertionPointToEnd(func.addEntryBlock());
  Value global = emitc::GetGlobalOp::create(
      b, loc, emitc::LValueType::get(infoType),
      FlatSymbolRefAttr::get(context, "moe_model_info_data"));
  Value address = emitc::AddressOfOp::create(
      b, loc, emitc::PointerType::get(infoType), global);
  emitc::ReturnOp::create(b, loc, address);
  return success();
}

struct MoertToEmitCPass
    : public mlir::moert::impl::MoertToEmitCBase<MoertToEmitCPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *context = &getContext();
    func::FuncOp init, step;
    for (auto func : module.getOps<func::FuncOp>()) {
      auto entry = func->getAttrOfType<StringAttr>("moert.entry");
      func::FuncOp &slot = !entry                       ? init
                           : entry.getValue() == "init" ? init
                                                        : step;
      if (!entry) {
        func.emitError() << "moert-to-emitc: '" << func.getSymName()
                         << "' is not a model entry (run "
                            "moe-lower-to-runtime first)";
        return signalPassFailure();
      }
      if (slot) {
        func.emitError() << "moert-to-emitc: a second model "
                         << entry.getValue()
                         << " entry; compile one model per module";
        return signalPassFailure();
      }
      slot = func;
    }
    if (!init || !step) {
      module.emitError() << "moert-to-emitc: the module needs one init and "
                            "one step entry (from moe-lower-to-runtime)";
      return signalPassFailure();
    }
    if (failed(emitInfo(module, step)))
      return signalPassFailure();

    OpBuilder b(context);
    b.setInsertionPointToStart(module.getBody());
    emitc::IncludeOp::create(b, module.getLoc(),
                             b.getStringAttr("runtime/moert_model.h"));
    // The runner finds the entries with dlsym.
    emitc::VerbatimOp::create(b, module.getLoc(), "extern \"C\" {");
    b.setInsertionPointToEnd(module.getBody());
    emitc::VerbatimOp::create(b, module.getLoc(), "} // extern \"C\"");

    TypeConverter converter;
    populateMoertToEmitCTypeConversions(converter);
    RewritePatternSet patterns(context);
    populateMoertToEmitCPatterns(converter, patterns);
    populateArithToEmitCPatterns(converter, patterns);
    ConversionTarget target(*context);
    target.addLegalDialect<emitc::EmitCDialect>();
    target.addIllegalDialect<MoertDialect, arith::ArithDialect,
                             func::FuncDialect>();
    if (failed(applyPartialConversion(module, target, std::move(patterns))))
      return signalPassFailure();
    for (StringRef attr :
         {"moert.max_tokens", "moe.mesh", "moe.plan_table", "moe.model_type"})
      module->removeAttr(attr);
  }
};

} // namespace

void mlir::moert::populateMoertToEmitCTypeConversions(
    TypeConverter &converter) {
  converter.addConversion([](Type type) -> std::optional<Type> {
    if (type.isInteger() || type.isIndex() || isa<FloatType>(type) ||
        emitc::isSupportedEmitCType(type))
      return type;
    return std::nullopt;
  });
  converter.addConversion([](ContextType t) -> Type {
    return opaque(t.getContext(), "moert_context_t");
  });
  converter.addConversion([](WeightsType t) -> Type {
    return opaque(t.getContext(), "moert_weights_t");
  });
  converter.addConversion([](GroupType t) -> Type {
    return opaque(t.getContext(), "moert_group_t");
  });
  converter.addConversion([](BufferType t) -> Type {
    return opaque(t.getContext(), "moert_buffer_t");
  });
  converter.addConversion([](ViewType t) -> Type {
    return opaque(t.getContext(), "moert_view_t");
  });
  converter.addConversion([](StatsType t) -> Type {
    return emitc::PointerType::get(
        opaque(t.getContext(), "moert_model_layer_stats_t"));
  });
}

void mlir::moert::populateMoertToEmitCPatterns(const TypeConverter &converter,
                                               RewritePatternSet &patterns) {
  MLIRContext *context = patterns.getContext();
  patterns.add<EntryPattern, ReturnPattern, ViewPattern, RankPattern,
               LayerPattern, RecordDropsPattern, RouterPattern, GatePattern,
               GateScoresPattern, GateSelectPattern, GateSlotsPattern,
               GateNormalizePattern, DispatchPattern, CombinePattern,
               ExpertsPattern, ExpertsLinearPattern, ActivationPattern,
               MultiplyPattern, FusedExpertsPattern, DenseFfnPattern,
               ResidualMixPattern, SharedAddPattern, FusedCombinePattern,
               AddPattern, KeepGroupPattern, GroupPattern, AllToAllPattern,
               AllReducePattern, AllReduceI64Pattern, LoadWeightPattern>(
      converter, context);
  patterns.add<GatherScatterPattern<AllGatherOp>>(converter, context,
                                                  "moert_all_gather");
  patterns.add<GatherScatterPattern<ReduceScatterOp>>(converter, context,
                                                      "moert_reduce_scatter");
}
