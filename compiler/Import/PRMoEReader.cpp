//===- PRMoEReader.cpp - DeepSpeed PR-MoE description to ModelDesc --------===//
//
// The schema (docs/Importers.md) mirrors Megatron-DeepSpeed's GPT MoE flags:
// --num-layers, --hidden-size, --ffn-hidden-size, --num-experts (one per MoE
// layer, or one for all), --expert-interval, --mlp-type, --topk,
// --moe-eval-capacity-factor, --moe-min-capacity,
// --disable-moe-token-dropping. Weight keys follow its checkpoints.
//
//===----------------------------------------------------------------------===//

#include "compiler/Import/Readers.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSwitch.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::import;
using llvm::StringLiteral;

/// Keys that do not affect the model at inference: training only (DeepSpeed
/// passes them to the gate only when training) and Megatron's training
/// sequence length.
static constexpr StringLiteral kIgnored[] = {
    "seq_length",        "attention_dropout",     "hidden_dropout",
    "noisy_gate_policy", "train_capacity_factor", "moe_loss_coeff"};

/// The GPT around the FFN stack; ignored by the FFN-stack import and read by
/// the whole-model one (readGptDecoder).
static constexpr StringLiteral kDecoderKeys[] = {
    "num_attention_heads",     "vocab_size",
    "max_position_embeddings", "layernorm_epsilon",
    "position_embedding_type", "rope_theta",
    "tie_word_embeddings"};

/// The Megatron-DeepSpeed GPT's decoder: pre-LayerNorm blocks with a fused
/// per-head QKV and biased projections, learned absolute or rotary
/// positions, a final LayerNorm and an output layer tied to the embedding
/// unless untied.
static DecoderDesc readGptDecoder(ConfigFile &c, int64_t hidden,
                                  const std::string &prefix) {
  DecoderDesc d;
  d.norm = DecoderDesc::Norm::layer;
  d.layerPrefix = prefix + ".";
  d.vocab = c.requirePositive("vocab_size", kMaxWidth);
  d.normEpsilon = c.getNumber("layernorm_epsilon", 1e-5);
  if (!(std::isfinite(d.normEpsilon) && d.normEpsilon >= 0.0))
    c.error("layernorm_epsilon")
        << "'layernorm_epsilon' must be finite and >= 0, got " << d.normEpsilon;
  AttentionDesc &a = d.attention;
  a.loc = c.loc("num_attention_heads");
  a.name = "self_attention";
  a.fusedQkv = true;
  a.qkvBias = true;
  a.heads = a.kvHeads = c.requirePositive("num_attention_heads", kMaxWidth);
  if (a.heads > 0 && hidden % a.heads != 0)
    c.error("num_attention_heads")
        << "hidden_size = " << hidden << " does not split into " << a.heads
        << " heads";
  else if (a.heads > 0)
    a.headDim = hidden / a.heads;

  std::string positions =
      c.getString("position_embedding_type", "learned_absolute");
  if (positions == "learned_absolute") {
    a.rotary = false;
    d.maxPositions = c.requirePositive("max_position_embeddings", kMaxWidth);
    d.positionsLoc = c.loc("max_position_embeddings");
    d.positionEmbeddingKey =
        "language_model.embedding.position_embeddings.weight";
    if (c.has("rope_theta"))
      c.error("rope_theta") << "'rope_theta' needs position_embedding_type "
                               "'rope', not 'learned_absolute'";
  } else if (positions == "rope") {
    // Megatron's RotaryEmbedding over the whole head: rotate_half pairs.
    a.rope.theta = c.getNumber("rope_theta", 10000.0);
    if (!(std::isfinite(a.rope.theta) && a.rope.theta > 0.0))
      c.error("rope_theta")
          << "'rope_theta' must be finite and > 0, got " << a.rope.theta;
    if (a.heads > 0 && hidden % a.heads == 0 && a.headDim % 2 != 0)
      c.error("num_attention_heads")
          << "head dimension " << a.headDim
          << " is odd: rotary embedding pairs dimensions";
    // Only a bound on positions here (nothing is stored per position).
    c.getPositive("max_position_embeddings", 1, kMaxWidth);
  } else {
    c.error("position_embedding_type")
        << "unsupported position_embedding_type '" << positions
        << "': expected 'learned_absolute' or 'rope'";
  }
  d.embeddingKey = "language_model.embedding.word_embeddings.weight";
  d.finalNormKey = "language_model.encoder.final_layernorm.weight";
  d.lmHeadKey = c.getBool("tie_word_embeddings", true)
                    ? d.embeddingKey
                    : "language_model.output_layer.weight";
  return d;
}

