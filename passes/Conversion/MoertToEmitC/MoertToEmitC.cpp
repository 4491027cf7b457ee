//===- MoertToEmitC.cpp - moert calls to EmitC ----------------------------===//
//
// Every runtime call op lowers through one pattern: its ODS-generated
// buildCall appends the C arguments in ABI order to a CallBuilder, which
// emits the emitc.call_opaque and its status check. The rest is the model's
// shape: the entries as exported C functions, views, the rank, layer timing
// and moe_model_info.
//
//===----------------------------------------------------------------------===//

#include "passes/Conversion/MoertToEmitC/MoertToEmitC.h"
#include "passes/Conversion/MoertToEmitC/CallBuilder.h"
#include "passes/Conversion/MoertToEmitC/Passes.h"

#include "dialects/moe/IR/MoeDialect.h"
#include "dialects/moert/IR/MoertOps.h"

#include "mlir/Conversion/ArithToEmitC/ArithToEmitC.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/EmitC/IR/EmitC.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/FormatVariadic.h"

namespace mlir::moert {
#define GEN_PASS_DEF_CONVERTMOERTTOEMITC
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

/// Any runtime call: status = callee(buildCall's arguments), checked.
template <typename CallOpTy>
struct RuntimeCallPattern : public OpConversionPattern<CallOpTy> {
  using OpConversionPattern<CallOpTy>::OpConversionPattern;
  LogicalResult
  matchAndRewrite(CallOpTy op, typename CallOpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    CallBuilder call(rewriter, *this->getTypeConverter(), op);
    op.buildCall(call, adaptor);
    return call.emit(CallOpTy::getCallee());
  }
};

/// Adds RuntimeCallPattern<Op> for every op of `Ops` that is a runtime call.
template <typename... Ops>
void addRuntimeCallPatterns(const TypeConverter &converter,
                            RewritePatternSet &patterns) {
  (
      [&] {
        if constexpr (Ops::template hasTrait<RuntimeCallOpInterface::Trait>())
          patterns.add<RuntimeCallPattern<Ops>>(converter,
                                                patterns.getContext());
      }(),
      ...);
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
    Value ok = emitc::LiteralOp::create(
        rewriter, ret.getLoc(), statusType(ret.getContext()), "MOERT_OK");
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
    CallBuilder call(rewriter, *getTypeConverter(), op);
    call.arg(adaptor.getBuffer());
    call.arg(op.getOffset());
    call.literal(cDtype(type.getElementType()));
    rewriter.replaceOp(
        op, call.emitUnchecked("moert_make_view",
                               getTypeConverter()->convertType(type)));
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
        inner.setAttr(kLayerOfCallAttrName,
                      rewriter.getI64IntegerAttr(op.getIndex()));
      });
    rewriter.inlineBlockBefore(&op.getBody().front(), op);
    CallBuilder record(rewriter, *getTypeConverter(), op);
    record.arg(adaptor.getStats());
    record.arg(op.getIndex());
    record.arg(start.getResult(0));
    record.emitUnchecked("moert_model_record_time", {});
    rewriter.eraseOp(op);
    return success();
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
  auto state = cast<BufferType>(step.getArgumentTypes()[1]);
  int64_t maxTokens = 0;
  if (auto attr = module->getAttrOfType<IntegerAttr>("moert.max_tokens"))
    maxTokens = attr.getInt();
  auto i64Attr = [&](StringRef name) {
    auto attr = step->getAttrOfType<IntegerAttr>(name);
    return attr ? attr.getInt() : 0;
  };
  // The FFN stack's x is its last argument; a decoder names its own.
  bool decoder =
      step->getAttrOfType<StringAttr>("moert.entry").getValue() == "forward";
  int64_t hidden = 0;
  Type dtype;
  if (decoder) {
    hidden = i64Attr("moert.hidden");
    auto type = step->getAttrOfType<TypeAttr>("moert.dtype");
    dtype = type ? type.getValue() : Float32Type::get(context);
  } else {
    auto x = cast<ViewType>(step.getArgumentTypes().back());
    hidden = maxTokens ? x.getCount() / maxTokens : 0;
    dtype = x.getElementType();
  }
  int64_t layers = 0, maxExperts = 0;
  step.walk(
      [&](LayerOp l) { layers = std::max<int64_t>(layers, l.getIndex() + 1); });
  // The room a runner gives each layer's per-expert counts.
  step.walk([&](RecordDropsOp r) {
    maxExperts = std::max<int64_t>(maxExperts, r.getExperts());
  });
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
  StringRef name = step.getSymName();
  name.consume_back("_step");
  std::string init = llvm::formatv(
      "{{{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}, {10}, {11}, {12}, "
      "{13}, {14}, {15}, {16}, {17}, {18}}",
      cStringLiteral(name), nodes, gpus, maxTokens, hidden, cDtype(dtype),
      layers, state.getBytes(), i64Attr("moert.weight_bytes"),
      i64Attr("moert.peak_bytes"), cStringLiteral(table), maxExperts,
      decoder ? "MOERT_MODEL_DECODER" : "MOERT_MODEL_FFN_STACK",
      i64Attr("moert.vocab"), i64Attr("moert.max_batch"),
      i64Attr("moert.max_seq"), i64Attr("moert.cache_bytes"),
      std::max<int64_t>(1, i64Attr("moert.attention_tp")),
      i64Attr("moert.rope_regime_switch"));
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

struct ConvertMoertToEmitCPass
    : public mlir::moert::impl::ConvertMoertToEmitCBase<
          ConvertMoertToEmitCPass> {
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
        func.emitError() << "convert-moert-to-emitc: '" << func.getSymName()
                         << "' is not a model entry (run "
                            "convert-moe-to-moert first)";
        return signalPassFailure();
      }
      if (slot) {
        func.emitError() << "convert-moert-to-emitc: a second model "
                         << entry.getValue()
                         << " entry; compile one model per module";
        return signalPassFailure();
      }
      slot = func;
    }
    if (!init || !step) {
      module.emitError()
          << "convert-moert-to-emitc: the module needs one init and "
             "one step entry (from convert-moe-to-moert)";
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
  patterns
      .add<EntryPattern, ReturnPattern, ViewPattern, RankPattern, LayerPattern>(
          converter, patterns.getContext());
  addRuntimeCallPatterns<
#define GET_OP_LIST
#include "dialects/moert/IR/MoertOps.cpp.inc"
      >(converter, patterns);
}
