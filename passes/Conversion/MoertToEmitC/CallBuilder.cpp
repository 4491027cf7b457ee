//===- CallBuilder.cpp - the C arguments of one runtime call --------------===//

#include "passes/Conversion/MoertToEmitC/CallBuilder.h"

#include "dialects/moert/IR/MoertOps.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::moert;

std::string mlir::moert::cDtype(Type elementType) {
  if (elementType.isF32())
    return "MOERT_F32";
  if (elementType.isF16())
    return "MOERT_F16";
  if (elementType.isBF16())
    return "MOERT_BF16";
  if (isa<Float8E4M3FNType>(elementType))
    return "MOERT_F8_E4M3";
  if (elementType.isUnsignedInteger(8))
    return "MOERT_U8";
  return elementType.isInteger(64) ? "MOERT_I64" : "MOERT_I32";
}

std::string mlir::moert::cStringLiteral(StringRef text) {
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

/// "layer 3: moert_gate" (or "init: moert_weights_load 'key'").
static std::string where(Operation *op, StringRef callee) {
  if (auto layer = op->getAttrOfType<IntegerAttr>(kLayerOfCallAttrName))
    return llvm::formatv("layer {0}: {1}", layer.getInt(), callee).str();
  if (auto load = dyn_cast<LoadWeightOp>(op))
    return llvm::formatv("init: {0} '{1}'", callee, load.getKey()).str();
  if (auto load = dyn_cast<LoadFusedWeightOp>(op))
    return llvm::formatv("init: {0} '{1}'", callee, load.getKey()).str();
  if (auto keep = dyn_cast<KeepGroupOp>(op))
    return llvm::formatv("init: {0} (slot {1})", callee, keep.getSlot()).str();
  return callee.str();
}

//===----------------------------------------------------------------------===//
// Plain arguments
//===----------------------------------------------------------------------===//

void CallBuilder::arg(Value value) {
  if (!value)
    return literal("moert_absent_view()");
  args.push_back(IntegerAttr::get(IndexType::get(context), operands.size()));
  operands.push_back(value);
}

void CallBuilder::arg(int64_t value) {
  args.push_back(IntegerAttr::get(IntegerType::get(context, 64), value));
}

void CallBuilder::arg(APFloat value) {
  // 9 significant digits round-trip every float.
  literal(llvm::formatv("{0:e8}f", value.convertToFloat()).str());
}

void CallBuilder::literal(StringRef text) {
  args.push_back(emitc::OpaqueAttr::get(context, text));
}

//===----------------------------------------------------------------------===//
// EmitC helpers
//===----------------------------------------------------------------------===//

Value CallBuilder::literalValue(Type type, StringRef text) {
  return emitc::LiteralOp::create(rewriter, loc, type,
                                  rewriter.getStringAttr(text));
}

Value CallBuilder::i64(int64_t value) {
  return literalValue(rewriter.getI64Type(), std::to_string(value));
}

/// A local `T name;` whose members are then assigned.
Value CallBuilder::localStruct(StringRef type) {
  return emitc::VariableOp::create(
      rewriter, loc,
      emitc::LValueType::get(emitc::OpaqueType::get(context, type)),
      emitc::OpaqueAttr::get(context, ""));
}

void CallBuilder::assignMember(Value record, StringRef member, Value value) {
  Value field = emitc::MemberOp::create(rewriter, loc,
                                        emitc::LValueType::get(value.getType()),
                                        rewriter.getStringAttr(member), record);
  emitc::AssignOp::create(rewriter, loc, field, value);
}

void CallBuilder::assignLiteral(Value record, StringRef member, StringRef type,
                                StringRef text) {
  assignMember(record, member,
               literalValue(emitc::OpaqueType::get(context, type), text));
}

Value CallBuilder::addressOf(Value lvalue) {
  auto type = cast<emitc::LValueType>(lvalue.getType()).getValueType();
  return emitc::AddressOfOp::create(rewriter, loc,
                                    emitc::PointerType::get(type), lvalue);
}

Value CallBuilder::absentView() {
  return emitc::CallOpaqueOp::create(
             rewriter, loc,
             TypeRange{emitc::OpaqueType::get(context, "moert_view_t")},
             "moert_absent_view", ValueRange{})
      .getResult(0);
}

//===----------------------------------------------------------------------===//
// Encoders
//===----------------------------------------------------------------------===//

void CallBuilder::gateConfig(moe::RoutingAttr routing, int64_t experts,
                             int64_t staticCapacity) {
  Value cfg = localStruct("moert_gate_config_t");
  CallBuilder init(rewriter, converter, op);
  init.arg(addressOf(cfg));
  init.arg(experts);
  init.arg(routing.getTopK());
  init.emitUnchecked("moert_gate_config_init", {});
  auto real = [](APFloat value, StringRef suffix) {
    return llvm::formatv("{0:e}{1}", value.convertToDouble(), suffix).str();
  };
  assignLiteral(cfg, "score_func", "moert_score_func_t",
                cEnumerator(routing.getScoring()));
  assignLiteral(cfg, "n_group", "int32_t", std::to_string(routing.getNGroup()));
  assignLiteral(cfg, "topk_group", "int32_t",
                std::to_string(routing.getTopkGroup()));
  assignLiteral(cfg, "group_score", "moert_group_score_t",
                cEnumerator(routing.getGroupScore()));
  assignLiteral(cfg, "norm", "moert_gate_norm_t",
                cEnumerator(routing.getNormalize()));
  assignLiteral(cfg, "norm_epsilon", "float",
                real(routing.getNormEpsilon(), "f"));
  assignLiteral(cfg, "routed_scaling_factor", "float",
                real(routing.getRoutedScalingFactor(), "f"));
  assignLiteral(cfg, "capacity_factor", "double",
                real(routing.getCapacityFactor(), ""));
  assignLiteral(cfg, "min_capacity", "int64_t",
                std::to_string(routing.getMinCapacity()));
  assignLiteral(cfg, "drop_order", "moert_drop_order_t",
                cEnumerator(routing.getDropOrder()));
  if (routing.getNormalize() == moe::Normalization::pnorm)
    assignLiteral(cfg, "norm_p", "float", real(routing.getNormP(), "f"));
  if (routing.getScoring() == moe::ScoringFunc::sparsemixer)
    assignLiteral(cfg, "jitter_eps", "float",
                  real(routing.getJitterEps(), "f"));
  if (staticCapacity > 0)
    assignLiteral(cfg, "static_capacity", "int64_t",
                  std::to_string(staticCapacity));
  arg(addressOf(cfg));
}

void CallBuilder::ropeConfig(moe::RopeAttr rope) {
  Value cfg = localStruct("moert_rope_config_t");
  auto real = [](APFloat value) {
    return llvm::formatv("{0:e}", value.convertToDouble()).str();
  };
  assignLiteral(cfg, "type", "moert_rope_type_t", cEnumerator(rope.getType()));
  assignLiteral(cfg, "theta", "double", real(rope.getTheta()));
  assignLiteral(cfg, "factor", "double", real(rope.getFactor()));
  assignLiteral(cfg, "low_freq_factor", "double",
                real(rope.getLowFreqFactor()));
  assignLiteral(cfg, "high_freq_factor", "double",
                real(rope.getHighFreqFactor()));
  assignLiteral(cfg, "beta_fast", "double", real(rope.getBetaFast()));
  assignLiteral(cfg, "beta_slow", "double", real(rope.getBetaSlow()));
  assignLiteral(cfg, "attention_factor", "double",
                real(rope.getAttentionFactor()));
  assignLiteral(cfg, "original_max_position", "int64_t",
                std::to_string(rope.getOriginalMaxPosition()));
  assignLiteral(cfg, "truncate", "int32_t", rope.getTruncate() ? "1" : "0");
  assignLiteral(cfg, "rotary_dim", "int64_t",
                std::to_string(rope.getRotaryDim()));
  assignLiteral(cfg, "interleaved", "int32_t",
                rope.getInterleaved() ? "1" : "0");
  if (rope.getType() == moe::RopeType::longrope) {
    // The arrays are members: one element at a time, 9 significant digits
    // (every float round-trips).
    auto setFactors = [&](StringRef member, DenseF64ArrayAttr factors) {
      for (auto [i, factor] : llvm::enumerate(factors.asArrayRef()))
        assignLiteral(
            cfg, llvm::formatv("{0}[{1}]", member, i).str(), "float",
            llvm::formatv("{0:e8}f", static_cast<float>(factor)).str());
    };
    setFactors("short_factor", rope.getShortFactor());
    setFactors("long_factor", rope.getLongFactor());
    assignLiteral(cfg, "short_mscale", "double", real(rope.getShortMscale()));
    assignLiteral(cfg, "long_mscale", "double", real(rope.getLongMscale()));
  }
  arg(addressOf(cfg));
}

void CallBuilder::ffnDesc(Value gate, Value up, Value upBias, Value down,
                          Value downBias, Value downBiasIf,
                          moe::Activation activation, int64_t hidden,
                          int64_t ffn) {
  Value desc = localStruct("moert_ffn_desc_t");
  auto setView = [&](StringRef member, Value v) {
    assignMember(desc, member, v ? v : absentView());
  };
  // Gated: w_gate, w_up; plain: w_gate is fc1.
  bool gated = static_cast<bool>(gate);
  assignLiteral(desc, "kind", "moert_ffn_kind_t",
                gated ? "MOERT_FFN_GATED" : "MOERT_FFN_PLAIN");
  assignLiteral(desc, "activation", "moert_activation_t",
                cEnumerator(activation));
  assignLiteral(desc, "hidden", "int64_t", std::to_string(hidden));
  assignLiteral(desc, "ffn", "int64_t", std::to_string(ffn));
  setView("w_gate", gated ? gate : up);
  setView("w_up", gated ? up : Value());
  setView("w_down", down);
  setView("b1", upBias);
  if (downBias && downBiasIf) // only one slice adds the bias
    downBias = emitc::ConditionalOp::create(rewriter, loc, downBias.getType(),
                                            downBiasIf, downBias, absentView());
  setView("b2", downBias);
  arg(addressOf(desc));
}

void CallBuilder::packedFfnDesc(moe::Activation activation, int64_t hidden,
                                int64_t ffn, Value gateUp, Value down) {
  Value desc = localStruct("moert_packed_ffn_desc_t");
  assignLiteral(desc, "activation", "moert_activation_t",
                cEnumerator(activation));
  assignLiteral(desc, "hidden", "int64_t", std::to_string(hidden));
  assignLiteral(desc, "ffn", "int64_t", std::to_string(ffn));
  assignMember(desc, "w_gate_up", gateUp);
  assignMember(desc, "w_down", down);
  arg(addressOf(desc));
}

void CallBuilder::quantizedFfnDesc(WeightFormat format, int64_t blockRows,
                                   int64_t blockCols,
                                   moe::Activation activation, int64_t hidden,
                                   int64_t ffn, Value gate, Value gateScales,
                                   Value up, Value upScales, Value down,
                                   Value downScales) {
  Value desc = localStruct("moert_quantized_ffn_desc_t");
  assignLiteral(desc, "format", "moert_weight_format_t", cEnumerator(format));
  assignLiteral(desc, "block_rows", "int64_t", std::to_string(blockRows));
  assignLiteral(desc, "block_cols", "int64_t", std::to_string(blockCols));
  assignLiteral(desc, "activation", "moert_activation_t",
                cEnumerator(activation));
  assignLiteral(desc, "hidden", "int64_t", std::to_string(hidden));
  assignLiteral(desc, "ffn", "int64_t", std::to_string(ffn));
  assignMember(desc, "gate.data", gate);
  assignMember(desc, "gate.scales", gateScales);
  assignMember(desc, "up.data", up);
  assignMember(desc, "up.scales", upScales);
  assignMember(desc, "down.data", down);
  assignMember(desc, "down.scales", downScales);
  arg(addressOf(desc));
}

void CallBuilder::sharedFfn(moe::Activation activation, int64_t hidden,
                            int64_t ffn, Value gateUp, Value down, Value input,
                            Value output, Value tokens) {
  if (!input) { // no shared expert
    literal("nullptr");
    arg(Value());
    arg(Value());
    arg(int64_t(0));
    return;
  }
  packedFfnDesc(activation, hidden, ffn, gateUp, down);
  arg(input);
  arg(output);
  arg(tokens);
}

void CallBuilder::weightRequest(StringRef key, ArrayRef<int64_t> shape,
                                ArrayRef<int64_t> begin, ArrayRef<int64_t> end,
                                std::optional<ArrayRef<int64_t>> expertRange,
                                Value expertOffset, ValueRange offsets,
                                int64_t dstExpertStride) {
  std::string extents = "{";
  for (auto [i, d] : llvm::enumerate(shape))
    extents += (i ? ", " : "") + std::to_string(d);
  extents += "}";
  Type i64Type = rewriter.getI64Type();
  Value shapeArray = emitc::VariableOp::create(
      rewriter, loc, emitc::ArrayType::get({(int64_t)shape.size()}, i64Type),
      emitc::OpaqueAttr::get(context, extents));
  Value req = localStruct("moert_weight_request_t");
  CallBuilder init(rewriter, converter, op);
  init.arg(addressOf(req));
  init.literal(cStringLiteral(key));
  init.arg(int64_t(shape.size()));
  init.arg(shapeArray);
  init.emitUnchecked("moert_weight_request_init", {});
  auto shifted = [&](int64_t base, Value offset) -> Value {
    Value v = i64(base);
    return offset ? emitc::AddOp::create(rewriter, loc, i64Type, v, offset)
                        .getResult()
                  : v;
  };
  if (expertRange) {
    assignMember(req, "expert_begin", shifted((*expertRange)[0], expertOffset));
    assignMember(req, "expert_end", shifted((*expertRange)[1], expertOffset));
  }
  for (auto [field, bounds] :
       {std::pair<StringRef, ArrayRef<int64_t>>{"begin", begin},
        {"end", end}}) {
    for (auto [d, bound] : llvm::enumerate(bounds)) {
      Value offset = offsets.empty() ? Value() : offsets[d];
      if (bound == 0 && !offset)
        continue; // moert_weight_request_init: begin 0, end 0 = full
      Value array = emitc::MemberOp::create(rewriter, loc,
                                            emitc::ArrayType::get({4}, i64Type),
                                            rewriter.getStringAttr(field), req);
      Value index = literalValue(rewriter.getIndexType(), std::to_string(d));
      Value element = emitc::SubscriptOp::create(
          rewriter, loc, cast<TypedValue<emitc::ArrayType>>(array),
          ValueRange{index});
      emitc::AssignOp::create(rewriter, loc, element, shifted(bound, offset));
    }
  }
  if (dstExpertStride != 0)
    assignMember(req, "dst_expert_stride", i64(dstExpertStride));
  arg(addressOf(req));
}

void CallBuilder::fusedView(ArrayRef<int64_t> shape, int64_t offset,
                            int64_t expertStride, ArrayRef<int64_t> strides) {
  auto list = [](ArrayRef<int64_t> values) {
    std::string text = "{";
    for (auto [i, v] : llvm::enumerate(values))
      text += (i ? ", " : "") + std::to_string(v);
    return text + "}";
  };
  // An aggregate initializer: rank, shape, offset, expert_stride, strides.
  std::string init = "{" + std::to_string(shape.size()) + ", " + list(shape) +
                     ", " + std::to_string(offset) + ", " +
                     std::to_string(expertStride) + ", " + list(strides) + "}";
  Value view =
      emitc::VariableOp::create(rewriter, loc,
                                emitc::LValueType::get(emitc::OpaqueType::get(
                                    context, "moert_fused_view_t")),
                                emitc::OpaqueAttr::get(context, init));
  arg(addressOf(view));
}

void CallBuilder::rankTable(DenseIntElementsAttr groups) {
  auto shape = cast<ShapedType>(groups.getType());
  std::string table = "{";
  for (auto [i, r] : llvm::enumerate(groups.getValues<int64_t>()))
    table += (i ? ", " : "") + std::to_string(r);
  table += "}";
  arg(emitc::VariableOp::create(
      rewriter, loc,
      emitc::ArrayType::get({shape.getNumElements()}, rewriter.getI32Type()),
      emitc::OpaqueAttr::get(context, table)));
  arg(shape.getDimSize(0));
  arg(shape.getDimSize(1));
}

void CallBuilder::result(Value initial) {
  Type type =
      converter.convertType(op->getResult(resultLocals.size()).getType());
  Value local = emitc::VariableOp::create(
      rewriter, loc, emitc::LValueType::get(type),
      emitc::OpaqueAttr::get(context, isa<IntegerType>(type) ? "0" : "NULL"));
  if (initial)
    emitc::AssignOp::create(rewriter, loc, local, initial);
  resultLocals.push_back(local);
  arg(addressOf(local));
}

//===----------------------------------------------------------------------===//
// The call
//===----------------------------------------------------------------------===//

emitc::CallOpaqueOp CallBuilder::emitUnchecked(StringRef callee,
                                               TypeRange results) {
  return emitc::CallOpaqueOp::create(rewriter, loc, results, callee, operands,
                                     rewriter.getArrayAttr(args), ArrayAttr());
}

LogicalResult CallBuilder::emit(StringRef callee) {
  // The `const char **where` argument of the enclosing exported function.
  auto func = op->getParentOfType<emitc::FuncOp>();
  if (!func)
    return rewriter.notifyMatchFailure(op, "not inside a model entry");
  Value whereArg = func.getArgument(func.getNumArguments() - 1);
  auto call =
      emitUnchecked(callee, emitc::OpaqueType::get(context, "moert_status_t"));
  // EmitC has no early return inside a region, hence one verbatim line.
  std::string name = cStringLiteral(where(op, callee)), escaped;
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
  SmallVector<Value> results;
  for (auto [local, result] : llvm::zip(resultLocals, op->getResults()))
    results.push_back(emitc::LoadOp::create(
        rewriter, loc, converter.convertType(result.getType()), local));
  rewriter.replaceOp(op, results);
  return success();
}
