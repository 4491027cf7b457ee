//===- MoeBase.td - moe dialect definition -----------------*- tablegen -*-===//
//
// The graph-level dialect of moe-mlir: Mixture-of-Experts FFN stacks on
// tensors with value semantics. See docs/Dialects/MoeRationale.md.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEBASE_TD
#define MOE_DIALECT_MOE_IR_MOEBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Moe_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Mixture-of-Experts layers at the tensor level";
  let description = [{
    The `moe` dialect describes the FFN stack of a Mixture-of-Experts
    transformer: routers, gates with every routing policy of the model
    families we import (Mixtral, Qwen-MoE, DeepSeek-V2/V3, OLMoE, DeepSpeed
    PR-MoE), token dispatch into an expert-major buffer, grouped experts,
    combine, residual-MoE mixing, shared experts and the all-to-all exchange
    that expert parallelism inserts. Every op works on tensors with value
    semantics; the parallelism pass rewrites shapes to per-rank shapes.

    A model is a `func.func` over `x: tensor<tokens x hidden>` whose other
    arguments are weights, each carrying its safetensors key in the
    `moe.weight` argument attribute. Stacked expert weights (`[E, ...]`) record
    a key pattern with an `{e}` placeholder for the expert index.
  }];
  let useDefaultAttributePrinterParser = 1;
  let useDefaultTypePrinterParser = 1;
  let hasConstantMaterializer = 1;
  let hasRegionArgAttrVerify = 1;
  let hasOperationAttrVerify = 1;
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
  let extraClassDeclaration = [{
    /// Argument attribute holding a weight's safetensors key (or key pattern).
    static constexpr ::llvm::StringLiteral kWeightAttrName = "moe.weight";
    /// Module attribute naming the model family the module was imported from.
    static constexpr ::llvm::StringLiteral kModelTypeAttrName = "moe.model_type";
    /// Placeholder for the expert index in a stacked weight's key pattern.
    static constexpr ::llvm::StringLiteral kExpertPlaceholder = "{e}";
    /// Argument attribute `array<i64: G, P, p>`: the weight `[R, ...]` is
    /// not stored alone but as part p of P in each of G row groups of its
    /// key's tensor `[G * P * R/G, ...]` (a Megatron GPT's fused QKV: G
    /// heads, each its q, k and v rows); loaded as that part.
    static constexpr ::llvm::StringLiteral kWeightRowsAttrName =
        "moe.weight_rows";
    /// Argument attribute: how a weight is split over its layer's plan.
    static constexpr ::llvm::StringLiteral kShardAttrName = "moe.shard";
    /// Argument attribute: the weight is a strided view of one fused tensor
    /// (a #moe.fused_view).
    static constexpr ::llvm::StringLiteral kFusedViewAttrName =
        "moe.fused_view";
    /// Module attribute: the device mesh the module is compiled for.
    static constexpr ::llvm::StringLiteral kMeshAttrName = "moe.mesh";
    /// Layer attribute: the layer's parallel plan.
    static constexpr ::llvm::StringLiteral kPlanAttrName = "moe.plan";
    /// Module attribute: the plan table moe-assign-parallelism chose.
    static constexpr ::llvm::StringLiteral kPlanTableAttrName = "moe.plan_table";
    /// Module attribute: the ranks over which a decoder's attention layers
    /// split their heads (1: data parallel), as moe-assign-parallelism chose.
    static constexpr ::llvm::StringLiteral kAttentionTpAttrName =
        "moe.attention_tp";
    /// Module attribute: the checkpoint stores the FFN projections (experts,
    /// shared experts, dense MLPs; not routers) block-quantized:
    /// {format = "fp8_e4m3", block = array<i64: R, C>}, one f32 scale per
    /// R x C block, or {format = "mxfp4", block = array<i64: 1, 32>}, e2m1
    /// values with one e8m0 exponent per 32. The weight arguments keep the
    /// activation dtype.
    static constexpr ::llvm::StringLiteral kWeightQuantAttrName =
        "moe.weight_quantization";
  }];
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Moe_ScoringFunc : I32EnumAttr<"ScoringFunc",
    "how router logits become expert scores", [
      I32EnumAttrCase<"softmax", 0>,
      I32EnumAttrCase<"sigmoid", 1>,
      // PhiMoE's sparsemixer (eval): scores are the logits, top-2 by logit,
      // each weight a softmax over the logits within jitter_eps of that
      // choice (the gate computes the weights when it selects).
      I32EnumAttrCase<"sparsemixer", 2>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def Moe_GroupScore : I32EnumAttr<"GroupScore",
    "score of an expert group in group-limited routing", [
      // DeepSeek-V2 `group_limited_greedy`: the group's best score.
      I32EnumAttrCase<"max", 0>,
      // DeepSeek-V3 `noaux_tc`: the sum of the group's two best scores.
      I32EnumAttrCase<"top2_sum", 1>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def Moe_Normalization : I32EnumAttr<"Normalization",
    "how the selected expert weights are normalised", [
      I32EnumAttrCase<"none", 0>,
      // Divide by the sum of the k selected weights (+ epsilon).
      I32EnumAttrCase<"selected", 1>,
      // Divide by the sum of the choices that survived capacity (DeepSpeed).
      I32EnumAttrCase<"kept", 2>,
      // Divide by max(sum of the k selected, epsilon) (ERNIE-4.5).
      I32EnumAttrCase<"selected_clamped", 3>,
      // Divide by the p-norm of the k selected, p = norm_p (DBRX).
      I32EnumAttrCase<"pnorm", 4>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def Moe_DropOrder : I32EnumAttr<"DropOrder",
    "which choices keep their capacity slot when an expert overflows", [
      // All first choices in token order, then all second choices, ...
      I32EnumAttrCase<"choice_major", 0>,
      // All k choices of a token together, in token order.
      I32EnumAttrCase<"token_major", 1>,
      // Per expert, the highest-probability choices.
      I32EnumAttrCase<"probs", 2>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def Moe_WeightSite : I32EnumAttr<"WeightSite",
    "where a choice's routing weight multiplies the expert FFN", [
      // The expert's output, at the combine (every family but Llama 4).
      I32EnumAttrCase<"output", 0>,
      // The expert's input, at the dispatch (Llama 4); combine sums.
      I32EnumAttrCase<"input", 1>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def Moe_Activation : I32EnumAttr<"Activation", "FFN activation function", [
      I32EnumAttrCase<"silu", 0>,
      I32EnumAttrCase<"gelu", 1>,
      I32EnumAttrCase<"gelu_tanh", 2>,
      I32EnumAttrCase<"relu", 3>,
      // gpt-oss: (clamp(up) + 1) * g * sigmoid(alpha * g), g = min(gate,
      // limit); gated experts only, with swiglu_alpha and swiglu_limit.
      I32EnumAttrCase<"swiglu_clamped", 4>
    ]> {
  let cppNamespace = "::mlir::moe";
}

def Moe_AllToAllDirection : I32EnumAttr<"AllToAllDirection",
    "direction of an expert-parallel exchange", [
      // [E, C, H] on every rank -> [E / G, G * C, H]: tokens to their experts.
      I32EnumAttrCase<"to_experts", 0>,
      // The inverse: expert outputs back to the ranks that own the tokens.
      I32EnumAttrCase<"from_experts", 1>
    ]> {
  let cppNamespace = "::mlir::moe";
}

def Moe_AllToAllVariant : I32EnumAttr<"AllToAllVariant",
    "algorithm of an expert-parallel exchange", [
      I32EnumAttrCase<"flat", 0>,
      // Intra-node exchange, layout transform, then inter-node exchange.
      I32EnumAttrCase<"hierarchical", 1>
    ]> {
  let cppNamespace = "::mlir::moe";
}

def Moe_ShardAxis : I32EnumAttr<"ShardAxis",
    "the parallel axis of a layer plan that splits a tensor dimension", [
      I32EnumAttrCase<"none", 0>,
      // Split over the expert-parallel ranks.
      I32EnumAttrCase<"ep", 1>,
      // Split over the tensor-parallel (expert-slicing) ranks.
      I32EnumAttrCase<"tp", 2>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def Moe_RopeType : I32EnumAttr<"RopeType",
    "how rotary frequencies are scaled (Hugging Face rope_type)", [
      I32EnumAttrCase<"standard", 0, "default">,
      // inv_freq / factor.
      I32EnumAttrCase<"linear", 1>,
      // Llama 3.1: long wavelengths / factor, short kept, smooth between.
      I32EnumAttrCase<"llama3", 2>,
      // YaRN (DeepSeek-V3): ramp between interpolation and extrapolation,
      // cos/sin times attention_factor.
      I32EnumAttrCase<"yarn", 3>,
      // LongRoPE (Phi-3): inv_freq / short_ or long_factor[i] by the call's
      // largest position, cos/sin times short_ or long_mscale.
      I32EnumAttrCase<"longrope", 4>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

#endif // MOE_DIALECT_MOE_IR_MOEBASE_TD
