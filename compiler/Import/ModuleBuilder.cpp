//===- ModuleBuilder.cpp - model description to moe IR --------------------===//

#include "compiler/Import/ModuleBuilder.h"

#include "dialects/moe/IR/MoeOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Verifier.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::import;

namespace {

/// Builds the body of @forward, collecting the weight arguments as it goes so
/// that the function is created once, with its final signature.
class ForwardBuilder {
public:
  ForwardBuilder(const ModelDesc &model, MLIRContext *context)
      : model(model), context(context), builder(context) {
    elementType = [&]() -> Type {
      switch (model.dtype) {
      case DType::f32:
        return Float32Type::get(context);
      case DType::f16:
        return Float16Type::get(context);
      case DType::bf16:
        return BFloat16Type::get(context);
      }
      return Float32Type::get(context);
    }();
    activationType = RankedTensorType::get(
        {ShapedType::kDynamic, model.hiddenSize}, elementType);
  }

  FailureOr<func::FuncOp> build();

private:
  /// The FFN-stack form: `x <- x + ffn(x)` over hidden states.
  FailureOr<Value> buildStack(Value x);
  /// The whole decoder over token ids; returns the logits and next ids.
  FailureOr<std::pair<Value, Value>> buildDecoder(Value ids, Value sequences,
                                                  Value positions,
                                                  Value sampleRows,
                                                  ArrayRef<Value> caches);
  /// `moe.layer index` over `input` whose body is `body(normed input)`
  /// (no norm when `normName` is empty; else the module `normName` of the
  /// layer, e.g. `model.layers.3.input_layernorm`).
  FailureOr<Value>
  residualBlock(int64_t index, Location loc, Value input, StringRef normName,
                llvm::function_ref<FailureOr<Value>(Value)> body);
  /// The decoder's norm (RMSNorm or LayerNorm) of module `name` (its
  /// `.weight`, and `.bias` for LayerNorm) over `input`.
  Value norm(StringRef name, Value input, Location loc);
  Value attention(int64_t layer, Value input, Value positions, Value sequences,
                  Value cache, Location loc);
  /// DeepSeek's multi-head latent attention of the layer whose attention
  /// keys start with `base`.
  Value latentAttention(StringRef base, Value input, Value positions,
                        Value sequences, Value cache, Location loc);
  RopeAttr ropeAttr(const RopeDesc &rope);
  /// A new weight argument `key` of `shape` (model dtype unless `type`).
  Value weight(StringRef key, ArrayRef<int64_t> shape, Location loc,
               Type type = {}, const std::optional<FusedViewDesc> &view = {});
  /// The weights of `ffn`, stacked `[E, ...]` when `experts` is set.
  struct FfnValues {
    Value gate, gateBias, up, upBias, down, downBias;
  };
  FfnValues ffnWeights(const FfnDesc &ffn, std::optional<int64_t> experts,
                       Location loc);
  Value denseFfn(const FfnDesc &ffn, Value input, Location loc);
  FailureOr<Value> routedExperts(const LayerDesc &layer, Value input,
                                 Location loc);
  FailureOr<Value> layerBody(const LayerDesc &layer, Value input);

  const ModelDesc &model;
  MLIRContext *context;
  OpBuilder builder;
  Type elementType;
  RankedTensorType activationType;
  Block *body = nullptr;
  SmallVector<DictionaryAttr> argAttrs;
};

} // namespace

Value ForwardBuilder::weight(StringRef key, ArrayRef<int64_t> shape,
                             Location loc, Type type,
                             const std::optional<FusedViewDesc> &view) {
  auto tensorType = RankedTensorType::get(shape, type ? type : elementType);
  SmallVector<NamedAttribute, 2> attrs = {builder.getNamedAttr(
      MoeDialect::kWeightAttrName, builder.getStringAttr(key))};
  if (view)
    attrs.push_back(builder.getNamedAttr(
        MoeDialect::kFusedViewAttrName,
        FusedViewAttr::get(context, view->shape, view->offset,
                           view->expertStride, view->strides)));
  argAttrs.push_back(builder.getDictionaryAttr(attrs));
  return body->addArgument(tensorType,
                           NameLoc::get(builder.getStringAttr(key), loc));
}

