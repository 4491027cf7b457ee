//===- ModelDescription.h - what every importer produces --------*- C++ -*-===//
//
// The one in-memory description of a model's FFN stack that both importers
// (Hugging Face config.json, DeepSpeed PR-MoE) fill in and that the one module
// builder (ModuleBuilder.h) turns into IR. Family-specific knowledge ends
// here: the builder never looks at a model type.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_IMPORT_MODELDESCRIPTION_H
#define MOE_COMPILER_IMPORT_MODELDESCRIPTION_H

#include "dialects/moe/IR/MoeDialect.h"

#include "mlir/IR/Location.h"

#include <optional>
#include <string>
#include <vector>

namespace mlir::moe::import {

/// Storage type of activations and weights.
enum class DType { f32, f16, bf16 };

enum class LayerKind {
  /// Router, gate, dispatch, experts, combine (+ shared experts).
  moe,
  /// PR-MoE: the MoE chain and a dense MLP mixed by a learned coefficient.
  residualMoe,
  /// A plain MLP.
  dense,
};

/// Where one projection lies in a tensor that stores several fused
/// (`#moe.fused_view`): element i of expert e is element
/// `offset + e * expertStride + sum_d i_d * strides[d]` of `shape`.
struct FusedViewDesc {
  std::vector<int64_t> shape;
  int64_t offset = 0, expertStride = 0;
  std::vector<int64_t> strides;
};

/// One FFN (a dense MLP, or a stack of E experts) and where its weights live.
/// For experts every key holds the `{e}` placeholder and every shape gets a
/// leading E.
struct FfnDesc {
  int64_t ffnSize = 0;
  mlir::moe::Activation activation = mlir::moe::Activation::silu;
  /// SwiGLU `down(act(gate(x)) * up(x))` when true, `down(act(up(x)))` else.
  bool gated = true;
  /// fc1 / fc2 biases (DeepSpeed GPT); never with `gated` in the families
  /// we import, but the builder does not care.
  bool biases = false;
  std::string gateKey, upKey, downKey, upBiasKey, downBiasKey;
  /// Set where the key names a fused tensor the projection is a view of
  /// (Granite's input_linear holds gate and up): no `{e}` in the key then.
  std::optional<FusedViewDesc> gateView, upView, downView;
  /// A gated FFN's gate bias (gpt-oss), none when empty; its up and down
  /// biases are upBiasKey/downBiasKey under `biases`.
  std::string gateBiasKey;
  std::optional<FusedViewDesc> gateBiasView, upBiasView, downBiasView;
  /// swiglu_clamped's alpha and limit (unused by other activations).
  double swigluAlpha = 0.0, swigluLimit = 0.0;
};

/// The gate's policy, field for field the `#moe.routing` attribute.
struct RoutingDesc {
  mlir::moe::ScoringFunc scoring = mlir::moe::ScoringFunc::softmax;
  int64_t topK = 1;
  int64_t nGroup = 1;
  int64_t topkGroup = 1;
  mlir::moe::GroupScore groupScore = mlir::moe::GroupScore::max;
  mlir::moe::Normalization normalize = mlir::moe::Normalization::none;
  double normEpsilon = 0.0;
  double routedScalingFactor = 1.0;
  /// 0 is dropless.
  double capacityFactor = 0.0;
  int64_t minCapacity = 0;
  mlir::moe::DropOrder dropOrder = mlir::moe::DropOrder::choice_major;
  /// The p of normalize = pnorm.
  double normP = 1.0;
  /// The jitter_eps of scoring = sparsemixer.
  double jitterEps = 0.0;
  /// Llama 4: the weight scales the expert's input (at the dispatch).
  mlir::moe::WeightSite weights = mlir::moe::WeightSite::output;
};

struct SharedExpertDesc {
  FfnDesc ffn;
  /// `[1, H]` sigmoid gate of the shared output (Qwen-MoE); empty for a plain
  /// add (DeepSeek).
  std::string sigmoidGateKey;
  /// Multiplies the shared output before the add (Granite's
  /// residual_multiplier, which the routed weights carry too).
  double scale = 1.0;
};

struct LayerDesc {
  int64_t index = 0;
  LayerKind kind = LayerKind::dense;
  /// Module path of the layer's FFN, e.g. `model.layers.3.mlp`: the name of
  /// the ops' locations.
  std::string name;
  /// Where in the config the layer's shape was decided.
  mlir::LocationAttr loc;

