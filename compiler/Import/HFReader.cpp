//===- HFReader.cpp - Hugging Face config.json to ModelDesc ---------------===//
//
// Each family reads its keys into an HFStack (sizes, which layers are MoE and
// why, the routing policy, shared experts, the key scheme); one function then
// lays the stack out as a ModelDesc. The semantics each family encodes are
// those of its transformers (or trust_remote_code) modelling file; see
// docs/Importers.md for the table.
//
//===----------------------------------------------------------------------===//

#include "compiler/Import/Readers.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"

#include <cmath>
#include <cstdio>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::import;
using llvm::StringLiteral;

//===----------------------------------------------------------------------===//
// What every family shares
//===----------------------------------------------------------------------===//

/// Keys of any transformers config that do not affect the FFN stack:
/// attention, positions, embeddings, norms, token ids, bookkeeping, and the
/// training-only router losses.
static constexpr StringLiteral kIgnoredEverywhere[] = {
    "_name_or_path",
    "architectures",
    "transformers_version",
    "auto_map",
    "use_cache",
    "return_dict",
    "output_attentions",
    "output_hidden_states",
    "torchscript",
    "_attn_implementation",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "tie_word_embeddings",
    "vocab_size",
    "max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "attention_dropout",
    "attention_bias",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "output_router_logits",
    "router_aux_loss_coef"};

namespace {

/// How a family names an MoE layer's weights under `model.layers.{i}.`.
struct KeyScheme {
  /// The layer's MoE module (`mlp`, or Mixtral's `block_sparse_moe`).
  StringRef moeModule;
  /// Per-expert projections: gate (act input), up, down.
  StringRef expertGate, expertUp, expertDown;
  /// The shared-experts module under the MoE module; empty if none.
  StringRef sharedModule;
  /// The router under the MoE module (Hunyuan: `gate.wg`).
  StringRef router = "gate";
  /// The MLP of a dense layer (Jamba: `feed_forward`).
  StringRef denseModule = "mlp";
  /// The selection bias under the MoE module (ERNIE: `moe_statics.…`).
  StringRef correctionBias = "gate.e_score_correction_bias";
  /// How the experts are stored when not one tensor per expert.
  enum class Fused {
    none,
    /// Granite: every expert's gate and up rows in one `[E, 2F, H]`
    /// `expertGate` tensor and the down projections in one `[E, H, F]`
    /// `expertDown`, directly under the MoE module; the shared MLP
    /// (`sharedModule`, under the decoder layer) is `[2F, H]` + `[H, F]`.
    graniteGateUpRows,
    /// DBRX: `expertGate`, `expertUp` and `expertDown` each `[E·F, H]`
    /// (down transposed: expert e's `[H, F]` is rows [eF, eF + F) read by
    /// column) under `<moeModule>.experts.mlp`.
    dbrxStacked,
    /// gpt-oss: `experts.gate_up_proj` `[E, H, 2F]` (x @ W layout) with gate
    /// at even and up at odd columns, `gate_up_proj_bias` `[E, 2F]` likewise,
    /// `down_proj` `[E, F, H]` and `down_proj_bias` `[E, H]`; the router has
    /// a bias.
    gptOssInterleaved,
    /// Llama 4: `experts.gate_up_proj` `[E, H, 2F]` (x @ W layout) with gate
    /// the first F columns and up the last F, `experts.down_proj` `[E, F, H]`
    /// (no biases); the shared MLP is `shared_expert.{gate,up,down}_proj`.
    llama4GateUpHalves,
  } fused = Fused::none;
  /// The decoder layers' common prefix (DBRX: `transformer.blocks.`).
  StringRef layerPrefix = "model.layers.";
};

constexpr KeyScheme kMixtralKeys = {"block_sparse_moe", "w1", "w3", "w2", ""};
constexpr KeyScheme kQwen2MoeKeys = {"mlp", "gate_proj", "up_proj", "down_proj",
                                     "shared_expert"};
constexpr KeyScheme kPlainMoeKeys = {"mlp", "gate_proj", "up_proj", "down_proj",
                                     ""};
constexpr KeyScheme kDeepSeekKeys = {"mlp", "gate_proj", "up_proj", "down_proj",
                                     "shared_experts"};
constexpr KeyScheme kJambaKeys = {"feed_forward", "gate_proj", "up_proj",
                                  "down_proj",    "",          "router",
                                  "feed_forward"};
constexpr KeyScheme kHunyuanKeys = {"mlp", "gate_proj", "up_proj", "down_proj",
                                    "shared_mlp", "gate.wg"};
// transformers 5 saves ERNIE's bias `[1, E]` under `mlp.moe_statics`.
constexpr KeyScheme kErnieKeys = {"mlp",
                                  "gate_proj",
                                  "up_proj",
                                  "down_proj",
                                  "shared_experts",
                                  "gate",
                                  "mlp",
                                  "moe_statics.e_score_correction_bias"};

// GraniteMoeMoE: router.layer, input_linear [E, 2F, H] (gate rows, then up)
// and output_linear [E, H, F]; GraniteMoeSharedMLP: shared_mlp.input_linear
// [2F, H] and output_linear [H, F].
constexpr KeyScheme kGraniteKeys = {"block_sparse_moe",
                                    "input_linear",
                                    "",
                                    "output_linear",
                                    "shared_mlp",
                                    "router.layer",
                                    "mlp",
                                    "",
                                    KeyScheme::Fused::graniteGateUpRows};
// DbrxFFN: router.layer, experts.mlp.{w1, v1, w2} each [E·F, H].
constexpr KeyScheme kDbrxKeys = {"ffn",
                                 "w1",
                                 "v1",
                                 "w2",
                                 "",
                                 "router.layer",
                                 "ffn",
                                 "",
                                 KeyScheme::Fused::dbrxStacked,
                                 "transformer.blocks."};

// GptOssMLP: router (weight and bias), experts.{gate_up_proj, down_proj}
// with their biases (no `.weight` suffix: the keys are the tensors).
constexpr KeyScheme kGptOssKeys = {"mlp",
                                   "gate_up_proj",
                                   "",
                                   "down_proj",
                                   "",
                                   "router",
                                   "mlp",
                                   "",
                                   KeyScheme::Fused::gptOssInterleaved};

// Llama4TextMoe: router, experts.{gate_up_proj, down_proj}, shared_expert;
// dense layers are Llama4TextMLP under the same `feed_forward`.
constexpr KeyScheme kLlama4Keys = {"feed_forward",
                                   "gate_up_proj",
                                   "",
                                   "down_proj",
                                   "shared_expert",
                                   "router",
                                   "feed_forward",
                                   "",
                                   KeyScheme::Fused::llama4GateUpHalves};

/// Whether decoder layer i is an MoE layer, and the key that decided it (the
/// location its ops carry).
struct LayerChoice {
  bool moe;
  LocationAttr why;
};

/// A family's FFN stack as read from its config.
struct HFStack {
  KeyScheme keys;
  int64_t hidden = 1;
  int64_t numLayers = 1;
  /// Width of dense layers (unused by families without them).
  int64_t denseFfn = 1;
  int64_t expertFfn = 1;
  int64_t experts = 1;
  /// The config key holding `experts`, for diagnostics.
  StringLiteral expertsKey = "";
  /// The config key holding `routing.topK`, for diagnostics.
  StringLiteral topKKey = "num_experts_per_tok";
  /// How diagnostics name the two when they nest (DBRX's ffn_config);
  /// empty: the keys themselves.
  StringLiteral topKName = "", expertsName = "";
  RoutingDesc routing;
  /// DeepSeek-V3 `noaux_tc`: `mlp.gate.e_score_correction_bias`.
  bool correctionBias = false;
  /// Width of the shared-experts FFN; 0 when there are none.
  int64_t sharedFfn = 0;
  /// Qwen-MoE: `sigmoid(x · shared_expert_gate) * shared(x)`.
  bool sharedSigmoidGate = false;
  /// What multiplies the shared output (granitemoeshared).
  double sharedScale = 1.0;
  /// gpt-oss's clamped SwiGLU.
  double swigluAlpha = 0.0, swigluLimit = 0.0;
  std::vector<LayerChoice> layers;
};

/// A family: its model_type, its reader, and its own irrelevant keys.
struct Family {
  StringLiteral modelType;
  void (*read)(ConfigFile &, HFStack &);
  ArrayRef<StringLiteral> ignored;
  /// The nested object holding the text model's keys (Llama 4's multimodal
  /// config: `text_config`), which the reader and `ignored` then apply to;
  /// empty: the top level.
  StringLiteral textConfig = "";
  /// The model_type that nested object must have.
  StringLiteral textModelType = "";
  /// Top-level keys of a nested config that do not affect the text model.
  ArrayRef<StringLiteral> outerIgnored = {};
};

} // namespace

/// The keys every family reads the same way.
static void readSizes(ConfigFile &c, HFStack &s) {
  s.hidden = c.requirePositive("hidden_size", kMaxWidth);
  s.numLayers = c.requirePositive("num_hidden_layers", kMaxLayers);
}

/// The expert count under its name, or under the name transformers 5 writes
/// for the same family (qwen3_moe: num_experts -> num_local_experts). Both
/// present must agree.
static void readExpertCount(ConfigFile &c, HFStack &s, StringLiteral name,
                            StringLiteral renamed) {
  bool old = c.has(name), renamedOnly = !old && c.has(renamed);
  s.expertsKey = renamedOnly ? renamed : name;
  s.experts = c.requirePositive(s.expertsKey, kMaxExperts);
  if (old && c.has(renamed)) {
    int64_t other = c.requirePositive(renamed, kMaxExperts);
    if (other != s.experts)
      c.error(renamed) << "'" << renamed << "' = " << other
                       << " disagrees with '" << name << "' = " << s.experts;
  }
}

/// Every layer is MoE (Mixtral, OLMoE).
static void allMoe(ConfigFile &c, HFStack &s) {
  s.layers.assign(s.numLayers, {true, c.loc(s.expertsKey)});
}

/// The routed sizes most families read alike, in this order: hidden size and
/// layer count, the experts' width `ffnKey`, the expert count under
/// `expertsKey` (or under `renamedKey`, transformers 5's name for it, when
/// given), and num_experts_per_tok (required when `defaultTopK` is unset).
static void readRoutedSizes(ConfigFile &c, HFStack &s, StringLiteral ffnKey,
                            StringLiteral expertsKey, StringLiteral renamedKey,
                            std::optional<int64_t> defaultTopK) {
  readSizes(c, s);
  s.expertFfn = c.requirePositive(ffnKey, kMaxWidth);
  if (renamedKey.empty()) {
    s.expertsKey = expertsKey;
    s.experts = c.requirePositive(s.expertsKey, kMaxExperts);
  } else {
    readExpertCount(c, s, expertsKey, renamedKey);
  }
  s.routing.topK = defaultTopK
                       ? c.getPositive(s.topKKey, *defaultTopK, kMaxExperts)
                       : c.requirePositive(s.topKKey, kMaxExperts);
}

//===----------------------------------------------------------------------===//
// Families
//===----------------------------------------------------------------------===//