ForwardBuilder::FfnValues
ForwardBuilder::ffnWeights(const FfnDesc &ffn, std::optional<int64_t> experts,
                           Location loc) {
  int64_t hidden = model.hiddenSize, size = ffn.ffnSize;
  auto shape = [&](std::initializer_list<int64_t> tail) {
    SmallVector<int64_t> full;
    if (experts)
      full.push_back(*experts);
    full.append(tail.begin(), tail.end());
    return full;
  };
  FfnValues values;
  if (ffn.gated)
    values.gate =
        weight(ffn.gateKey, shape({size, hidden}), loc, {}, ffn.gateView);
  if (!ffn.gateBiasKey.empty())
    values.gateBias =
        weight(ffn.gateBiasKey, shape({size}), loc, {}, ffn.gateBiasView);
  values.up = weight(ffn.upKey, shape({size, hidden}), loc, {}, ffn.upView);
  if (ffn.biases)
    values.upBias =
        weight(ffn.upBiasKey, shape({size}), loc, {}, ffn.upBiasView);
  values.down =
      weight(ffn.downKey, shape({hidden, size}), loc, {}, ffn.downView);
  if (ffn.biases)
    values.downBias =
        weight(ffn.downBiasKey, shape({hidden}), loc, {}, ffn.downBiasView);
  return values;
}

Value ForwardBuilder::denseFfn(const FfnDesc &ffn, Value input, Location loc) {
  FfnValues w = ffnWeights(ffn, std::nullopt, loc);
  return DenseFfnOp::create(builder, loc, activationType, input, w.gate,
                            w.gateBias, w.up, w.upBias, w.down, w.downBias,
                            ffn.activation, FloatAttr(), FloatAttr());
}

FailureOr<Value> ForwardBuilder::routedExperts(const LayerDesc &layer,
                                               Value input, Location loc) {
  const RoutingDesc &r = layer.routing;
  Location routingLoc = layer.routingLoc ? Location(layer.routingLoc) : loc;
  RoutingAttr routing = RoutingAttr::getChecked(
      [&] { return emitError(routingLoc); }, context, r.scoring, r.topK,
      r.nGroup, r.topkGroup, r.groupScore, r.normalize,
      llvm::APFloat(r.normEpsilon), llvm::APFloat(r.routedScalingFactor),
      llvm::APFloat(r.capacityFactor), r.minCapacity, r.dropOrder,
      llvm::APFloat(r.normP), llvm::APFloat(r.jitterEps), r.weights);
  if (!routing)
    return failure();

  int64_t experts = layer.numExperts;
  // Routers are held in f32 whatever the activation dtype: it holds every
  // checkpoint's router exactly (bf16 DeepSeek checkpoints store it in f32,
  // DeepSpeed keeps wg in f32), and rounding it could flip near-tie routing.
  Value router = weight(layer.routerKey, {experts, model.hiddenSize}, loc,
                        Float32Type::get(context));
  Value correction;
  if (!layer.correctionBiasKey.empty())
    correction = weight(layer.correctionBiasKey, {experts}, loc,
                        Float32Type::get(context));
  Value routerBias;
  if (!layer.routerBiasKey.empty())
    routerBias =
        weight(layer.routerBiasKey, {experts}, loc, Float32Type::get(context));
  Value logits = RouterOp::create(builder, loc, input, router, routerBias);
  auto gate = GateOp::create(builder, loc, logits, correction, routing);
  auto bufferType = RankedTensorType::get(
      {experts, ShapedType::kDynamic, model.hiddenSize}, elementType);
  // The weights apply once: at the dispatch (input) or the combine (output).
  Value inputWeights = routing.weighsInput() ? gate.getWeights() : Value();
  Value outputWeights = routing.weighsInput() ? Value() : gate.getWeights();
  Value buffer =
      DispatchOp::create(builder, loc, bufferType, input, gate.getExpertIds(),
                         gate.getSlots(), gate.getCapacity(), inputWeights);
  FfnValues w = ffnWeights(layer.experts, experts, loc);
  FloatAttr alpha, limit;
  if (layer.experts.activation == Activation::swiglu_clamped) {
    alpha = builder.getF64FloatAttr(layer.experts.swigluAlpha);
    limit = builder.getF64FloatAttr(layer.experts.swigluLimit);
  }
  Value expertOut = ExpertsOp::create(
      builder, loc, bufferType, buffer, w.gate, w.gateBias, w.up, w.upBias,
      w.down, w.downBias, layer.experts.activation, alpha, limit);
  Value output = CombineOp::create(builder, loc, expertOut, gate.getExpertIds(),
                                   gate.getSlots(), outputWeights);
  if (!layer.shared)
    return output;

  Value shared = denseFfn(layer.shared->ffn, input, loc);
  if (layer.shared->scale != 1.0)
    shared = ScaleOp::create(builder, loc, shared,
                             builder.getF64FloatAttr(layer.shared->scale));
  Value sharedGate;
  if (!layer.shared->sigmoidGateKey.empty())
    sharedGate =
        weight(layer.shared->sigmoidGateKey, {1, model.hiddenSize}, loc);
  return SharedAddOp::create(builder, loc, activationType, output, shared,
                             sharedGate ? input : Value(), sharedGate)
      .getResult();
}