  // moe and residualMoe.
  int64_t numExperts = 0;
  RoutingDesc routing;
  /// Location of the routing keys, for diagnostics about the policy.
  mlir::LocationAttr routingLoc;
  std::string routerKey;
  /// The router's bias `[E]` (gpt-oss); may be empty.
  std::string routerBiasKey;
  /// Selection-only per-expert bias, f32 `[E]` (DeepSeek-V3); may be empty.
  std::string correctionBiasKey;
  FfnDesc experts;
  std::optional<SharedExpertDesc> shared;

  // dense (the layer's MLP) and residualMoe (the residual MLP).
  FfnDesc mlp;

  // residualMoe: coefficient Linear `[2, H]` + `[2]`.
  std::string coefWeightKey, coefBiasKey;
};

/// FFN projections stored as fp8 e4m3 with one f32 scale per block (the
/// checkpoint's quantization_config); routers keep their dtype.
struct WeightQuantDesc {
  int64_t blockRows = 128, blockCols = 128;
  /// MXFP4 (quant_method mxfp4): e2m1 values, one e8m0 exponent per 1 x 32
  /// block, stored as "<key>_blocks" / "<key>_scales" (gpt-oss).
  bool mxfp4 = false;
};

/// Hugging Face rope_theta / rope_scaling (or transformers 5's
/// rope_parameters), field for field the `#moe.rope` attribute.
struct RopeDesc {
  mlir::moe::RopeType type = mlir::moe::RopeType::standard;
  double theta = 10000.0, factor = 1.0, lowFreqFactor = 1.0,
         highFreqFactor = 4.0, betaFast = 32.0, betaSlow = 1.0,
         attentionFactor = 1.0;
  int64_t originalMaxPosition = 0;
  bool truncate = true;
  /// longrope: per-pair factors (head_dim / 2 each) and what multiplies cos
  /// and sin in either regime.
  std::vector<double> shortFactor, longFactor;
  double shortMscale = 1.0, longMscale = 1.0;
  /// The leading dims of a head that rotate; 0: all (partial_rotary_factor).
  int64_t rotaryDim = 0;
  /// Pairs (2i, 2i + 1) instead of rotate_half's (ERNIE-4.5).
  bool interleaved = false;
};

/// DeepSeek multi-head latent attention (MLA): the low-rank projections
/// and head widths of `moe.latent_attention`. Its heads and rope are the
/// AttentionDesc's.
struct LatentAttentionDesc {
  /// 0: a plain q_proj (DeepSeek-V2-Lite); else q_a_proj's rank.
  int64_t qLoraRank = 0;
  int64_t kvLoraRank = 1, nopeDim = 1, ropeDim = 2, vDim = 1;
  /// Softmax scale: (nope + rope)^-0.5, times YaRN's mscale^2.
  double scale = 1.0;
};

/// Multi-head / grouped-query attention of every decoder layer (the keys
/// under `model.layers.{i}.self_attn.`).
struct AttentionDesc {
  int64_t heads = 1, kvHeads = 1, headDim = 1;
  bool qkvBias = false;
  /// `o_proj.bias` (gpt-oss's attention_bias), added after the op so that
  /// tensor-parallel attention sums its partial outputs first.
  bool oBias = false;
  /// Per-head softmax sinks `sinks` `[heads]` (gpt-oss).
  bool sinks = false;
  /// Layer i attends to its last slidingWindows[i] positions (0: all);
  /// empty: no layer has a window.
  std::vector<int64_t> slidingWindows;
  /// q/k RMSNorm weights: none, per head (`[D]`), or over the whole
  /// projection (`[heads * D]`).
  enum class QkNorm { none, perHead, full } qkNorm = QkNorm::none;
  /// The q/k norm's modules under self_attn, and whether it follows the
  /// rope (Hunyuan-MoE's query_layernorm / key_layernorm) or precedes it.
  std::string qNormName = "q_norm", kNormName = "k_norm";
  bool qkNormAfterRope = false;
  RopeDesc rope;
  mlir::LocationAttr loc;
  /// The module under each layer: `self_attn` (q_proj, k_proj, v_proj,
  /// o_proj) or the Megatron GPT's `self_attention`.
  std::string name = "self_attn";
  /// Megatron's `query_key_value` (rows [heads, 3, D]: each head's q, k and
  /// v together, biased) and `dense` (with a bias) instead of the four
  /// projections; needs kvHeads == heads.
  bool fusedQkv = false;
  /// DBRX's `Wqkv` (rows [q; k; v]: heads·D, then kvHeads·D twice, no
  /// bias), each part loaded as a view of its rows, and `out_proj`.
  bool stackedQkv = false;
  /// q, k and v clamped to [-clipQkv, clipQkv] after the projections
  /// (DBRX's clip_qkv); 0: not clamped.
  double clipQkv = 0.0;
  /// The softmax scale (Granite's attention_multiplier); unset: 1/sqrt(D).
  std::optional<double> softmaxScale;
  /// Multiplies the attention's output before the residual add (Granite's
  /// residual_multiplier; the FFN's carries it in its routed weights).
  double outputScale = 1.0;
  /// Rotary positions (`rope`); none when the decoder adds learned
  /// absolute positions to its embedding.
  bool rotary = true;
  /// Set for multi-head latent attention (DeepSeek); headDim, kvHeads and
  /// the bias and norm fields are then unused.
  std::optional<LatentAttentionDesc> latent;
};

/// What surrounds the FFN stack in the whole decoder: embedding, per-layer
/// norms and attention, final norm and LM head.
struct DecoderDesc {
  int64_t vocab = 1;
  double normEpsilon = 1e-6;
  AttentionDesc attention;
  /// `lm_head.weight`, or the embedding's key when tie_word_embeddings.
  std::string embeddingKey, finalNormKey, lmHeadKey;
  /// Multiply the token embeddings and the logits (Granite's
  /// embedding_multiplier and 1 / logits_scaling).
  double embeddingScale = 1.0, logitsScale = 1.0;
  /// The LM head's bias (phimoe's lm_head_bias); empty: none.
  std::string lmHeadBiasKey;
  /// RMSNorm (a weight) or LayerNorm (a weight and a bias: the GPT's
  /// `<name>.bias` beside each `<name>.weight`).
  enum class Norm { rms, layer } norm = Norm::rms;
  /// LayerNorm only: whether it has the `.bias` (DBRX's has none).
  bool normBias = true;
  /// The two per-layer norms' modules under the layer.
  std::string inputNormName = "input_layernorm",
              postAttentionNormName = "post_attention_layernorm";
  /// Layer i's keys start with `layerPrefix` + i + ".".
  std::string layerPrefix = "model.layers.";
  /// Learned absolute positions `[maxPositions, H]` added to the token
  /// embedding; empty: none.
  std::string positionEmbeddingKey;
  int64_t maxPositions = 0;
  /// Where maxPositions was set (the ops' location: a too long sequence is
  /// reported there).
  mlir::LocationAttr positionsLoc;
};

struct ModelDesc {
  std::string modelType;
  /// Set for the whole decoder (--import-hf-model); the FFN stack alone
  /// otherwise.
  std::optional<DecoderDesc> decoder;
  int64_t hiddenSize = 0;
  DType dtype = DType::f32;
  std::optional<WeightQuantDesc> weightQuant;
  std::vector<LayerDesc> layers;
  /// The config file itself (line 1, column 1).
  mlir::LocationAttr loc;
};

} // namespace mlir::moe::import

#endif // MOE_COMPILER_IMPORT_MODELDESCRIPTION_H