/// fc1 -> act -> fc2 with biases, Megatron names, under `prefix`.
static FfnDesc megatronMlp(int64_t size, Activation act,
                           const std::string &prefix) {
  FfnDesc ffn;
  ffn.ffnSize = size;
  ffn.activation = act;
  ffn.gated = false;
  ffn.biases = true;
  ffn.upKey = prefix + "dense_h_to_4h.weight";
  ffn.upBiasKey = prefix + "dense_h_to_4h.bias";
  ffn.downKey = prefix + "dense_4h_to_h.weight";
  ffn.downBiasKey = prefix + "dense_4h_to_h.bias";
  return ffn;
}

auto ::moe::import::readPRMoEConfig(ConfigFile &c, bool wholeModel)
    -> std::optional<ModelDesc> {
  std::string modelType = c.requireString("model_type");
  if (c.failed())
    return std::nullopt;
  if (modelType != "prmoe") {
    c.error("model_type") << "unsupported model_type '" << modelType
                          << "' for --import-prmoe: expected 'prmoe'";
    return std::nullopt;
  }

  ModelDesc model;
  model.modelType = modelType;
  model.loc = c.fileLoc();
  model.dtype = readDType(c, DType::f32);
  int64_t numLayers = c.requirePositive("num_layers", kMaxLayers);
  model.hiddenSize = c.requirePositive("hidden_size", kMaxWidth);
  int64_t ffnSize = c.requirePositive("ffn_hidden_size", kMaxWidth);
  std::string actName = c.getString("activation", "gelu");
  std::optional<Activation> act = symbolizeActivation(actName);
  // swiglu_clamped (gpt-oss) is gated with parameters: not a PR-MoE fc1/fc2.
  if (!act || *act == Activation::swiglu_clamped)
    c.error("activation") << "unsupported activation '" << actName
                          << "': expected 'gelu', 'gelu_tanh', 'relu' or "
                             "'silu'";
  int64_t interval = c.getPositive("expert_interval", 2);
  std::string mlpType = c.getString("mlp_type", "standard");
  if (mlpType != "standard" && mlpType != "residual")
    c.error("mlp_type") << "unsupported mlp_type '" << mlpType
                        << "': expected 'standard' or 'residual'";
  std::string prefix =
      c.getString("weight_prefix", "language_model.encoder.layers");

  // Routing: DeepSpeed top1gating / top2gating / topkgating at inference.
  RoutingDesc routing;
  routing.scoring = ScoringFunc::softmax;
  routing.topK = c.getPositive("top_k", 1, kMaxExperts);
  bool dropTokens = c.getBool("drop_tokens", true);
  double capacityFactor = c.getNumber("capacity_factor", 1.0);
  int64_t minCapacity = c.getNonNegative("min_capacity", 4);
  // DeepSpeed: first choices before second choices for k <= 2; topkgating's
  // default drop_policy "probs" beyond.
  std::string orderName =
      c.getString("drop_order", routing.topK > 2 ? "probs" : "choice_major");
  std::optional<DropOrder> order = symbolizeDropOrder(orderName);
  if (!order)
    c.error("drop_order") << "unsupported drop_order '" << orderName
                          << "': expected 'choice_major', 'token_major' or "
                             "'probs'";
  if (c.getBool("use_rts", false))
    c.error("use_rts") << "use_rts = true (random token selection) drops "
                          "tokens at random: not supported, set it to false";
  if (dropTokens) {
    if (!(std::isfinite(capacityFactor) && capacityFactor > 0.0))
      c.error("capacity_factor")
          << "'capacity_factor' must be positive when drop_tokens is true "
             "(set drop_tokens to false for dropless routing), got "
          << capacityFactor;
    routing.capacityFactor = capacityFactor;
    routing.minCapacity = minCapacity;
    routing.dropOrder = order.value_or(DropOrder::choice_major);
    // top-1 keeps the raw probability; top-k divides by the kept choices.
    routing.normalize =
        routing.topK == 1 ? Normalization::none : Normalization::kept;
  } else {
    routing.normalize =
        routing.topK == 1 ? Normalization::none : Normalization::selected;
  }

  // num_experts: one integer for every MoE layer, or a list (one element
  // each, or a single element for all), as Megatron-DeepSpeed's
  // _get_num_experts_per_layer.
  int64_t moeLayers = numLayers / interval;
  std::vector<int64_t> experts;
  std::vector<FileLineColLoc> expertLocs;
  if (!c.has("num_experts")) {
    c.error(c.fileLoc()) << "missing required key 'num_experts'";
    c.get("num_experts");
  } else if (c.get("num_experts")->getAsArray()) {
    experts = c.getIntList("num_experts");
    for (size_t j = 0; j < experts.size(); ++j)
      expertLocs.push_back(c.elementLoc("num_experts", j));
    if (experts.size() == 1) {
      experts.assign(moeLayers, experts.front());
      expertLocs.assign(moeLayers, expertLocs.front());
    } else if (static_cast<int64_t>(experts.size()) != moeLayers) {
      c.error("num_experts")
          << "'num_experts' lists " << experts.size() << " expert counts but "
          << "num_layers = " << numLayers
          << " with expert_interval = " << interval << " has " << moeLayers
          << " MoE layers";
    }
  } else {
    experts.assign(moeLayers, c.getInt("num_experts", 1));
    expertLocs.assign(moeLayers, c.loc("num_experts"));
  }
  for (auto [j, count] : llvm::enumerate(experts)) {
    if (count < 1)
      c.error(expertLocs[j])
          << "MoE layer " << (j + 1) * interval - 1 << " has " << count
          << " experts; expected at least 1";
    else
      c.checkAtMost(expertLocs[j], "'num_experts'", count, kMaxExperts);
  }

  if (wholeModel)
    model.decoder = readGptDecoder(c, model.hiddenSize, prefix);
  else
    c.ignore(llvm::to_vector(llvm::map_range(
        kDecoderKeys, [](StringLiteral s) { return StringRef(s); })));
  c.ignore(llvm::to_vector(
      llvm::map_range(kIgnored, [](StringLiteral s) { return StringRef(s); })));
  c.checkUnknownKeys(modelType);
  if (c.failed())
    return std::nullopt;

  for (int64_t i = 0; i < numLayers; ++i) {
    LayerDesc layer;
    layer.index = i;
    layer.name = prefix + "." + std::to_string(i) + ".mlp";
    std::string base = layer.name + ".";
    bool moeSlot = (i + 1) % interval == 0;
    int64_t count = moeSlot ? experts[(i + 1) / interval - 1] : 1;
    // Megatron-DeepSpeed builds a plain ParallelMLP for one expert.
    if (count == 1) {
      layer.kind = LayerKind::dense;
      layer.loc = moeSlot ? expertLocs[(i + 1) / interval - 1]
                          : c.loc("expert_interval");
      layer.mlp = megatronMlp(ffnSize, *act, base);
      model.layers.push_back(std::move(layer));
      continue;
    }
    FileLineColLoc where = expertLocs[(i + 1) / interval - 1];
    if (routing.topK > count) {
      c.error(c.loc("top_k"))
          << "top_k = " << routing.topK << " exceeds the " << count
          << " experts of layer " << i << " (" << layer.name << ")";
      continue;
    }
    layer.loc = where;
    layer.kind =
        mlpType == "residual" ? LayerKind::residualMoe : LayerKind::moe;
    layer.numExperts = count;
    layer.routing = routing;
    layer.routingLoc = c.loc("top_k");
    layer.routerKey = base + "deepspeed_moe.gate.wg.weight";
    layer.experts = megatronMlp(
        ffnSize, *act, base + "deepspeed_moe.experts.deepspeed_experts.{e}.");
    if (layer.kind == LayerKind::residualMoe) {
      layer.mlp = megatronMlp(ffnSize, *act, base + "mlp.");
      layer.coefWeightKey = base + "coefficient.weight";
      layer.coefBiasKey = base + "coefficient.bias";
    }
    model.layers.push_back(std::move(layer));
  }
  if (c.failed())
    return std::nullopt;
  return model;
}