FailureOr<Value> ForwardBuilder::layerBody(const LayerDesc &layer,
                                           Value input) {
  Location loc =
      NameLoc::get(builder.getStringAttr(layer.name), Location(layer.loc));
  switch (layer.kind) {
  case LayerKind::dense:
    return denseFfn(layer.mlp, input, loc);
  case LayerKind::moe:
    return routedExperts(layer, input, loc);
  case LayerKind::residualMoe: {
    FailureOr<Value> moeOut = routedExperts(layer, input, loc);
    if (failed(moeOut))
      return failure();
    Value mlpOut = denseFfn(layer.mlp, input, loc);
    Value coefWeight = weight(layer.coefWeightKey, {2, model.hiddenSize}, loc);
    Value coefBias = weight(layer.coefBiasKey, {2}, loc);
    return ResidualMixOp::create(builder, loc, activationType, *moeOut, mlpOut,
                                 input, coefWeight, coefBias,
                                 DenseF64ArrayAttr())
        .getResult();
  }
  }
  return failure();
}

Value ForwardBuilder::norm(StringRef name, Value input, Location loc) {
  const DecoderDesc &d = *model.decoder;
  Value w = weight((name + ".weight").str(), {model.hiddenSize}, loc);
  FloatAttr epsilon = builder.getF64FloatAttr(d.normEpsilon);
  if (d.norm == DecoderDesc::Norm::rms)
    return RmsNormOp::create(builder, loc, input, w, epsilon);
  Value b = d.normBias ? weight((name + ".bias").str(), {model.hiddenSize}, loc)
                       : Value();
  return LayerNormOp::create(builder, loc, input, w, b, epsilon);
}

FailureOr<Value> ForwardBuilder::residualBlock(
    int64_t index, Location loc, Value input, StringRef normName,
    llvm::function_ref<FailureOr<Value>(Value)> blockBody) {
  builder.setInsertionPointToEnd(body);
  auto layerOp = LayerOp::create(builder, loc, activationType, input, index);
  Block *layerBlock = builder.createBlock(&layerOp.getBody());
  Value h = layerBlock->addArgument(activationType, loc);
  builder.setInsertionPointToEnd(layerBlock);
  if (!normName.empty())
    h = norm(normName, h, loc);
  FailureOr<Value> output = blockBody(h);
  if (failed(output))
    return failure();
  YieldOp::create(builder, loc, *output);
  return layerOp.getResult();
}