// MixtralSparseMoeBlock: softmax, top-k, divide by the top-k sum.
static void readMixtral(ConfigFile &c, HFStack &s) {
  s.keys = kMixtralKeys;
  readRoutedSizes(c, s, "intermediate_size", "num_local_experts", "", 2);
  s.routing.normalize = Normalization::selected;
  allMoe(c, s);
}

// OlmoeSparseMoeBlock: softmax, top-k, divide by the sum iff norm_topk_prob.
static void readOlmoe(ConfigFile &c, HFStack &s) {
  s.keys = kPlainMoeKeys;
  readRoutedSizes(c, s, "intermediate_size", "num_experts", "", 8);
  if (c.getBool("norm_topk_prob", false))
    s.routing.normalize = Normalization::selected;
  allMoe(c, s);
}

/// Qwen2-MoE and Qwen3-MoE: the same routing; Qwen2 adds a sigmoid-gated
/// shared expert.
static void readQwenMoe(ConfigFile &c, HFStack &s, bool sharedExpert,
                        int64_t defaultTopK) {
  s.keys = sharedExpert ? kQwen2MoeKeys : kPlainMoeKeys;
  readRoutedSizes(c, s, "moe_intermediate_size", "num_experts",
                  "num_local_experts", defaultTopK);
  s.denseFfn = c.requirePositive("intermediate_size", kMaxWidth);
  if (c.getBool("norm_topk_prob", false))
    s.routing.normalize = Normalization::selected;
  if (sharedExpert) {
    s.sharedFfn =
        c.requirePositive("shared_expert_intermediate_size", kMaxWidth);
    s.sharedSigmoidGate = true;
  }
  int64_t step = c.getPositive("decoder_sparse_step", 1);
  std::vector<int64_t> mlpOnly = c.getIntList("mlp_only_layers");
  for (auto [j, index] : llvm::enumerate(mlpOnly))
    if (index < 0 || index >= s.numLayers)
      c.error(c.elementLoc("mlp_only_layers", j))
          << "mlp_only_layers[" << j << "] = " << index
          << " is not a layer index (num_hidden_layers = " << s.numLayers
          << ")";

  // Qwen2MoeDecoderLayer: sparse iff not in mlp_only_layers, num_experts > 0
  // and (i + 1) % decoder_sparse_step == 0.
  for (int64_t i = 0; i < s.numLayers; ++i) {
    auto it = llvm::find(mlpOnly, i);
    if (it != mlpOnly.end())
      s.layers.push_back(
          {false, c.elementLoc("mlp_only_layers", it - mlpOnly.begin())});
    else if ((i + 1) % step != 0)
      s.layers.push_back({false, c.loc("decoder_sparse_step")});
    else
      s.layers.push_back({true, c.loc(s.expertsKey)});
  }
}

static void readQwen2Moe(ConfigFile &c, HFStack &s) {
  readQwenMoe(c, s, /*sharedExpert=*/true, /*defaultTopK=*/4);
}

static void readQwen3Moe(ConfigFile &c, HFStack &s) {
  readQwenMoe(c, s, /*sharedExpert=*/false, /*defaultTopK=*/8);
}

/// DeepSeek-V2 and V3 (their trust_remote_code MoEGate). Defaults are those
/// of their configuration classes.
static void readDeepSeek(ConfigFile &c, HFStack &s, bool v3) {
  s.keys = kDeepSeekKeys;
  readSizes(c, s);
  s.denseFfn = c.requirePositive("intermediate_size", kMaxWidth);
  s.expertsKey = "n_routed_experts";
  // V2: `n_routed_experts: null` means no MoE layer at all.
  bool hasMoe = v3 || c.has(s.expertsKey);
  s.experts = hasMoe ? c.requirePositive(s.expertsKey, kMaxExperts) : 0;
  c.get(s.expertsKey);
  s.expertFfn = hasMoe ? c.requirePositive("moe_intermediate_size", kMaxWidth)
                       : c.getPositive("moe_intermediate_size", 1, kMaxWidth);
  s.routing.topK = v3 || !hasMoe
                       ? c.getPositive("num_experts_per_tok", 8, kMaxExperts)
                       : c.requirePositive("num_experts_per_tok", kMaxExperts);
  int64_t firstDense = c.getNonNegative("first_k_dense_replace", v3 ? 3 : 0);
  int64_t frequency = c.getPositive("moe_layer_freq", 1);
  int64_t shared =
      c.getNonNegative("n_shared_experts", v3 ? 1 : 0, kMaxExperts);
  s.sharedFfn = shared * s.expertFfn;
  // transformers 5 writes mlp_bias (false); the reference MLPs have none.
  if (c.getBool("mlp_bias", false))
    c.error("mlp_bias") << "mlp_bias = true is not supported for "
                        << (v3 ? "deepseek_v3" : "deepseek_v2")
                        << ": the experts and MLPs are bias-free";
  c.checkAtMost(c.loc("n_shared_experts"),
                "the shared experts' width (n_shared_experts x "
                "moe_intermediate_size)",
                s.sharedFfn, kMaxWidth);

  // The reference gates implement one scoring function each.
  StringRef family = v3 ? "deepseek_v3" : "deepseek_v2";
  StringRef expectedScoring = v3 ? "sigmoid" : "softmax";
  std::string scoring = c.getString("scoring_func", expectedScoring);
  if (scoring != "softmax" && scoring != "sigmoid")
    c.error("scoring_func") << "unsupported scoring_func '" << scoring
                            << "': expected 'softmax' or 'sigmoid'";
  else if (scoring != expectedScoring)
    c.error("scoring_func")
        << "scoring_func '" << scoring << "' is not supported for " << family
        << ": its reference gate implements only '" << expectedScoring << "'";
  s.routing.scoring = v3 ? ScoringFunc::sigmoid : ScoringFunc::softmax;

  std::string method = c.getString("topk_method", v3 ? "noaux_tc" : "greedy");
  bool grouped;
  if (!v3 && method == "greedy") {
    grouped = false;
  } else if (!v3 && method == "group_limited_greedy") {
    grouped = true;
    s.routing.groupScore = GroupScore::max;
  } else if (v3 && method == "noaux_tc") {
    grouped = true;
    s.routing.groupScore = GroupScore::top2_sum;
    s.correctionBias = true;
  } else {
    grouped = false;
    c.error("topk_method") << "unsupported topk_method '" << method << "' for "
                           << family << ": expected "
                           << (v3 ? "'noaux_tc'"
                                  : "'greedy' or 'group_limited_greedy'");
  }
  if (grouped) {
    s.routing.nGroup = v3 ? c.getPositive("n_group", 8, kMaxExperts)
                          : c.requirePositive("n_group", kMaxExperts);
    s.routing.topkGroup = v3 ? c.getPositive("topk_group", 4, kMaxExperts)
                             : c.requirePositive("topk_group", kMaxExperts);
    // One group keeps every expert: plain top-k (with V3's bias).
    if (s.routing.nGroup == 1)
      s.routing.groupScore = GroupScore::max;
  } else {
    // `greedy` never reads them.
    c.get("n_group");
    c.get("topk_group");
  }

  bool normTopk = c.getBool("norm_topk_prob", v3);
  double scaling = c.getPositiveNumber("routed_scaling_factor", v3 ? 2.5 : 1.0);
  // V2: normalise (with 1e-20 added to the sum) OR scale; V3: normalise if
  // asked, then always scale.
  if (s.routing.topK > 1 && normTopk) {
    s.routing.normalize = Normalization::selected;
    s.routing.normEpsilon = 1e-20;
    s.routing.routedScalingFactor = v3 ? scaling : 1.0;
  } else {
    s.routing.routedScalingFactor = scaling;
  }

  // Layer i is MoE iff n_routed_experts is set, i >= first_k_dense_replace and
  // i % moe_layer_freq == 0.
  for (int64_t i = 0; i < s.numLayers; ++i) {
    if (!hasMoe)
      s.layers.push_back({false, c.loc(s.expertsKey)});
    else if (i < firstDense)
      s.layers.push_back({false, c.loc("first_k_dense_replace")});
    else if (i % frequency != 0)
      s.layers.push_back({false, c.loc("moe_layer_freq")});
    else
      s.layers.push_back({true, c.loc(s.expertsKey)});
  }
}

static void readDeepSeekV2(ConfigFile &c, HFStack &s) {
  readDeepSeek(c, s, /*v3=*/false);
}

static void readDeepSeekV3(ConfigFile &c, HFStack &s) {
  readDeepSeek(c, s, /*v3=*/true);
}

/// GLM-4.5 and dots.llm1: the DeepSeek-V3 gate as transformers'
/// Glm4MoeTopkRouter / Dots1TopkRouter write it (the two are line for line
/// the same): sigmoid, selection by score + e_score_correction_bias, groups
/// scored by their top-2 sum, divide by (sum + 1e-20) iff norm_topk_prob
/// (whatever top_k), then always x routed_scaling_factor. Layers
/// i >= first_k_dense_replace are MoE, with n_shared_experts x
/// moe_intermediate_size of shared experts added plainly.
static void readSigmoidGrouped(ConfigFile &c, HFStack &s, bool glm) {
  s.keys = kDeepSeekKeys;
  // Dots1Config leaves the top-k and the shared experts unset (None).
  readRoutedSizes(c, s, "moe_intermediate_size", "n_routed_experts",
                  "num_local_experts",
                  glm ? std::optional<int64_t>(8) : std::nullopt);
  s.denseFfn = c.requirePositive("intermediate_size", kMaxWidth);
  int64_t shared =
      glm ? c.getNonNegative("n_shared_experts", 1, kMaxExperts)
          : c.requirePositive("n_shared_experts", kMaxExperts);
  s.sharedFfn = shared * s.expertFfn;
  c.checkAtMost(c.loc("n_shared_experts"),
                "the shared experts' width (n_shared_experts x "
                "moe_intermediate_size)",
                s.sharedFfn, kMaxWidth);
  int64_t firstDense = c.getNonNegative("first_k_dense_replace", glm ? 1 : 0);

  s.routing.scoring = ScoringFunc::sigmoid;
  s.correctionBias = true;
  s.routing.nGroup = c.getPositive("n_group", 1, kMaxExperts);
  s.routing.topkGroup = c.getPositive("topk_group", 1, kMaxExperts);
  s.routing.groupScore =
      s.routing.nGroup == 1 ? GroupScore::max : GroupScore::top2_sum;
  if (c.getBool("norm_topk_prob", glm)) {
    s.routing.normalize = Normalization::selected;
    s.routing.normEpsilon = 1e-20;
  }
  s.routing.routedScalingFactor =
      c.getPositiveNumber("routed_scaling_factor", 1.0);

  for (int64_t i = 0; i < s.numLayers; ++i)
    s.layers.push_back(i < firstDense
                           ? LayerChoice{false, c.loc("first_k_dense_replace")}
                           : LayerChoice{true, c.loc(s.expertsKey)});
}

static void readGlm4Moe(ConfigFile &c, HFStack &s) {
  readSigmoidGrouped(c, s, /*glm=*/true);
}

static void readDots1(ConfigFile &c, HFStack &s) {
  readSigmoidGrouped(c, s, /*glm=*/false);
}