FailureOr<Value> ForwardBuilder::buildStack(Value x) {
  Value current = x;
  for (const LayerDesc &layer : model.layers) {
    Location loc =
        NameLoc::get(builder.getStringAttr(layer.name), Location(layer.loc));
    FailureOr<Value> next =
        residualBlock(layer.index, loc, current, "",
                      [&](Value h) { return layerBody(layer, h); });
    if (failed(next))
      return failure();
    current = *next;
  }
  return current;
}

RopeAttr ForwardBuilder::ropeAttr(const RopeDesc &r) {
  // longrope's lists; absent (null) for the other types.
  auto factorsAttr = [&](ArrayRef<double> factors) {
    return factors.empty() ? DenseF64ArrayAttr()
                           : DenseF64ArrayAttr::get(context, factors);
  };
  return RopeAttr::get(context, r.type, llvm::APFloat(r.theta),
                       llvm::APFloat(r.factor), llvm::APFloat(r.lowFreqFactor),
                       llvm::APFloat(r.highFreqFactor), r.originalMaxPosition,
                       llvm::APFloat(r.betaFast), llvm::APFloat(r.betaSlow),
                       llvm::APFloat(r.attentionFactor), r.truncate,
                       factorsAttr(r.shortFactor), factorsAttr(r.longFactor),
                       llvm::APFloat(r.shortMscale),
                       llvm::APFloat(r.longMscale), r.rotaryDim, r.interleaved);
}

Value ForwardBuilder::latentAttention(StringRef base, Value input,
                                      Value positions, Value sequences,
                                      Value cache, Location loc) {
  const AttentionDesc &a = model.decoder->attention;
  const LatentAttentionDesc &m = *a.latent;
  int64_t h = model.hiddenSize, heads = a.heads;
  auto key = [&](StringRef name) { return (base + name).str(); };
  Value qA, qANorm, q;
  if (m.qLoraRank > 0) {
    qA = weight(key("q_a_proj.weight"), {m.qLoraRank, h}, loc);
    qANorm = weight(key("q_a_layernorm.weight"), {m.qLoraRank}, loc);
    q = weight(key("q_b_proj.weight"),
               {heads * (m.nopeDim + m.ropeDim), m.qLoraRank}, loc);
  } else {
    q = weight(key("q_proj.weight"), {heads * (m.nopeDim + m.ropeDim), h}, loc);
  }
  Value kvA = weight(key("kv_a_proj_with_mqa.weight"),
                     {m.kvLoraRank + m.ropeDim, h}, loc);
  Value kvANorm = weight(key("kv_a_layernorm.weight"), {m.kvLoraRank}, loc);
  Value kvB = weight(key("kv_b_proj.weight"),
                     {heads * (m.nopeDim + m.vDim), m.kvLoraRank}, loc);
  Value o = weight(key("o_proj.weight"), {h, heads * m.vDim}, loc);
  return LatentAttentionOp::create(
      builder, loc, activationType, input, positions, sequences, cache, qA,
      qANorm, q, kvA, kvANorm, kvB, o, heads, m.nopeDim, m.vDim,
      builder.getF64FloatAttr(m.scale),
      builder.getF64FloatAttr(model.decoder->normEpsilon), ropeAttr(a.rope));
}