/// Qwen3-Next's FFN is Qwen2-MoE's (sigmoid-gated shared expert, the same
/// sparse-layer rule); only the defaults differ.
static void readQwen3Next(ConfigFile &c, HFStack &s) {
  readQwenMoe(c, s, /*sharedExpert=*/true, /*defaultTopK=*/10);
  // Qwen3NextConfig defaults norm_topk_prob to true (Qwen2-MoE: false).
  s.routing.normalize = c.getBool("norm_topk_prob", true)
                            ? Normalization::selected
                            : Normalization::none;
}

// JambaSparseMoeBlock: softmax, top-k, the weights left unnormalised; the
// experts and the dense layers are intermediate_size wide.
static void readJamba(ConfigFile &c, HFStack &s) {
  s.keys = kJambaKeys;
  readRoutedSizes(c, s, "intermediate_size", "num_experts", "num_local_experts",
                  2);
  s.denseFfn = s.expertFfn;
  int64_t period = c.getPositive("expert_layer_period", 2);
  int64_t offset = c.getNonNegative("expert_layer_offset", 1);
  if (offset >= period)
    c.error("expert_layer_offset")
        << "expert_layer_offset = " << offset
        << " must be smaller than expert_layer_period = " << period;
  // JambaConfig.layers_num_experts: num_experts on layers i % period ==
  // offset, 1 elsewhere; a layer is sparse iff its count is > 1.
  for (int64_t i = 0; i < s.numLayers; ++i) {
    if (s.experts == 1)
      s.layers.push_back({false, c.loc(s.expertsKey)});
    else if (i % period != offset)
      s.layers.push_back({false, c.loc("expert_layer_period")});
    else
      s.layers.push_back({true, c.loc(s.expertsKey)});
  }
}

/// A key the original code reads per layer (an integer, or a list with one
/// entry per layer): its one value, or an error at the first entry that
/// differs (one value for every layer is all the stack expresses).
static int64_t readUniformPerLayer(ConfigFile &c, StringRef key,
                                   int64_t fallback, int64_t max) {
  const llvm::json::Value *value = c.get(key);
  if (!value || !value->getAsArray())
    return c.getPositive(key, fallback, max);
  std::vector<int64_t> list = c.getIntList(key);
  if (list.empty()) {
    c.error(key) << "'" << key << "' is an empty list";
    return fallback;
  }
  for (auto [j, item] : llvm::enumerate(list)) {
    if (item <= 0 || item > max) {
      c.error(c.elementLoc(key, j)) << key << "[" << j << "] = " << item
                                    << " must be in [1, " << max << "]";
      return fallback;
    }
    if (item != list[0]) {
      c.error(c.elementLoc(key, j))
          << key << "[" << j << "] = " << item << " differs from " << key
          << "[0] = " << list[0] << ": one value for every layer is supported";
      return fallback;
    }
  }
  return list[0];
}

// HunYuanMoEV1Moe on every layer: softmax, top-k (moe_topk), divided by the
// top-k sum; experts and the shared MLP (`shared_mlp`, added plainly) are
// intermediate_size wide; the router is `gate.wg`. The keys Tencent's own
// code reads beyond that are accepted where they say the same.
static void readHunyuanMoe(ConfigFile &c, HFStack &s) {
  s.keys = kHunyuanKeys;
  readSizes(c, s);
  int64_t width = c.requirePositive("intermediate_size", kMaxWidth);
  s.expertFfn = s.sharedFfn = width;
  s.expertsKey = "num_experts";
  s.experts = c.requirePositive(s.expertsKey, kMaxExperts);
  s.topKKey = "moe_topk";
  s.routing.topK = readUniformPerLayer(c, "moe_topk", 1, kMaxExperts);
  s.routing.normalize = Normalization::selected;
  if (c.has("moe_intermediate_size")) {
    int64_t moeWidth =
        readUniformPerLayer(c, "moe_intermediate_size", width, kMaxWidth);
    if (moeWidth != width)
      c.error("moe_intermediate_size")
          << "moe_intermediate_size = " << moeWidth
          << " differs from intermediate_size = " << width
          << ": hunyuan_v1_moe experts are intermediate_size wide";
  }
  if (c.has("num_shared_expert") &&
      readUniformPerLayer(c, "num_shared_expert", 1, kMaxExperts) != 1)
    c.error("num_shared_expert")
        << "num_shared_expert must be 1: hunyuan_v1_moe has one shared MLP "
           "of intermediate_size";
  if (!c.getBool("use_mixed_mlp_moe", true))
    c.error("use_mixed_mlp_moe")
        << "use_mixed_mlp_moe = false is not supported: hunyuan_v1_moe "
           "always adds the shared MLP";
  if (c.getBool("mlp_bias", false))
    c.error("mlp_bias") << "mlp_bias = true is not supported for "
                           "hunyuan_v1_moe: the experts and MLPs are bias-free";
  // With drops off, capacity_factor and the re-routing of dropped tokens
  // are never used.
  if (c.getBool("moe_drop_tokens", false))
    c.error("moe_drop_tokens")
        << "moe_drop_tokens = true is not supported for hunyuan_v1_moe: "
           "its transformers module is dropless";
  c.get("capacity_factor");
  c.get("moe_random_routing_dropped_token");
  allMoe(c, s);
}

// Ernie4_5_MoeSparseMoeBlock: softmax; selection by probability +
// e_score_correction_bias (moe_use_aux_free); the weights are the
// probabilities divided by max(their sum, moe_norm_min); shared experts
// (moe_num_shared_experts x moe_intermediate_size) added plainly. Layer i is
// MoE iff (i + 1) % moe_layer_interval == 0 and moe_layer_start_index <= i
// <= moe_layer_end_index (-1: the last layer).
static void readErnieMoe(ConfigFile &c, HFStack &s) {
  s.keys = kErnieKeys;
  readSizes(c, s);
  s.denseFfn = c.requirePositive("intermediate_size", kMaxWidth);
  s.expertFfn = c.requirePositive("moe_intermediate_size", kMaxWidth);
  readExpertCount(c, s, "moe_num_experts", "num_experts");
  s.topKKey = "moe_k";
  s.routing.topK = c.getPositive("moe_k", 6, kMaxExperts);
  int64_t shared = c.getNonNegative("moe_num_shared_experts", 2, kMaxExperts);
  s.sharedFfn = shared * s.expertFfn;
  c.checkAtMost(c.loc("moe_num_shared_experts"),
                "the shared experts' width (moe_num_shared_experts x "
                "moe_intermediate_size)",
                s.sharedFfn, kMaxWidth);
  if (c.getBool("use_bias", false))
    c.error("use_bias") << "use_bias = true is not supported for "
                           "ernie4_5_moe: the dense and shared MLPs would "
                           "carry biases";
  std::string gate = c.getString("moe_gate", "topk");
  if (gate != "topk")
    c.error("moe_gate") << "unsupported moe_gate '" << gate
                        << "' for ernie4_5_moe: expected 'topk'";
  s.correctionBias = c.getBool("moe_use_aux_free", true);
  s.routing.normalize = Normalization::selected_clamped;
  s.routing.normEpsilon = c.getPositiveNumber("moe_norm_min", 1e-12);

  int64_t start = c.getNonNegative("moe_layer_start_index", 1);
  int64_t end = c.getInt("moe_layer_end_index", -1);
  if (end == -1)
    end = s.numLayers - 1;
  else if (end < 0)
    c.error("moe_layer_end_index")
        << "moe_layer_end_index = " << end
        << " must be a layer index or -1 (the last layer)";
  int64_t interval = c.getPositive("moe_layer_interval", 1);
  for (int64_t i = 0; i < s.numLayers; ++i) {
    if (i < start)
      s.layers.push_back({false, c.loc("moe_layer_start_index")});
    else if (i > end)
      s.layers.push_back({false, c.loc("moe_layer_end_index")});
    else if ((i + 1) % interval != 0)
      s.layers.push_back({false, c.loc("moe_layer_interval")});
    else
      s.layers.push_back({true, c.loc(s.expertsKey)});
  }
}