Value ForwardBuilder::attention(int64_t layer, Value input, Value positions,
                                Value sequences, Value cache, Location loc) {
  const AttentionDesc &a = model.decoder->attention;
  std::string base =
      model.decoder->layerPrefix + std::to_string(layer) + "." + a.name + ".";
  if (a.latent)
    return latentAttention(base, input, positions, sequences, cache, loc);
  int64_t h = model.hiddenSize, q = a.heads * a.headDim,
          kv = a.kvHeads * a.headDim;
  RopeAttr rope = a.rotary ? ropeAttr(a.rope) : RopeAttr();
  FloatAttr epsilon = builder.getF64FloatAttr(model.decoder->normEpsilon);
  FloatAttr scale =
      a.softmaxScale ? builder.getF64FloatAttr(*a.softmaxScale) : FloatAttr();
  if (a.fusedQkv) {
    // Megatron's query_key_value rows are [heads, 3, D]: q, k and v are
    // each loaded as their part of every head (moe.weight_rows).
    auto part = [&](StringRef key, ArrayRef<int64_t> shape, int64_t index) {
      Value v = weight(key, shape, loc);
      argAttrs.back() = builder.getDictionaryAttr(
          {builder.getNamedAttr(MoeDialect::kWeightAttrName,
                                builder.getStringAttr(key)),
           builder.getNamedAttr(
               MoeDialect::kWeightRowsAttrName,
               builder.getDenseI64ArrayAttr({a.heads, 3, index}))});
      return v;
    };
    std::string qkv = base + "query_key_value.";
    Value wq = part(qkv + "weight", {q, h}, 0);
    Value wk = part(qkv + "weight", {kv, h}, 1);
    Value wv = part(qkv + "weight", {kv, h}, 2);
    Value bq = part(qkv + "bias", {q}, 0);
    Value bk = part(qkv + "bias", {kv}, 1);
    Value bv = part(qkv + "bias", {kv}, 2);
    Value wo = weight(base + "dense.weight", {h, q}, loc);
    Value attended = AttentionOp::create(
        builder, loc, activationType, input, positions, sequences, cache, wq,
        wk, wv, wo, bq, bk, bv, Value(), Value(), Value(), a.heads, a.kvHeads,
        a.headDim, rope, epsilon, /*sliding_window=*/0, FloatAttr(), scale,
        UnitAttr());
    // Added after the op: tensor-parallel attention sums its partial
    // outputs first (moe-assign-parallelism puts the all-reduce between).
    Value bo = weight(base + "dense.bias", {h}, loc);
    return BiasAddOp::create(builder, loc, attended, bo);
  }
  FloatAttr clip =
      a.clipQkv > 0.0 ? builder.getF64FloatAttr(a.clipQkv) : FloatAttr();
  if (a.stackedQkv) {
    // DBRX's Wqkv [q + 2 kv, h]: each part a view of its row range, so a
    // tensor-parallel rank reads only its heads' rows.
    std::string key = base + "Wqkv.weight";
    auto rows = [&](int64_t first, int64_t count) {
      FusedViewDesc view;
      view.shape = {q + 2 * kv, h};
      view.offset = first * h;
      view.strides = {h, 1};
      return weight(key, {count, h}, loc, {}, view);
    };
    Value wq = rows(0, q), wk = rows(q, kv), wv = rows(q + kv, kv);
    Value wo = weight(base + "out_proj.weight", {h, q}, loc);
    return AttentionOp::create(builder, loc, activationType, input, positions,
                               sequences, cache, wq, wk, wv, wo, Value(),
                               Value(), Value(), Value(), Value(), Value(),
                               a.heads, a.kvHeads, a.headDim, rope, epsilon,
                               /*sliding_window=*/0, clip, scale, UnitAttr());
  }
  Value wq = weight(base + "q_proj.weight", {q, h}, loc);
  Value wk = weight(base + "k_proj.weight", {kv, h}, loc);
  Value wv = weight(base + "v_proj.weight", {kv, h}, loc);
  Value wo = weight(base + "o_proj.weight", {h, q}, loc);
  Value bq, bk, bv, qn, kn;
  if (a.qkvBias) {
    bq = weight(base + "q_proj.bias", {q}, loc);
    bk = weight(base + "k_proj.bias", {kv}, loc);
    bv = weight(base + "v_proj.bias", {kv}, loc);
  }
  if (a.qkNorm != AttentionDesc::QkNorm::none) {
    bool perHead = a.qkNorm == AttentionDesc::QkNorm::perHead;
    qn = weight(base + a.qNormName + ".weight", {perHead ? a.headDim : q}, loc);
    kn =
        weight(base + a.kNormName + ".weight", {perHead ? a.headDim : kv}, loc);
  }
  Value sinks = a.sinks ? weight(base + "sinks", {a.heads}, loc) : Value();
  int64_t window = a.slidingWindows.empty()
                       ? 0
                       : a.slidingWindows[static_cast<size_t>(layer)];
  Value attended = AttentionOp::create(
      builder, loc, activationType, input, positions, sequences, cache, wq, wk,
      wv, wo, bq, bk, bv, qn, kn, sinks, a.heads, a.kvHeads, a.headDim, rope,
      epsilon, window, clip, scale,
      a.qkNormAfterRope ? builder.getUnitAttr() : UnitAttr());
  if (!a.oBias)
    return attended;
  // Added after the op: tensor-parallel attention sums its partial outputs
  // first (moe-assign-parallelism puts the all-reduce between).
  return BiasAddOp::create(builder, loc, attended,
                           weight(base + "o_proj.bias", {h}, loc));
}