/// A config number as a user wrote it (0.22, 12), not 2.200000e-01.
static std::string shortNumber(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

// GraniteMoe(Shared)TopKRouter: top-k of the logits, then softmax over the
// k (the softmax of all, renormalised over the k: normalize = selected).
// GraniteMoe(Shared)DecoderLayer adds `ffn(x) * residual_multiplier`; the
// routed weights carry that factor (routed_scaling_factor), and a moe.scale
// the shared MLP's output (shared_intermediate_size > 0), which
// GraniteMoeShared adds to the routed output before the factor.
static void readGraniteMoe(ConfigFile &c, HFStack &s, bool sharedVariant) {
  s.keys = kGraniteKeys;
  readRoutedSizes(c, s, "intermediate_size", "num_local_experts", "", 2);
  s.routing.normalize = Normalization::selected;
  double multiplier = c.getPositiveNumber("residual_multiplier", 1.0);
  s.routing.routedScalingFactor = multiplier;
  if (sharedVariant) {
    s.sharedFfn = c.getNonNegative("shared_intermediate_size", 0, kMaxWidth);
    s.sharedScale = multiplier;
  }
  allMoe(c, s);
}

// GptOssMLP on every layer: router logits with a bias, top-k of the logits,
// softmax over the k (the softmax of all, renormalised over the k:
// normalize = selected); experts with biases and the clamped SwiGLU
// (swiglu_alpha, swiglu_limit).
static void readGptOss(ConfigFile &c, HFStack &s) {
  s.keys = kGptOssKeys;
  readRoutedSizes(c, s, "intermediate_size", "num_local_experts", "", 4);
  // OpenAI's own name for the same count, published next to it.
  if (c.has("experts_per_token")) {
    int64_t other = c.requirePositive("experts_per_token", kMaxExperts);
    if (other != s.routing.topK)
      c.error("experts_per_token")
          << "'experts_per_token' = " << other
          << " disagrees with 'num_experts_per_tok' = " << s.routing.topK;
  }
  s.routing.normalize = Normalization::selected;
  s.swigluAlpha = c.getPositiveNumber("swiglu_alpha", 1.702);
  s.swigluLimit = c.getPositiveNumber("swiglu_limit", 7.0);
  allMoe(c, s);
}

// DbrxFFN on every block: softmax, top-k (ffn_config.moe_top_k), the k
// weights divided by their p-norm, p = moe_normalize_expert_weights (1:
// their sum, as the weights are positive: normalize = selected; other p:
// normalize = pnorm; null: kept as they are). The sizes are d_model and
// n_layers; the FFN's keys nest in ffn_config, whose every field is checked
// here (errors at `ffn_config`).
static void readDbrx(ConfigFile &c, HFStack &s) {
  s.keys = kDbrxKeys;
  s.hidden = c.requirePositive("d_model", kMaxWidth);
  s.numLayers = c.requirePositive("n_layers", kMaxLayers);
  s.expertsKey = s.topKKey = "ffn_config";
  s.expertsName = "ffn_config.moe_num_experts";
  s.topKName = "ffn_config.moe_top_k";
  const llvm::json::Value *value = c.get("ffn_config");
  const llvm::json::Object *ffn = value ? value->getAsObject() : nullptr;
  if (!ffn) {
    c.error("ffn_config") << "'ffn_config' must be an object holding the "
                             "experts' sizes";
    return;
  }
  // Bookkeeping transformers 5 writes into every nested config.
  static constexpr StringLiteral kNestedIgnored[] = {
      "_name_or_path", "architectures", "chunk_size_feed_forward", "dtype",
      "id2label", "label2id", "is_encoder_decoder", "model_type",
      "output_attentions", "output_hidden_states", "problem_type",
      "return_dict", "torch_dtype", "transformers_version",
      // Training only: router input jitter and the load-balancing loss.
      "moe_jitter_eps", "moe_loss_weight"};
  auto field = [&](StringRef name) -> InFlightDiagnostic {
    InFlightDiagnostic diag = c.error("ffn_config");
    diag << "ffn_config." << name << ": ";
    return diag;
  };
  auto positive = [&](StringRef name, std::optional<int64_t> fallback,
                      int64_t max) -> int64_t {
    const llvm::json::Value *v = ffn->get(name);
    if (!v || v->getAsNull()) {
      if (!fallback)
        field(name) << "missing";
      return fallback.value_or(1);
    }
    std::optional<int64_t> n = v->getAsInteger();
    if (!n || *n < 1 || *n > max) {
      field(name) << "must be an integer in [1, " << max << "]";
      return 1;
    }
    return *n;
  };
  for (const auto &entry : *ffn) {
    StringRef name = entry.first;
    if (!llvm::is_contained(kNestedIgnored, name) &&
        !llvm::is_contained({"ffn_hidden_size", "moe_num_experts", "moe_top_k",
                             "moe_normalize_expert_weights", "ffn_act_fn",
                             "hidden_size", "uniform_expert_assignment"},
                            name))
      field(name) << "unknown field: it may change the MoE semantics";
  }
  s.expertFfn = positive("ffn_hidden_size", std::nullopt, kMaxWidth);
  s.experts = positive("moe_num_experts", 4, kMaxExperts);
  s.routing.topK = positive("moe_top_k", 1, kMaxExperts);
  if (const llvm::json::Value *v = ffn->get("hidden_size"))
    if (!v->getAsNull() && v->getAsInteger() != std::optional(s.hidden))
      field("hidden_size") << "must equal d_model = " << s.hidden
                           << ": the experts read and write the hidden states";
  if (const llvm::json::Value *v = ffn->get("ffn_act_fn");
      v && !v->getAsNull()) {
    const llvm::json::Object *act = v->getAsObject();
    std::optional<StringRef> name = act ? act->getString("name") : std::nullopt;
    if (!name || *name != "silu" || act->size() != 1)
      field("ffn_act_fn") << "only {\"name\": \"silu\"} is supported: the "
                             "experts are SwiGLU with silu";
  }
  if (const llvm::json::Value *v = ffn->get("uniform_expert_assignment"))
    if (v->getAsBoolean().value_or(true))
      field("uniform_expert_assignment")
          << "must be false: uniform assignment ignores the router";
  const llvm::json::Value *p = ffn->get("moe_normalize_expert_weights");
  if (!p) {
    s.routing.normalize = Normalization::selected; // DbrxFFNConfig: 1.0
  } else if (!p->getAsNull()) {
    std::optional<double> norm = p->getAsNumber();
    if (!norm || !std::isfinite(*norm) || *norm <= 0.0) {
      field("moe_normalize_expert_weights")
          << "must be a positive number (the p of the p-norm) or null";
    } else if (*norm == 1.0) {
      s.routing.normalize = Normalization::selected;
    } else {
      s.routing.normalize = Normalization::pnorm;
      s.routing.normP = *norm;
    }
  }
  allMoe(c, s);
}

// PhimoeSparseMoeBlock (eval): Mixtral's keys and experts; the router is
// sparsemixer, top-2 with router_jitter_noise as its jitter_eps.
static void readPhimoe(ConfigFile &c, HFStack &s) {
  s.keys = kMixtralKeys;
  readRoutedSizes(c, s, "intermediate_size", "num_local_experts", "", 2);
  s.routing.scoring = ScoringFunc::sparsemixer;
  if (s.routing.topK != 2)
    c.error(s.topKKey) << "phimoe's sparsemixer router picks exactly 2 "
                          "experts, got num_experts_per_tok = "
                       << s.routing.topK;
  double jitter = c.getNumber("router_jitter_noise", 0.01);
  if (!std::isfinite(jitter) || jitter < 0.0)
    c.error("router_jitter_noise")
        << "router_jitter_noise must be finite and >= 0, got "
        << shortNumber(jitter);
  s.routing.jitterEps = jitter;
  allMoe(c, s);
}

// Llama4TextMoe on the layers of moe_layers (transformers derives it from
// interleave_moe_layer_step when absent: every step-th layer from step - 1),
// Llama4TextMLP of intermediate_size_mlp on the others. Llama4Router: top-k
// of the logits, each weight the sigmoid of its own logit; the weight
// scales the expert's input (weights = input); the shared expert (an MLP of
// intermediate_size) is added plainly.
static void readLlama4Stack(ConfigFile &c, HFStack &s) {
  readRoutedSizes(c, s, "intermediate_size", "num_local_experts", "", 1);
  s.routing.scoring = ScoringFunc::sigmoid;
  s.routing.weights = WeightSite::input;
  s.sharedFfn = s.expertFfn;
  int64_t step = c.getPositive("interleave_moe_layer_step", 1, kMaxLayers);
  bool listed = c.has("moe_layers");
  std::vector<int64_t> moeLayers = c.getIntList("moe_layers");
  for (auto [j, index] : llvm::enumerate(moeLayers))
    if (index < 0 || index >= s.numLayers)
      c.error(c.elementLoc("moe_layers", j))
          << "moe_layers[" << j << "] = " << index
          << " is not a layer index (num_hidden_layers = " << s.numLayers
          << ")";
  for (int64_t i = 0; i < s.numLayers; ++i) {
    if (listed) {
      auto it = llvm::find(moeLayers, i);
      s.layers.push_back(
          it != moeLayers.end()
              ? LayerChoice{true,
                            c.elementLoc("moe_layers", it - moeLayers.begin())}
              : LayerChoice{false, c.loc("moe_layers")});
    } else {
      s.layers.push_back(
          {(i + 1) % step == 0, c.loc("interleave_moe_layer_step")});
    }
  }
  // Llama4TextConfig's default; only dense layers read it.
  s.denseFfn = c.getPositive("intermediate_size_mlp", 16384, kMaxWidth);
}

static void readLlama4Text(ConfigFile &c, HFStack &s) {
  s.keys = kLlama4Keys;
  readLlama4Stack(c, s);
}

// The multimodal config (Llama4ForConditionalGeneration): the text model's
// keys under text_config, its decoder under `language_model.`.
static void readLlama4(ConfigFile &c, HFStack &s) {
  s.keys = kLlama4Keys;
  s.keys.layerPrefix = "language_model.model.layers.";
  readLlama4Stack(c, s);
}

static void readGraniteMoeRouted(ConfigFile &c, HFStack &s) {
  readGraniteMoe(c, s, /*sharedVariant=*/false);
}

static void readGraniteMoeShared(ConfigFile &c, HFStack &s) {
  readGraniteMoe(c, s, /*sharedVariant=*/true);
}

static constexpr StringLiteral kMixtralIgnored[] = {"sliding_window",
                                                    "router_jitter_noise"};
// input_jitter_noise scales the input in training only; the others act
// outside the FFN stack (attention, LongRoPE, the lm_head bias, dropout).
static constexpr StringLiteral kPhimoeIgnored[] = {
    "sliding_window", "input_jitter_noise", "lm_head_bias",
    "original_max_position_embeddings", "hidden_dropout"};
static constexpr StringLiteral kQwenIgnored[] = {
    "sliding_window", "use_sliding_window", "max_window_layers", "layer_types",
    // transformers 5: the attention projections' bias (qwen2_moe).
    "qkv_bias"};
static constexpr StringLiteral kDeepSeekIgnored[] = {
    "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
    "qk_head_dim", "v_head_dim", "pretraining_tp", "rope_interleave",
    // Training-only auxiliary losses.
    "aux_loss_alpha", "seq_aux",
    // Expert parallelism of the reference code: no semantic effect.
    "ep_size",
    // Multi-token-prediction module: not part of the decoder stack.
    "num_nextn_predict_layers"};
static constexpr StringLiteral kOlmoeIgnored[] = {"clip_qkv"};

static constexpr StringLiteral kGlm4MoeIgnored[] = {
    "partial_rotary_factor", "use_qk_norm",
    // The MTP layer (transformers 5: num_mtp_layers) is not a decoder layer.
    "num_nextn_predict_layers", "num_mtp_layers"};
static constexpr StringLiteral kDots1Ignored[] = {
    "sliding_window", "use_sliding_window", "max_window_layers",
    "layer_types"};
static constexpr StringLiteral kQwen3NextIgnored[] = {
    // Gated DeltaNet (linear attention) and which layers use it.
    "linear_conv_kernel_dim", "linear_key_head_dim", "linear_value_head_dim",
    "linear_num_key_heads", "linear_num_value_heads", "full_attention_interval",
    "layer_types", "partial_rotary_factor", "use_sliding_window",
    "sliding_window", "max_window_layers"};
static constexpr StringLiteral kJambaIgnored[] = {
    // Which layers attend and the Mamba mixers of the others.
    "attn_layer_period", "attn_layer_offset", "use_mamba_kernels",
    "mamba_d_state", "mamba_d_conv", "mamba_expand", "mamba_dt_rank",
    "mamba_conv_bias", "mamba_proj_bias", "use_mambapy",
    "use_associative_scan", "sliding_window", "num_logits_to_keep"};
static constexpr StringLiteral kHunyuanIgnored[] = {
    "use_qk_norm", "use_cla", "cla_share_factor", "use_rotary_pos_emb",
    "attention_head_dim", "eod_token_id", "sep_token_id", "pretraining_tp",
    "org_vocab_size", "use_mla"};
static constexpr StringLiteral kErnieIgnored[] = {
    "use_rmsnorm", "use_flash_attention",
    // The MTP module is not part of the decoder stack.
    "num_nextn_predict_layers", "num_mtp_layers", "multi_token_pred_lambda",
    // Per-expert capacity of the training code; the reference module is
    // dropless and does not read it.
    "moe_capacity"};

// The embedding, attention and logits scales act outside the FFN stack
// (the whole-model import reads them: readGraniteDecoder).
static constexpr StringLiteral kGraniteIgnored[] = {
    "embedding_multiplier", "attention_multiplier", "logits_scaling"};

// Attention (attn_config: heads, clip_qkv, rope_theta), sequence length,
// dropouts and DBRX's own names for the decoder's sizes.
static constexpr StringLiteral kDbrxIgnored[] = {
    "attn_config", "n_heads", "max_seq_len", "resid_pdrop", "emb_pdrop"};

// gpt-oss: attention only (sliding windows per layer_types; the attention
// sinks are weights, not keys) and the rope's original context length.
static constexpr StringLiteral kGptOssIgnored[] = {
    "sliding_window", "layer_types", "initial_context_length"};

// Llama 4's text model: attention only (chunked attention and which layers
// skip RoPE, the QK norm without weights, attention temperature tuning) and
// the training-only router jitter, which Llama4Router never applies.
static constexpr StringLiteral kLlama4Ignored[] = {
    "attention_chunk_size", "attn_scale", "attn_temperature_tuning",
    "floor_scale", "no_rope_layers", "no_rope_layer_interval", "use_qk_norm",
    "layer_types", "cache_implementation", "router_jitter_noise",
    // Bookkeeping every nested transformers config carries.
    "model_type", "dtype", "torch_dtype", "for_llm_compressor",
    "_attn_implementation_autoset"};
// Llama4ForConditionalGeneration's top level: the vision tower and the
// image tokens do not touch the text decoder's FFN stack.
static constexpr StringLiteral kLlama4OuterIgnored[] = {
    "vision_config", "boi_token_index", "eoi_token_index", "image_token_index"};

static const Family kFamilies[] = {
    {"mixtral", readMixtral, kMixtralIgnored},
    {"qwen2_moe", readQwen2Moe, kQwenIgnored},
    {"qwen3_moe", readQwen3Moe, kQwenIgnored},
    {"deepseek_v2", readDeepSeekV2, kDeepSeekIgnored},
    {"deepseek_v3", readDeepSeekV3, kDeepSeekIgnored},
    {"olmoe", readOlmoe, kOlmoeIgnored},
    {"glm4_moe", readGlm4Moe, kGlm4MoeIgnored},
    {"dots1", readDots1, kDots1Ignored},
    {"qwen3_next", readQwen3Next, kQwen3NextIgnored},
    {"jamba", readJamba, kJambaIgnored},
    {"hunyuan_v1_moe", readHunyuanMoe, kHunyuanIgnored},
    {"ernie4_5_moe", readErnieMoe, kErnieIgnored},
    {"granitemoe", readGraniteMoeRouted, kGraniteIgnored},
    {"granitemoeshared", readGraniteMoeShared, kGraniteIgnored},
    {"dbrx", readDbrx, kDbrxIgnored},
    {"gpt_oss", readGptOss, kGptOssIgnored},
    {"phimoe", readPhimoe, kPhimoeIgnored},
    {"llama4_text", readLlama4Text, kLlama4Ignored},
    {"llama4", readLlama4, kLlama4Ignored, "text_config", "llama4_text",
     kLlama4OuterIgnored},
};

//===----------------------------------------------------------------------===//
// Checks and layout shared by every family
//===----------------------------------------------------------------------===//

/// The routing rules that need the expert count, at the keys that broke them.
static void checkRouting(ConfigFile &c, const HFStack &s) {
  if (llvm::none_of(s.layers, [](const LayerChoice &l) { return l.moe; }))
    return;
  const RoutingDesc &r = s.routing;
  if (r.topK > s.experts) {
    c.error(s.topKKey) << (s.topKName.empty() ? s.topKKey : s.topKName) << " = "
                       << r.topK << " exceeds the " << s.experts
                       << " experts of '"
                       << (s.expertsName.empty() ? s.expertsKey : s.expertsName)
                       << "'";
    return;
  }
  if (r.nGroup == 1)
    return;
  if (r.topkGroup > r.nGroup) {
    c.error("topk_group") << "topk_group = " << r.topkGroup
                          << " exceeds n_group = " << r.nGroup;
    return;
  }
  if (s.experts % r.nGroup != 0) {
    c.error("n_group") << s.expertsKey << " = " << s.experts
                       << " experts do not split into n_group = " << r.nGroup
                       << " equal groups";
    return;
  }
  int64_t perGroup = s.experts / r.nGroup;
  if (r.groupScore == GroupScore::top2_sum && perGroup < 2)
    c.error("n_group") << "noaux_tc scores a group by its top-2 experts, but "
                       << "n_group = " << r.nGroup << " leaves " << perGroup
                       << " expert per group";
  else if (r.topkGroup * perGroup < r.topK)
    c.error(s.topKKey)
        << s.topKKey << " = " << r.topK << " exceeds the "
        << r.topkGroup * perGroup << " experts of topk_group = " << r.topkGroup
        << " groups of " << perGroup;
}

static FfnDesc swiGlu(int64_t size, const std::string &prefix, StringRef gate,
                      StringRef up, StringRef down) {
  FfnDesc ffn;
  ffn.ffnSize = size;
  ffn.activation = Activation::silu;
  ffn.gated = true;
  ffn.gateKey = prefix + gate.str() + ".weight";
  ffn.upKey = prefix + up.str() + ".weight";
  ffn.downKey = prefix + down.str() + ".weight";
  return ffn;
}

/// Granite's fused gated FFN: gate and up rows of `gateUpKey`
/// (`[(E,) 2F, H]`), down from `downKey` (`[E, H, F]` viewed per expert, or
/// a plain `[H, F]` without experts).
static FfnDesc fusedGateUpRows(int64_t size, int64_t hidden,
                               std::optional<int64_t> experts,
                               const std::string &gateUpKey,
                               const std::string &downKey) {
  FfnDesc ffn;
  ffn.ffnSize = size;
  ffn.activation = Activation::silu;
  ffn.gated = true;
  ffn.gateKey = ffn.upKey = gateUpKey;
  ffn.downKey = downKey;
  FusedViewDesc gate;
  if (experts)
    gate.shape.push_back(*experts);
  gate.shape.insert(gate.shape.end(), {2 * size, hidden});
  gate.expertStride = experts ? 2 * size * hidden : 0;
  gate.strides = {hidden, 1};
  FusedViewDesc up = gate;
  up.offset = size * hidden;
  ffn.gateView = gate;
  ffn.upView = up;
  if (experts)
    ffn.downView =
        FusedViewDesc{{*experts, hidden, size}, 0, hidden * size, {size, 1}};
  return ffn;
}

/// Lays out the stack: names, keys and shapes of every layer.
static ModelDesc describe(ConfigFile &c, const HFStack &s) {
  ModelDesc model;
  model.hiddenSize = s.hidden;
  model.loc = c.fileLoc();
  for (auto [i, choice] : llvm::enumerate(s.layers)) {
    LayerDesc layer;
    layer.index = i;
    layer.loc = choice.why;
    std::string base = s.keys.layerPrefix.str() + std::to_string(i) + ".";
    if (!choice.moe) {
      layer.kind = LayerKind::dense;
      layer.name = base + s.keys.denseModule.str();
      layer.mlp = swiGlu(s.denseFfn, layer.name + ".", "gate_proj", "up_proj",
                         "down_proj");
      model.layers.push_back(std::move(layer));
      continue;
    }
    layer.kind = LayerKind::moe;
    layer.name = base + s.keys.moeModule.str();
    layer.numExperts = s.experts;
    layer.routing = s.routing;
    layer.routingLoc = c.loc(s.topKKey);
    layer.routerKey = layer.name + "." + s.keys.router.str() + ".weight";
    if (s.correctionBias)
      layer.correctionBiasKey =
          layer.name + "." + s.keys.correctionBias.str();
    if (s.keys.fused == KeyScheme::Fused::gptOssInterleaved) {
      std::string prefix = layer.name + ".experts.";
      int64_t f = s.expertFfn, h = s.hidden, e = s.experts;
      layer.routerBiasKey = layer.name + "." + s.keys.router.str() + ".bias";
      FfnDesc &ffn = layer.experts;
      ffn.ffnSize = f;
      ffn.activation = Activation::swiglu_clamped;
      ffn.swigluAlpha = s.swigluAlpha;
      ffn.swigluLimit = s.swigluLimit;
      ffn.gated = true;
      ffn.biases = true;
      ffn.gateKey = ffn.upKey = prefix + s.keys.expertGate.str();
      ffn.gateBiasKey = ffn.upBiasKey = ffn.gateKey + "_bias";
      ffn.downKey = prefix + s.keys.expertDown.str();
      ffn.downBiasKey = ffn.downKey + "_bias";
      // [E, F, H] from [E, H, 2F]: element (f, h) at h * 2F + 2f (+1: up).
      ffn.gateView = FusedViewDesc{{e, h, 2 * f}, 0, h * 2 * f, {2, 2 * f}};
      ffn.upView = FusedViewDesc{{e, h, 2 * f}, 1, h * 2 * f, {2, 2 * f}};
      ffn.gateBiasView = FusedViewDesc{{e, 2 * f}, 0, 2 * f, {2}};
      ffn.upBiasView = FusedViewDesc{{e, 2 * f}, 1, 2 * f, {2}};
      // [E, H, F] from [E, F, H]: read by column.
      ffn.downView = FusedViewDesc{{e, f, h}, 0, f * h, {1, h}};
      ffn.downBiasView = FusedViewDesc{{e, h}, 0, h, {1}};
      model.layers.push_back(std::move(layer));
      continue;
    }
    if (s.keys.fused == KeyScheme::Fused::llama4GateUpHalves) {
      std::string prefix = layer.name + ".experts.";
      int64_t f = s.expertFfn, h = s.hidden, e = s.experts;
      FfnDesc &ffn = layer.experts;
      ffn.ffnSize = f;
      ffn.activation = Activation::silu;
      ffn.gated = true;
      ffn.gateKey = ffn.upKey = prefix + s.keys.expertGate.str();
      ffn.downKey = prefix + s.keys.expertDown.str();
      // [E, F, H] from [E, H, 2F] (`chunk(2, dim=-1)`): element (f, h) at
      // h * 2F + f, and up F columns on.
      ffn.gateView = FusedViewDesc{{e, h, 2 * f}, 0, h * 2 * f, {1, 2 * f}};
      ffn.upView = FusedViewDesc{{e, h, 2 * f}, f, h * 2 * f, {1, 2 * f}};
      // [E, H, F] from [E, F, H]: read by column.
      ffn.downView = FusedViewDesc{{e, f, h}, 0, f * h, {1, h}};
      layer.shared = SharedExpertDesc{
          swiGlu(s.sharedFfn,
                 layer.name + "." + s.keys.sharedModule.str() + ".",
                 "gate_proj", "up_proj", "down_proj"),
          ""};
      model.layers.push_back(std::move(layer));
      continue;
    }
    if (s.keys.fused == KeyScheme::Fused::dbrxStacked) {
      std::string prefix = layer.name + ".experts.mlp.";
      int64_t f = s.expertFfn, h = s.hidden, e = s.experts;
      FfnDesc &ffn = layer.experts;
      ffn.ffnSize = f;
      ffn.activation = Activation::silu;
      ffn.gated = true;
      ffn.gateKey = prefix + s.keys.expertGate.str();
      ffn.upKey = prefix + s.keys.expertUp.str();
      ffn.downKey = prefix + s.keys.expertDown.str();
      ffn.gateView = ffn.upView = FusedViewDesc{{e * f, h}, 0, f * h, {h, 1}};
      ffn.downView = FusedViewDesc{{e * f, h}, 0, f * h, {1, h}};
      model.layers.push_back(std::move(layer));
      continue;
    }
    if (s.keys.fused == KeyScheme::Fused::graniteGateUpRows) {
      std::string prefix = layer.name + ".";
      layer.experts =
          fusedGateUpRows(s.expertFfn, s.hidden, s.experts,
                          prefix + s.keys.expertGate.str() + ".weight",
                          prefix + s.keys.expertDown.str() + ".weight");
      if (s.sharedFfn > 0) {
        std::string shared = base + s.keys.sharedModule.str() + ".";
        layer.shared = SharedExpertDesc{
            fusedGateUpRows(s.sharedFfn, s.hidden, std::nullopt,
                            shared + s.keys.expertGate.str() + ".weight",
                            shared + s.keys.expertDown.str() + ".weight"),
            "", s.sharedScale};
      }
      model.layers.push_back(std::move(layer));
      continue;
    }
    layer.experts =
        swiGlu(s.expertFfn, layer.name + ".experts.{e}.", s.keys.expertGate,
               s.keys.expertUp, s.keys.expertDown);
    if (s.sharedFfn > 0) {
      SharedExpertDesc shared;
      shared.ffn = swiGlu(s.sharedFfn,
                          layer.name + "." + s.keys.sharedModule.str() + ".",
                          "gate_proj", "up_proj", "down_proj");
      if (s.sharedSigmoidGate)
        shared.sigmoidGateKey = layer.name + ".shared_expert_gate.weight";
      layer.shared = std::move(shared);
    }
    model.layers.push_back(std::move(layer));
  }
  return model;
}

auto ::moe::import::readDType(ConfigFile &c, DType fallback) -> DType {
  std::optional<DType> result;
  for (StringRef key : {"dtype", "torch_dtype"}) {
    std::optional<std::string> name = c.getString(key);
    if (!name)
      continue;
    std::optional<DType> dtype = llvm::StringSwitch<std::optional<DType>>(*name)
                                     .Case("bfloat16", DType::bf16)
                                     .Case("float16", DType::f16)
                                     .Case("float32", DType::f32)
                                     .Default(std::nullopt);
    if (!dtype) {
      c.error(key) << "unsupported " << key << " '" << *name
                   << "': expected 'bfloat16', 'float16' or 'float32'";
      continue;
    }
    if (result && *result != *dtype)
      c.error(key) << "'" << key << "' = '" << *name
                   << "' disagrees with 'dtype'";
    result = dtype;
  }
  return result.value_or(fallback);
}

/// quantization_config: FP8 e4m3 with block scales (DeepSeek-V3/R1,
/// Qwen3-*-FP8) is read so that the model imports and plans; any other
/// method is an error at the key.
static std::optional<WeightQuantDesc> readQuantization(ConfigFile &c) {
  const llvm::json::Value *value = c.get("quantization_config");
  if (!value)
    return std::nullopt;
  const llvm::json::Object *q = value->getAsObject();
  if (!q) {
    c.error("quantization_config") << "'quantization_config' must be an object";
    return std::nullopt;
  }
  auto bad = [&]() -> InFlightDiagnostic {
    InFlightDiagnostic diag = c.error("quantization_config");
    diag << "quantization_config: ";
    return diag;
  };
  std::string method = q->getString("quant_method").value_or("").str();
  if (method == "mxfp4") {
    // gpt-oss: the experts' projections as e2m1 with e8m0 scales per 32.
    for (const auto &field : *q) {
      StringRef key = field.first;
      if (key != "quant_method" && key != "modules_to_not_convert") {
        bad() << "unknown field '" << key << "' for quant_method 'mxfp4'";
        return std::nullopt;
      }
    }
    WeightQuantDesc desc;
    desc.blockRows = 1;
    desc.blockCols = 32;
    desc.mxfp4 = true;
    return desc;
  }
  if (method != "fp8") {
    bad() << "quant_method '" << method
          << "' is not supported: only 'fp8' (e4m3 with block scales) and "
             "'mxfp4' import; dequantize the weights and drop the key";
    return std::nullopt;
  }
  for (const auto &field : *q) {
    StringRef key = field.first;
    if (key != "quant_method" && key != "fmt" && key != "activation_scheme" &&
        key != "weight_block_size" && key != "modules_to_not_convert") {
      bad() << "unknown field '" << key << "' for quant_method 'fp8'";
      return std::nullopt;
    }
  }
  if (std::optional<StringRef> fmt = q->getString("fmt"); fmt && *fmt != "e4m3")
    bad() << "fmt '" << *fmt << "' is not supported: expected 'e4m3'";
  // Static activation scales come with per-tensor input scales: another
  // format.
  if (std::optional<StringRef> scheme = q->getString("activation_scheme");
      scheme && *scheme != "dynamic")
    bad() << "activation_scheme '" << *scheme
          << "' is not supported: expected 'dynamic'";
  WeightQuantDesc desc;
  const llvm::json::Array *block = q->getArray("weight_block_size");
  std::optional<int64_t> rows, cols;
  if (block && block->size() == 2) {
    rows = (*block)[0].getAsInteger();
    cols = (*block)[1].getAsInteger();
  }
  if (!rows || !cols || *rows <= 0 || *cols <= 0) {
    bad() << "'weight_block_size' must be two positive integers (per-tensor "
             "fp8 is not supported)";
    return std::nullopt;
  }
  desc.blockRows = *rows;
  desc.blockCols = *cols;
  return desc;
}

//===----------------------------------------------------------------------===//
// The whole decoder: attention, norms, embedding and LM head
//===----------------------------------------------------------------------===//

/// HF `get_mscale` of YaRN.
static double yarnMscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

/// LongRoPE's factor lists and the attention factor of
/// _compute_longrope_parameters (both regimes; phimoe's mscales replace it).
static void readLongRope(ConfigFile &c, StringRef key,
                         const llvm::json::Object &params, RopeDesc &rope) {
  auto factors = [&](StringRef field) {
    std::vector<double> values;
    const llvm::json::Array *list =
        params.get(field) ? params.get(field)->getAsArray() : nullptr;
    if (!list || list->empty()) {
      c.error(key) << "longrope '" << key << "' needs '" << field
                   << "' as a non-empty list of numbers";
      return values;
    }
    for (const llvm::json::Value &v : *list) {
      std::optional<double> d = v.getAsNumber();
      if (!d || !std::isfinite(*d) || *d <= 0.0) {
        c.error(key) << "longrope '" << field << "' entry " << values.size()
                     << " must be a number > 0";
        return values;
      }
      values.push_back(*d);
    }
    return values;
  };
  rope.shortFactor = factors("short_factor");
  rope.longFactor = factors("long_factor");
  std::optional<double> original =
      params.getNumber("original_max_position_embeddings");
  if (!original)
    original = c.getNumber("original_max_position_embeddings");
  if (!original || *original < 1) {
    c.error(key) << "longrope needs original_max_position_embeddings >= 1 "
                    "(in '"
                 << key << "' or the config)";
    return;
  }
  rope.originalMaxPosition = static_cast<int64_t>(*original);
  double factor = params.getNumber("factor").value_or(
      static_cast<double>(c.getInt("max_position_embeddings", 0)) / *original);
  rope.factor = factor > 0.0 ? factor : 1.0;
  double attention =
      params.getNumber("attention_factor")
          .value_or(factor <= 1.0 ? 1.0
                                  : std::sqrt(1.0 + std::log(factor) /
                                                        std::log(*original)));
  rope.shortMscale = rope.longMscale = attention;
}

/// rope_theta and rope_scaling (transformers 4), or rope_parameters
/// (transformers 5), as HF's `ROPE_INIT_FUNCTIONS` read them.
/// `ntkAlphaDim` > 0 (Hunyuan-MoE's head_dim): "dynamic" with an `alpha`
/// is HunYuanMoEV1's fixed NTK stretch of the base, theta * alpha^(D / (D -
/// 2)), a default rope over that base.
static RopeDesc readRope(ConfigFile &c, double defaultTheta,
                         int64_t ntkAlphaDim = 0) {
  RopeDesc rope;
  rope.theta = c.getNumber("rope_theta", defaultTheta);
  StringRef key = c.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  const llvm::json::Value *value = c.get(key);
  if (!value || value->getAsNull())
    return rope;
  const llvm::json::Object *params = value->getAsObject();
  if (!params) {
    c.error(key) << "'" << key << "' must be an object";
    return rope;
  }
  auto number = [&](StringRef field, double fallback) {
    if (const llvm::json::Value *v = params->get(field))
      if (std::optional<double> d = v->getAsNumber())
        return *d;
    return fallback;
  };
  rope.theta = number("rope_theta", rope.theta);
  std::string type =
      params->getString("rope_type")
          .value_or(params->getString("type").value_or("default"))
          .str();
  if (type == "dynamic" && ntkAlphaDim > 2 && params->get("alpha")) {
    double alpha = number("alpha", 0.0);
    if (!(alpha > 0.0) || !std::isfinite(alpha)) {
      c.error(key) << "'" << key << "' alpha must be a number > 0";
      return rope;
    }
    double d = static_cast<double>(ntkAlphaDim);
    rope.theta *= std::pow(alpha, d / (d - 2.0));
    return rope;
  }
  std::optional<RopeType> parsed =
      llvm::StringSwitch<std::optional<RopeType>>(type)
          .Case("default", RopeType::standard)
          .Case("linear", RopeType::linear)
          .Case("llama3", RopeType::llama3)
          .Case("yarn", RopeType::yarn)
          .Case("longrope", RopeType::longrope)
          .Default(std::nullopt);
  if (!parsed) {
    c.error(key) << "unsupported rope_type '" << type << "' in '" << key
                 << "': expected 'default', 'linear', 'llama3', 'yarn' or "
                    "'longrope'";
    return rope;
  }
  rope.type = *parsed;
  rope.factor = number("factor", 1.0);
  rope.originalMaxPosition = static_cast<int64_t>(
      number("original_max_position_embeddings",
             static_cast<double>(c.getInt("max_position_embeddings", 0))));
  if (rope.type == RopeType::llama3) {
    rope.lowFreqFactor = number("low_freq_factor", 1.0);
    rope.highFreqFactor = number("high_freq_factor", 4.0);
  }
  if (rope.type == RopeType::yarn) {
    rope.betaFast = number("beta_fast", 32.0);
    rope.betaSlow = number("beta_slow", 1.0);
    if (const llvm::json::Value *t = params->get("truncate"))
      rope.truncate = t->getAsBoolean().value_or(true);
    double mscale = number("mscale", 0.0),
           mscaleAll = number("mscale_all_dim", 0.0);
    rope.attentionFactor =
        number("attention_factor", mscale != 0.0 && mscaleAll != 0.0
                                       ? yarnMscale(rope.factor, mscale) /
                                             yarnMscale(rope.factor, mscaleAll)
                                       : yarnMscale(rope.factor, 1.0));
  }
  if (rope.type == RopeType::longrope)
    readLongRope(c, key, *params, rope);
  return rope;
}

/// DeepSeek's multi-head latent attention (kv_lora_rank set): the low-rank
/// widths, the softmax scale (transformers' yarn_apply_mscale) and the
/// heads and rope into `a`.
static void readLatentAttention(ConfigFile &c, AttentionDesc &a) {
  LatentAttentionDesc m;
  a.loc = c.loc("kv_lora_rank");
  a.heads = c.requirePositive("num_attention_heads", kMaxWidth);
  m.kvLoraRank = c.requirePositive("kv_lora_rank", kMaxWidth);
  if (c.has("q_lora_rank") && !c.get("q_lora_rank")->getAsNull())
    m.qLoraRank = c.requirePositive("q_lora_rank", kMaxWidth);
  m.nopeDim = c.requirePositive("qk_nope_head_dim", kMaxWidth);
  m.ropeDim = c.requirePositive("qk_rope_head_dim", kMaxWidth);
  m.vDim = c.requirePositive("v_head_dim", kMaxWidth);
  if (m.ropeDim % 2 != 0)
    c.error("qk_rope_head_dim") << "qk_rope_head_dim = " << m.ropeDim
                                << " is odd: rotary embedding pairs dimensions";
  if (std::optional<int64_t> qk = c.getInt("qk_head_dim");
      qk && *qk != m.nopeDim + m.ropeDim)
    c.error("qk_head_dim") << "qk_head_dim = " << *qk
                           << " is not qk_nope_head_dim + qk_rope_head_dim = "
                           << m.nopeDim + m.ropeDim;
  // V3's rope_interleave = false rotates halves; only the interleaved pairs
  // (V2 always, V3's default) are implemented.
  if (c.has("rope_interleave") && !c.getBool("rope_interleave", true))
    c.error("rope_interleave")
        << "rope_interleave = false (rotate_half over the rope dims) is not "
           "supported by latent attention: only the interleaved layout is";
  if (c.getBool("attention_bias", false))
    c.error("attention_bias") << "attention_bias is not supported by latent "
                                 "attention: the q_a and kv_a projections "
                                 "have no bias";
  a.rope = readRope(c, 1e4);
  m.scale = 1.0 / std::sqrt(static_cast<double>(m.nopeDim + m.ropeDim));
  StringRef key = c.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  if (a.rope.type != RopeType::standard)
    if (const llvm::json::Object *params =
            c.get(key) ? c.get(key)->getAsObject() : nullptr)
      if (std::optional<double> all = params->getNumber("mscale_all_dim");
          all && *all != 0.0) {
        double mscale = yarnMscale(a.rope.factor, *all);
        m.scale *= mscale * mscale;
      }
  a.kvHeads = a.heads;
  a.headDim = m.nopeDim + m.ropeDim;
  a.latent = m;
}

/// gpt-oss's per-layer windows: `sliding_window` on the layers whose
/// `layer_types` entry is "sliding_attention", 0 (all positions) on the
/// "full_attention" ones.
static std::vector<int64_t> readSlidingWindows(ConfigFile &c) {
  int64_t layers = c.getInt("num_hidden_layers", 0);
  const llvm::json::Value *value = c.get("layer_types");
  const llvm::json::Array *types = value ? value->getAsArray() : nullptr;
  if (!types) {
    c.error("layer_types") << "layer_types must list 'sliding_attention' or "
                              "'full_attention' for each of the "
                           << layers << " layers";
    return {};
  }
  if (static_cast<int64_t>(types->size()) != layers) {
    c.error("layer_types") << "layer_types has " << types->size()
                           << " entries for " << layers << " layers";
    return {};
  }
  std::vector<int64_t> windows;
  int64_t window = -1; // read once, when a layer slides
  for (size_t i = 0; i < types->size(); ++i) {
    std::optional<llvm::StringRef> type = (*types)[i].getAsString();
    if (type && *type == "full_attention") {
      windows.push_back(0);
      continue;
    }
    if (!type || *type != "sliding_attention") {
      c.error(c.elementLoc("layer_types", i))
          << "layer_types[" << i
          << "] must be 'sliding_attention' or 'full_attention'";
      return {};
    }
    if (window < 0)
      window = c.requirePositive("sliding_window", kMaxWidth);
    windows.push_back(window);
  }
  return windows;
}

/// head_dim * partial_rotary_factor, truncated as transformers does: the
/// rotated dims of glm4_moe's heads (its config defaults the factor to 0.5);
/// the other families rotate whole heads and take no factor but 1. 0 for a
/// whole head. transformers 5 keeps the factor in rope_parameters, older
/// configs at the top level.
static int64_t readRotaryDim(ConfigFile &c, StringRef modelType,
                             int64_t headDim) {
  StringRef key = "partial_rotary_factor", where = key;
  std::optional<double> factor;
  if (const llvm::json::Value *params = c.get("rope_parameters"))
    if (const llvm::json::Object *object = params->getAsObject();
        object && object->get(key)) {
      factor = object->getNumber(key);
      where = "rope_parameters";
      if (!factor) {
        c.error(where) << "rope_parameters.partial_rotary_factor must be a "
                          "number";
        return 0;
      }
    }
  if (!factor && c.has(key))
    factor = c.getNumber(key, 1.0);
  bool partial = modelType == "glm4_moe";
  double value = factor.value_or(partial ? 0.5 : 1.0);
  if (!(value > 0.0 && value <= 1.0)) {
    c.error(where) << "partial_rotary_factor = " << shortNumber(value)
                   << " must be in (0, 1]";
    return 0;
  }
  if (value != 1.0 && !partial) {
    c.error(where) << "partial_rotary_factor = " << shortNumber(value)
                   << " is not supported for model_type '" << modelType
                   << "': its attention rotates whole heads";
    return 0;
  }
  int64_t rotary = static_cast<int64_t>(static_cast<double>(headDim) * value);
  if (rotary < 2 || rotary % 2 != 0) {
    c.error(where) << "head_dim " << headDim << " x partial_rotary_factor "
                   << shortNumber(value) << " = " << rotary
                   << " rotated dims: rotary embedding needs an even number "
                      ">= 2";
    return 0;
  }
  return rotary == headDim ? 0 : rotary;
}

/// dots1's windows: `layer_types` when given (as gpt-oss), else transformers'
/// derivation: layers from max_window_layers slide when sliding_window is
/// set (Dots1Config; use_sliding_window is not read).
static std::vector<int64_t> readDots1Windows(ConfigFile &c) {
  if (c.has("layer_types"))
    return readSlidingWindows(c);
  if (!c.has("sliding_window") || c.get("sliding_window")->getAsNull())
    return {};
  int64_t layers = c.getInt("num_hidden_layers", 0);
  int64_t first = c.getNonNegative("max_window_layers", 62, kMaxWidth);
  if (first >= layers)
    return {};
  std::vector<int64_t> windows(static_cast<size_t>(layers), 0);
  int64_t window = c.requirePositive("sliding_window", kMaxWidth);
  for (int64_t i = first; i < layers; ++i)
    windows[static_cast<size_t>(i)] = window;
  return windows;
}

/// DBRX's decoder (DbrxBlock): `transformer.wte`, per block
/// `norm_attn_norm.{norm_1, attn.{Wqkv, out_proj}, norm_2}` (LayerNorm
/// without bias, eps 1e-5), `transformer.norm_f`, `lm_head`. The attention's
/// keys nest in attn_config, checked field by field (errors at
/// `attn_config`).
static void readDbrxDecoder(ConfigFile &c, DecoderDesc &d, int64_t hidden) {
  d.norm = DecoderDesc::Norm::layer;
  d.normBias = false;
  d.normEpsilon = 1e-5; // nn.LayerNorm's default; the config has no key
  d.layerPrefix = "transformer.blocks.";
  d.inputNormName = "norm_attn_norm.norm_1";
  d.postAttentionNormName = "norm_attn_norm.norm_2";
  d.embeddingKey = "transformer.wte.weight";
  d.finalNormKey = "transformer.norm_f.weight";
  d.lmHeadKey = c.getBool("tie_word_embeddings", false) ? d.embeddingKey
                                                        : "lm_head.weight";
  AttentionDesc &a = d.attention;
  a.name = "norm_attn_norm.attn";
  a.stackedQkv = true;
  a.loc = c.loc("n_heads");
  a.heads = c.requirePositive("n_heads", kMaxWidth);
  if (hidden % a.heads != 0)
    c.error("n_heads") << "d_model = " << hidden << " does not split into "
                       << a.heads << " heads";
  else
    a.headDim = hidden / a.heads;
  if (a.headDim % 2 != 0)
    c.error("n_heads") << "head_dim = " << a.headDim
                       << " is odd: rotary embedding pairs dimensions";
  const llvm::json::Value *value = c.get("attn_config");
  const llvm::json::Object *attn =
      value && !value->getAsNull() ? value->getAsObject() : nullptr;
  if (value && !value->getAsNull() && !attn) {
    c.error("attn_config") << "'attn_config' must be an object";
    return;
  }
  auto field = [&](StringRef name) -> InFlightDiagnostic {
    InFlightDiagnostic diag = c.error("attn_config");
    diag << "attn_config." << name << ": ";
    return diag;
  };
  // Bookkeeping transformers 5 writes into every nested config.
  static constexpr StringLiteral kNestedIgnored[] = {
      "_name_or_path", "architectures", "chunk_size_feed_forward", "dtype",
      "id2label", "label2id", "is_encoder_decoder", "model_type",
      "output_attentions", "output_hidden_states", "problem_type",
      "return_dict", "torch_dtype", "transformers_version",
      // Training only: the attention dropout.
      "attn_pdrop"};
  if (attn)
    for (const auto &entry : *attn) {
      StringRef name = entry.first;
      if (!llvm::is_contained(kNestedIgnored, name) &&
          !llvm::is_contained({"kv_n_heads", "rope_theta", "clip_qkv"}, name))
        field(name) << "unknown field: it may change the attention";
    }
  auto get = [&](StringRef name) -> const llvm::json::Value * {
    const llvm::json::Value *v = attn ? attn->get(name) : nullptr;
    return v && !v->getAsNull() ? v : nullptr;
  };
  a.kvHeads = 1; // DbrxAttentionConfig's default
  if (const llvm::json::Value *v = get("kv_n_heads")) {
    std::optional<int64_t> n = v->getAsInteger();
    if (!n || *n < 1 || *n > kMaxWidth)
      field("kv_n_heads") << "must be an integer in [1, " << kMaxWidth << "]";
    else
      a.kvHeads = *n;
  }
  if (a.heads % a.kvHeads != 0)
    field("kv_n_heads") << "n_heads = " << a.heads
                        << " is not a multiple of kv_n_heads = " << a.kvHeads;
  if (const llvm::json::Value *v = get("clip_qkv")) {
    std::optional<double> clip = v->getAsNumber();
    if (!clip || !std::isfinite(*clip) || *clip <= 0.0)
      field("clip_qkv") << "must be a positive number or null";
    else
      a.clipQkv = *clip;
  }
  std::optional<double> theta;
  if (const llvm::json::Value *v = get("rope_theta")) {
    theta = v->getAsNumber();
    if (!theta || !std::isfinite(*theta) || *theta <= 0.0) {
      field("rope_theta") << "must be a positive number";
      theta.reset();
    }
  }
  // transformers 5 writes rope_parameters (and its rotary embedding reads
  // only them); older configs have attn_config.rope_theta alone.
  if (c.has("rope_parameters")) {
    a.rope = readRope(c, 1e4);
    if (theta && *theta != a.rope.theta)
      field("rope_theta") << shortNumber(*theta)
                          << " disagrees with rope_parameters' rope_theta = "
                          << shortNumber(a.rope.theta);
  } else {
    a.rope.theta = theta.value_or(1e4);
  }
}

// GraniteMoe(Shared)Model: embeddings times embedding_multiplier, softmax
// scale attention_multiplier (1 when absent, as transformers defaults it),
// `residual + attn * residual_multiplier`, logits / logits_scaling. The FFN
// stack's routed weights carry residual_multiplier already, and its reader
// (run first) has checked it.
static void readGraniteDecoder(ConfigFile &c, DecoderDesc &d) {
  d.embeddingScale = c.getPositiveNumber("embedding_multiplier", 1.0);
  d.attention.softmaxScale = c.getPositiveNumber("attention_multiplier", 1.0);
  d.attention.outputScale = c.getNumber("residual_multiplier", 1.0);
  d.logitsScale = 1.0 / c.getPositiveNumber("logits_scaling", 1.0);
}

/// Phi-3.5-MoE around the common decoder: LayerNorms with bias, q/k/v/o
/// biased together (attention_bias), lm_head_bias, one sliding window on
/// every layer when set, and longrope as transformers 5's
/// PhimoeRotaryEmbedding applies it.
static void readPhimoeDecoder(ConfigFile &c, DecoderDesc &d) {
  AttentionDesc &a = d.attention;
  d.norm = DecoderDesc::Norm::layer;
  a.oBias = a.qkvBias;
  if (c.getBool("lm_head_bias", false))
    d.lmHeadBiasKey = "lm_head.bias";
  if (c.has("sliding_window") && !c.get("sliding_window")->getAsNull())
    a.slidingWindows.assign(
        static_cast<size_t>(c.getInt("num_hidden_layers", 0)),
        c.requirePositive("sliding_window", kMaxWidth));
  RopeDesc &rope = a.rope;
  if (rope.type != RopeType::standard && rope.type != RopeType::longrope) {
    c.error(c.has("rope_parameters") ? "rope_parameters" : "rope_scaling")
        << "phimoe takes longrope or no rope scaling";
    return;
  }
  if (rope.type != RopeType::longrope)
    return;
  StringRef key = c.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  const llvm::json::Object *params = c.get(key)->getAsObject();
  for (StringRef field : {"short_mscale", "long_mscale"})
    if (!params->getNumber(field))
      c.error(key) << "phimoe's longrope needs '" << field << "' as a number";
  if (c.failed())
    return;
  // Its forward scales cos, sin by short_mscale or long_mscale (by the
  // call's largest position), but derives inv_freq with no sequence length,
  // so always from short_factor (transformers 5.25): long_factor is read
  // and checked, not applied.
  rope.shortMscale = *params->getNumber("short_mscale");
  rope.longMscale = *params->getNumber("long_mscale");
  rope.longFactor = rope.shortFactor;
}

/// The decoder around the FFN stack.
static DecoderDesc readDecoder(ConfigFile &c, StringRef modelType,
                               int64_t hidden) {
  DecoderDesc d;
  // Families whose decoder differs from the one this import builds.
  static constexpr std::pair<StringLiteral, StringLiteral> kFfnOnly[] = {
      {"llama4", "chunked attention, layers without RoPE, weightless QK "
                 "norm, attention temperature tuning"},
      {"llama4_text", "chunked attention, layers without RoPE, weightless "
                      "QK norm, attention temperature tuning"},
      {"qwen3_next", "Gated DeltaNet linear-attention layers, gated "
                     "attention output"},
      {"jamba", "Mamba layers between the attention layers"},
  };
  for (const auto &[family, why] : kFfnOnly)
    if (modelType == family) {
      c.error("model_type") << family
                            << " is not supported by the whole-model import ("
                            << why << "); import the FFN stack with "
                                      "--import-hf";
      return d;
    }
  d.vocab = c.requirePositive("vocab_size", kMaxWidth);
  if (modelType == "dbrx") {
    readDbrxDecoder(c, d, hidden);
    return d;
  }
  d.normEpsilon = c.getNumber("rms_norm_eps", 1e-6);
  d.embeddingKey = "model.embed_tokens.weight";
  d.finalNormKey = "model.norm.weight";
  d.lmHeadKey = c.getBool("tie_word_embeddings", false) ? d.embeddingKey
                                                        : "lm_head.weight";
  AttentionDesc &a = d.attention;
  if (c.has("kv_lora_rank")) {
    readLatentAttention(c, a);
    return d;
  }
  a.loc = c.loc("num_attention_heads");
  a.heads = c.requirePositive("num_attention_heads", kMaxWidth);
  a.kvHeads = c.getPositive("num_key_value_heads", a.heads, kMaxWidth);
  if (a.heads % a.kvHeads != 0)
    c.error("num_key_value_heads")
        << "num_attention_heads = " << a.heads
        << " is not a multiple of num_key_value_heads = " << a.kvHeads;
  if (c.has("head_dim") && !c.get("head_dim")->getAsNull())
    a.headDim = c.requirePositive("head_dim", kMaxWidth);
  else if (hidden % a.heads != 0)
    c.error("num_attention_heads")
        << "hidden_size = " << hidden << " does not split into " << a.heads
        << " heads (and head_dim is not set)";
  else
    a.headDim = hidden / a.heads;
  if (a.headDim % 2 != 0)
    c.error(c.has("head_dim") ? "head_dim" : "num_attention_heads")
        << "head_dim = " << a.headDim << " is odd: rotary embedding pairs "
        << "dimensions";
  // qwen2_moe: qkv_bias (transformers 5; always on before); the others:
  // attention_bias (default off).
  a.qkvBias = modelType == "qwen2_moe" ? c.getBool("qkv_bias", true)
                                       : c.getBool("attention_bias", false);
  // glm4_moe's q_norm / k_norm (use_qk_norm) are Qwen3's, per head.
  if (modelType == "qwen3_moe" || modelType == "dots1" ||
      (modelType == "glm4_moe" && c.getBool("use_qk_norm", false)))
    a.qkNorm = AttentionDesc::QkNorm::perHead;
  if (modelType == "dots1") {
    a.oBias = a.qkvBias; // attention_bias biases o_proj too
    a.slidingWindows = readDots1Windows(c);
  }
  if (modelType == "olmoe") {
    a.qkNorm = AttentionDesc::QkNorm::full;
    if (c.has("clip_qkv") && !c.get("clip_qkv")->getAsNull())
      c.error("clip_qkv") << "clip_qkv is not supported: the attention "
                             "projections are not clamped";
  }
  if (modelType.starts_with("granitemoe"))
    readGraniteDecoder(c, d);
  if (modelType == "gpt_oss") {
    // q/k/v and o biased (attention_bias), sinks in every layer.
    a.oBias = a.qkvBias;
    a.sinks = true;
    a.slidingWindows = readSlidingWindows(c);
  }
  if (modelType == "hunyuan_v1_moe") {
    // HunYuanMoEV1Attention: query_layernorm / key_layernorm per head on
    // the rotated q and k (always: transformers 5.25 reads no use_qk_norm);
    // attention_bias biases o too. It has no cross-layer attention.
    a.qkNorm = AttentionDesc::QkNorm::perHead;
    a.qNormName = "query_layernorm";
    a.kNormName = "key_layernorm";
    a.qkNormAfterRope = true;
    a.oBias = a.qkvBias;
    if (c.getBool("use_cla", false))
      c.error("use_cla") << "use_cla = true (cross-layer attention) is not "
                            "supported: transformers' HunYuanMoEV1 does not "
                            "implement it either";
  }
  if (modelType != "dots1" && c.getBool("use_sliding_window", false))
    c.error("use_sliding_window")
        << "sliding-window attention is not supported";
  a.rope = readRope(c, modelType == "mixtral" ? 1e6 : 1e4,
                    modelType == "hunyuan_v1_moe" ? a.headDim : 0);
  a.rope.rotaryDim = readRotaryDim(c, modelType, a.headDim);
  // ERNIE-4.5 rotates dims (2i, 2i + 1) together. Its use_bias (q/k/v/o
  // biases) is refused by the FFN stack's reader: its MLPs would have them.
  a.rope.interleaved = modelType == "ernie4_5_moe";
  size_t pairs = static_cast<size_t>(
      (a.rope.rotaryDim ? a.rope.rotaryDim : a.headDim) / 2);
  if (a.rope.type == RopeType::longrope && !c.failed() &&
      (a.rope.shortFactor.size() != pairs || a.rope.longFactor.size() != pairs))
    c.error(c.has("rope_parameters") ? "rope_parameters" : "rope_scaling")
        << "longrope short_factor and long_factor must hold one entry per "
           "rotated dimension pair, "
        << pairs << ", got " << a.rope.shortFactor.size() << " and "
        << a.rope.longFactor.size();
  if (modelType == "phimoe")
    readPhimoeDecoder(c, d);
  return d;
}

auto ::moe::import::readHFConfig(ConfigFile &c, bool wholeModel)
    -> std::optional<ModelDesc> {
  std::string modelType = c.requireString("model_type");
  if (c.failed())
    return std::nullopt;
  const Family *family = llvm::find_if(
      kFamilies, [&](const Family &f) { return f.modelType == modelType; });
  if (family == std::end(kFamilies)) {
    InFlightDiagnostic diag = c.error("model_type");
    diag << "unsupported model_type '" << modelType << "': expected one of ";
    llvm::interleave(
        kFamilies, [&](const Family &f) { diag << "'" << f.modelType << "'"; },
        [&] { diag << ", "; });
    return std::nullopt;
  }

  HFStack stack;
  DType dtype = readDType(c, DType::f32);
  auto ignore = [](ConfigFile &config, ArrayRef<StringLiteral> keys) {
    config.ignore(llvm::to_vector(
        llvm::map_range(keys, [](StringLiteral s) { return StringRef(s); })));
  };
  // The text model's keys: the top level, or the family's nested object.
  std::unique_ptr<ConfigFile> nested;
  if (!family->textConfig.empty()) {
    nested = c.nested(family->textConfig);
    if (!nested)
      return std::nullopt;
    std::string inner = nested->requireString("model_type");
    if (!nested->failed() && inner != family->textModelType)
      nested->error("model_type")
          << "'" << family->textConfig << ".model_type' must be '"
          << family->textModelType << "' for model_type '" << modelType
          << "', got '" << inner << "'";
    if (wholeModel)
      readDecoder(c, modelType, 1);
    ignore(c, kIgnoredEverywhere);
    ignore(c, family->outerIgnored);
    c.checkUnknownKeys(modelType);
  }
  ConfigFile &text = nested ? *nested : c;
  // Every family's experts are SwiGLU with silu.
  std::string act = text.getString("hidden_act", "silu");
  if (act != "silu")
    text.error("hidden_act")
        << "unsupported hidden_act '" << act << "' for " << modelType
        << ": the experts are SwiGLU with 'silu'";
  std::optional<WeightQuantDesc> quant = readQuantization(c);
  family->read(text, stack);
  std::optional<DecoderDesc> decoder;
  if (wholeModel && !nested)
    decoder = readDecoder(c, modelType, stack.hidden);
  ignore(text, kIgnoredEverywhere);
  ignore(text, family->ignored);
  text.checkUnknownKeys(modelType);
  if (c.failed() || text.failed())
    return std::nullopt;
  checkRouting(text, stack);
  if (text.failed())
    return std::nullopt;

  ModelDesc model = describe(text, stack);
  model.modelType = modelType;
  model.dtype = dtype;
  model.weightQuant = quant;
  model.decoder = decoder;
  return model;
}