FailureOr<std::pair<Value, Value>>
ForwardBuilder::buildDecoder(Value ids, Value sequences, Value positions,
                             Value sampleRows, ArrayRef<Value> caches) {
  const DecoderDesc &d = *model.decoder;
  Location loc = model.loc ? Location(model.loc) : UnknownLoc::get(context);
  Location attnLoc = d.attention.loc ? Location(d.attention.loc) : loc;
  builder.setInsertionPointToEnd(body);
  Value table = weight(d.embeddingKey, {d.vocab, model.hiddenSize}, loc);
  Value current = EmbeddingOp::create(builder, loc, activationType, ids, table);
  if (d.embeddingScale != 1.0)
    current = ScaleOp::create(builder, loc, current,
                              builder.getF64FloatAttr(d.embeddingScale));
  if (!d.positionEmbeddingKey.empty()) {
    Location positionsLoc = NameLoc::get(
        builder.getStringAttr(d.positionEmbeddingKey),
        d.positionsLoc ? Location(d.positionsLoc) : loc);
    Value positionTable = weight(d.positionEmbeddingKey,
                                 {d.maxPositions, model.hiddenSize}, loc);
    current = PositionEmbeddingOp::create(builder, positionsLoc, current,
                                          positions, positionTable);
  }
  for (auto [layerRef, cacheRef] : llvm::zip(model.layers, caches)) {
    // Named copies: the lambdas below capture them (clang 14, which builds
    // the sanitized tree, cannot capture structured bindings).
    const LayerDesc &layer = layerRef;
    Value cache = cacheRef;
    std::string base = d.layerPrefix + std::to_string(layer.index) + ".";
    Location selfAttn =
        NameLoc::get(builder.getStringAttr(base + d.attention.name), attnLoc);
    FailureOr<Value> attended = residualBlock(
        layer.index, selfAttn, current, base + d.inputNormName,
        [&](Value h) -> FailureOr<Value> {
          Value out =
              attention(layer.index, h, positions, sequences, cache, selfAttn);
          if (d.attention.outputScale == 1.0)
            return out;
          return ScaleOp::create(
                     builder, selfAttn, out,
                     builder.getF64FloatAttr(d.attention.outputScale))
              .getResult();
        });
    if (failed(attended))
      return failure();
    Location ffnLoc =
        NameLoc::get(builder.getStringAttr(layer.name), Location(layer.loc));
    FailureOr<Value> next = residualBlock(
        layer.index, ffnLoc, *attended, base + d.postAttentionNormName,
        [&](Value h) { return layerBody(layer, h); });
    if (failed(next))
      return failure();
    current = *next;
  }
  builder.setInsertionPointToEnd(body);
  // Only the rows that sample go through the final norm and the LM head.
  Value sampled =
      GatherRowsOp::create(builder, loc, activationType, current, sampleRows);
  StringRef finalNorm = d.finalNormKey;
  if (!finalNorm.consume_back(".weight")) {
    emitError(loc) << "final norm key '" << d.finalNormKey
                   << "' does not end with '.weight'";
    return failure();
  }
  Value normed = norm(finalNorm, sampled, loc);
  Value head = d.lmHeadKey == d.embeddingKey
                   ? table
                   : weight(d.lmHeadKey, {d.vocab, model.hiddenSize}, loc);
  auto logitsType = RankedTensorType::get({ShapedType::kDynamic, d.vocab},
                                          Float32Type::get(context));
  Value logits = LmHeadOp::create(builder, loc, logitsType, normed, head);
  if (!d.lmHeadBiasKey.empty())
    logits = BiasAddOp::create(builder, loc, logits,
                               weight(d.lmHeadBiasKey, {d.vocab}, loc));
  if (d.logitsScale != 1.0)
    logits = ScaleOp::create(builder, loc, logits,
                             builder.getF64FloatAttr(d.logitsScale));
  Value next = ArgmaxOp::create(builder, loc, ids.getType(), logits);
  return std::make_pair(logits, next);
}

FailureOr<func::FuncOp> ForwardBuilder::build() {
  Location funcLoc = model.loc ? Location(model.loc) : UnknownLoc::get(context);
  // Detached until the signature is known; deleted on failure.
  std::unique_ptr<Block> entry = std::make_unique<Block>();
  body = entry.get();
  SmallVector<Value> results;
  if (!model.decoder) {
    Value x = body->addArgument(activationType, funcLoc);
    argAttrs.push_back(builder.getDictionaryAttr({}));
    FailureOr<Value> y = buildStack(x);
    if (failed(y))
      return failure();
    results.push_back(*y);
  } else {
    // Token ids, their sequences and positions, the rows that sample, then
    // one cache per layer.
    auto indexType =
        RankedTensorType::get({ShapedType::kDynamic}, builder.getI32Type());
    SmallVector<Value> inputs, caches;
    for (int i = 0; i < 4; ++i) {
      inputs.push_back(body->addArgument(indexType, funcLoc));
      argAttrs.push_back(builder.getDictionaryAttr({}));
    }
    const AttentionDesc &a = model.decoder->attention;
    Type cacheType =
        a.latent ? Type(LatentCacheType::get(context, a.latent->kvLoraRank,
                                             a.latent->ropeDim, elementType))
                 : Type(KvCacheType::get(context, a.kvHeads, a.headDim,
                                         elementType));
    for (size_t i = 0; i < model.layers.size(); ++i) {
      caches.push_back(body->addArgument(cacheType, funcLoc));
      argAttrs.push_back(builder.getDictionaryAttr({}));
    }
    FailureOr<std::pair<Value, Value>> out =
        buildDecoder(inputs[0], inputs[1], inputs[2], inputs[3], caches);
    if (failed(out))
      return failure();
    results = {out->first, out->second};
  }
  builder.setInsertionPointToEnd(body);
  func::ReturnOp::create(builder, funcLoc, results);

  auto type = builder.getFunctionType(body->getArgumentTypes(),
                                      ValueRange(results).getTypes());
  auto func = func::FuncOp::create(funcLoc, "forward", type);
  func.getBody().push_back(entry.release());
  func.setAllArgAttrs(argAttrs);
  return func;
}

auto ::moe::import::buildModule(const ModelDesc &model, MLIRContext *context)
    -> OwningOpRef<ModuleOp> {
  context->loadDialect<MoeDialect, func::FuncDialect>();
  Location loc = model.loc ? Location(model.loc) : UnknownLoc::get(context);
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  OpBuilder builder(context);
  (*module)->setAttr(MoeDialect::kModelTypeAttrName,
                     builder.getStringAttr(model.modelType));
  if (model.weightQuant)
    (*module)->setAttr(
        MoeDialect::kWeightQuantAttrName,
        builder.getDictionaryAttr(
            {builder.getNamedAttr("format",
                                  builder.getStringAttr(model.weightQuant->mxfp4
                                                            ? "mxfp4"
                                                            : "fp8_e4m3")),
             builder.getNamedAttr("block",
                                  builder.getDenseI64ArrayAttr(
                                      {model.weightQuant->blockRows,
                                       model.weightQuant->blockCols}))}));
  FailureOr<func::FuncOp> forward = ForwardBuilder(model, context).build();
  if (failed(forward))
    return nullptr;
  module->push_back(*forward);
  // The readers check what the config can get wrong; this catches what they
  // missed, at the location of the layer that went wrong.
  if (failed(verify(*module)))
    return nullptr;
  return module;
}
