//===- MoeOps.td - moe dialect operations ------------------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEOPS_TD
#define MOE_DIALECT_MOE_IR_MOEOPS_TD

include "dialects/moe/IR/MoeAttrs.td"
include "dialects/moe/IR/MoeTypes.td"
include "mlir/IR/OpAsmInterface.td"
include "mlir/IR/Properties.td"
include "mlir/IR/RegionKindInterface.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

class Moe_Op<string mnemonic, list<Trait> traits = []>
    : Op<Moe_Dialect, mnemonic, traits>;

// Activations and weights: bf16 and fp16 storage, or fp32.
def Moe_FloatTensor : RankedTensorOf<[F32, F16, BF16]>;
def Moe_F32Tensor : RankedTensorOf<[F32]>;
def Moe_I32Tensor : RankedTensorOf<[I32]>;

//===----------------------------------------------------------------------===//
// Structure
//===----------------------------------------------------------------------===//

def Moe_LayerOp : Moe_Op<"layer", [
    RecursiveMemoryEffects, SingleBlock,
    AllTypesMatch<["input", "result"]>,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmBlockArgumentNames"]>]> {
  let summary = "one FFN block of the transformer, with its residual connection";
  let description = [{
    The body computes the block's FFN (an MoE layer, a residual-MoE layer or a
    dense MLP) from its argument, the layer input. The result is
    `input + yielded`: the transformer's residual connection. `index` is the
    decoder layer the block came from; each layer has its own expert count,
    so pyramid models need nothing special.

    ```mlir
    %y = moe.layer 3 (%h = %x) : tensor<?x4096xbf16> {
      %f = moe.dense_ffn silu %h gate %wg up %wu down %wd : ...
      moe.yield %f : tensor<?x4096xbf16>
    }
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, I64Prop:$index);
  let results = (outs Moe_FloatTensor:$result);
  let regions = (region SizedRegion<1>:$body);
  let hasCustomAssemblyFormat = 1;
  let hasRegionVerifier = 1;
  let extraClassDeclaration = [{
    /// The layer input as seen inside the body.
    ::mlir::BlockArgument getBodyInput() { return getBody().getArgument(0); }
    YieldOp getYield();
  }];
}

def Moe_YieldOp : Moe_Op<"yield", [
    Pure, ReturnLike, Terminator, HasParent<"LayerOp">]> {
  let summary = "the FFN output of a layer";
  let arguments = (ins Moe_FloatTensor:$value);
  let assemblyFormat = "$value attr-dict `:` type($value)";
}

//===----------------------------------------------------------------------===//
// Routing
//===----------------------------------------------------------------------===//

def Moe_RouterOp : Moe_Op<"router", [
    Pure, InferTypeOpAdaptor]> {
  let summary = "router logits: x · Wg^T (+ b), in fp32";
  let description = [{
    `input` is `[S, H]`, `weight` is `[E, H]` (torch Linear layout), `bias`
    `[E]`. The logits are computed and returned in fp32 whatever the
    activation dtype, as every reference implementation does.

    ```mlir
    %logits = moe.router %x, %wg : tensor<?x4096xbf16>, tensor<8x4096xbf16>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_FloatTensor:$weight,
                       Optional<Moe_FloatTensor>:$bias);
  let results = (outs Moe_F32Tensor:$logits);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $bias^)? attr-dict `:` type($input) `,`
    type($weight) (`,` type($bias)^)?
  }];
  let hasVerifier = 1;
}

def Moe_GateOp : Moe_Op<"gate", [
    Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "expert selection: scores, top-k, weights, capacity slots";
  let description = [{
    Applies the routing policy `routing` to fp32 router logits `[S, E]`:
    scoring (softmax or sigmoid), the optional selection-only correction bias
    `[E]`, group-limited selection, top-k with ties to the lower expert index,
    normalisation, scaling, and capacity. It returns a mapping table, never a
    one-hot tensor:

    - `expert_ids [S, k]`: the chosen experts, best first;
    - `weights [S, k]`: their unbiased, normalised, scaled scores; 0 if dropped;
    - `slots [S, k]`: the row of the expert's buffer the choice fills; -1 if
      dropped;
    - `counts [E]`: kept choices per expert;
    - `capacity`: rows per expert buffer. `max(min_capacity,
      ceil(k * S / E * capacity_factor))`, or the largest count when dropless.

    The exact semantics, step by step, are in docs/Dialects/MoeRationale.md.

    ```mlir
    %ids, %w, %slots, %counts, %cap = moe.gate %logits correction %bias
        #moe.routing<scoring = sigmoid, top_k = 8, n_group = 8, topk_group = 4,
                     group_score = top2_sum, normalize = selected>
        : tensor<?x256xf32>, tensor<256xf32>
    ```
  }];
  let arguments = (ins Moe_F32Tensor:$logits,
                       Optional<Moe_F32Tensor>:$correction_bias,
                       Moe_RoutingAttr:$routing);
  let results = (outs Moe_I32Tensor:$expert_ids, Moe_F32Tensor:$weights,
                      Moe_I32Tensor:$slots, Moe_I32Tensor:$counts,
                      Index:$capacity);
  let assemblyFormat = [{
    $logits (`correction` $correction_bias^)? $routing attr-dict
    `:` type($logits) (`,` type($correction_bias)^)?
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    int64_t getNumExperts() {
      return getLogits().getType().getDimSize(1);
    }
  }];
}

//===----------------------------------------------------------------------===//
// Token movement
//===----------------------------------------------------------------------===//

def Moe_DispatchOp : Moe_Op<"dispatch", [
    Pure, AllTypesMatch<["expert_ids", "slots"]>,
    OptionalTypesMatchWith<"weights are the fp32 counterpart of expert_ids",
                   "expert_ids", "weights",
                   "::mlir::RankedTensorType::get(::llvm::cast<::mlir::RankedTensorType>($_self).getShape(), ::mlir::Float32Type::get($_self.getContext()))">]> {
  let summary = "gather tokens into the expert-major buffer [E, C, H]";
  let description = [{
    `result[expert_ids[s, j], slots[s, j]] = input[s]` for every kept choice;
    rows no choice fills are zero. `capacity` is the gate's `C`. With
    `weights` (the gate's, when its routing says `weights = input`) the row
    is `input[s] * weights[s, j]`, computed in fp32 and rounded to the
    result's element type.

    ```mlir
    %buf = moe.dispatch %x, %ids, %slots, %cap
        : tensor<?x4096xbf16>, tensor<?x2xi32> -> tensor<8x?x4096xbf16>
    %scaled = moe.dispatch %x, %ids, %slots, %cap weights %w
        : tensor<?x5120xbf16>, tensor<?x1xi32> -> tensor<16x?x5120xbf16>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_I32Tensor:$expert_ids,
                       Moe_I32Tensor:$slots, Index:$capacity,
                       Optional<Moe_F32Tensor>:$weights);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $expert_ids `,` $slots `,` $capacity (`weights` $weights^)?
    attr-dict `:` type($input) `,` type($expert_ids) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Moe_CombineOp : Moe_Op<"combine", [
    Pure, AllTypesMatch<["expert_ids", "slots"]>,
    OptionalTypesMatchWith<"weights are the fp32 counterpart of expert_ids",
                   "expert_ids", "weights",
                   "::mlir::RankedTensorType::get(::llvm::cast<::mlir::RankedTensorType>($_self).getShape(), ::mlir::Float32Type::get($_self.getContext()))">,
    InferTypeOpAdaptor]> {
  let summary = "scatter expert outputs back to tokens, weighted";
  let description = [{
    `result[s] = sum_j weights[s, j] * input[expert_ids[s, j], slots[s, j]]`
    over the kept choices (`slots >= 0`), accumulated in fp32. Without
    `weights` every kept choice has weight 1: the rows were weighted at the
    dispatch (`#moe.routing<..., weights = input>`).

    ```mlir
    %y = moe.combine %out, %ids, %slots, %w
        : tensor<8x?x4096xbf16>, tensor<?x2xi32>
    %sum = moe.combine %out, %ids, %slots
        : tensor<16x?x5120xbf16>, tensor<?x1xi32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_I32Tensor:$expert_ids,
                       Moe_I32Tensor:$slots, Optional<Moe_F32Tensor>:$weights);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $expert_ids `,` $slots (`,` $weights^)? attr-dict `:`
    type($input) `,` type($expert_ids)
  }];
  let hasVerifier = 1;
}

def Moe_AllToAllOp : Moe_Op<"all_to_all", [Pure]> {
  let summary = "exchange expert-major slices within expert-parallel groups";
  let description = [{
    `groups` lists the exchange groups, one row of `G` ranks each; a rank
    exchanges with its row only. Each expert's FFN is split over `slices`
    consecutive members, so the row holds `EP = G / slices` expert shards and
    member `q` holds experts `[(q / slices) * E / EP, ...)` (E / EP of them).

    `to_experts` turns `[E, C, H]` into `[E / EP, G * C, H]`: every member
    sends its rows for an expert to each member holding a slice of it, and
    member `p`'s rows land at `[p * C, (p + 1) * C)`. `from_experts` is the
    inverse, summing the partial outputs of the `slices` members of each
    expert. `hierarchical` gives the same result in two stages (inside a node,
    then across nodes) and needs `ranks_per_node`. Only the parallelism pass
    inserts this op.

    ```mlir
    %r = moe.all_to_all to_experts flat %buf groups [[0, 1, 2, 3]]
        : tensor<8x?x4096xbf16> -> tensor<2x?x4096xbf16>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input,
                       EnumProp<Moe_AllToAllDirection>:$direction,
                       EnumProp<Moe_AllToAllVariant>:$variant,
                       I64ElementsAttr:$groups,
                       DefaultValuedAttr<I64Attr, "1">:$slices,
                       OptionalAttr<I64Attr>:$ranks_per_node);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $direction $variant $input `groups` custom<RankGroups>($groups)
    (`ranks_per_node` $ranks_per_node^)? attr-dict `:` type($input) `->`
    type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getGroupSize() {
      return ::llvm::cast<::mlir::ShapedType>(getGroups().getType())
          .getDimSize(1);
    }
  }];
}

def Moe_SyncCapacityOp : Moe_Op<"sync_capacity", [Pure]> {
  let summary = "the largest capacity among the ranks of each group";
  let description = [{
    Dropless routing sizes each expert buffer by the largest per-expert count;
    ranks that exchange buffers must agree on it, so expert parallelism takes
    the maximum over each row of `groups`.

    ```mlir
    %c = moe.sync_capacity %cap groups [[0, 1], [2, 3]]
    ```
  }];
  let arguments = (ins Index:$capacity, I64ElementsAttr:$groups);
  let results = (outs Index:$result);
  let assemblyFormat = "$capacity `groups` custom<RankGroups>($groups) attr-dict";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Compute
//===----------------------------------------------------------------------===//

// The FFN of an expert group or of a dense MLP. Gated (SwiGLU family) when
// `gate_weight` is present: down(act(gate(x) + gate_bias) * (up(x) +
// up_bias)) + down_bias, biases optional; otherwise down(act(up(x) +
// up_bias)) + down_bias (fc1/fc2 of DeepSpeed GPT). `swiglu_clamped`
// (gpt-oss) replaces act(g) * u by (clamp(u, -limit, limit) + 1) *
// g' * sigmoid(alpha * g'), g' = min(g, limit), with `swiglu_alpha` and
// `swiglu_limit`.
class Moe_FfnOp<string mnemonic, string layout, string example>
    : Moe_Op<mnemonic, [Pure, AttrSizedOperandSegments,
                        AllTypesMatch<["input", "result"]>]> {
  let description = "Shapes: " # layout # [{
    Weights use the torch Linear layout `[out, in]`, share the input's
    element type, and compute with fp32 accumulation.

    ```mlir
  }] # example # [{
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input,
                       Optional<Moe_FloatTensor>:$gate_weight,
                       Optional<Moe_FloatTensor>:$gate_bias,
                       Moe_FloatTensor:$up_weight,
                       Optional<Moe_FloatTensor>:$up_bias,
                       Moe_FloatTensor:$down_weight,
                       Optional<Moe_FloatTensor>:$down_bias,
                       EnumProp<Moe_Activation>:$activation,
                       OptionalAttr<F64Attr>:$swiglu_alpha,
                       OptionalAttr<F64Attr>:$swiglu_limit);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $activation $input (`gate` $gate_weight^)? (`gate_bias` $gate_bias^)?
    `up` $up_weight
    (`bias` $up_bias^)? `down` $down_weight (`bias` $down_bias^)? attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    bool isGated() { return static_cast<bool>(getGateWeight()); }
    int64_t getFfnSize() {
      return getUpWeight().getType().getDimSize(
          getUpWeight().getType().getRank() - 2);
    }
  }];
}

def Moe_ExpertsOp : Moe_FfnOp<"experts",
    "input `[E, C, H]`; gate/up `[E, F, H]`, down `[E, H, F]`, gate_bias/"
    "up_bias `[E, F]`, down_bias `[E, H]`; result `[E, C, H]`.", [{
    %y = moe.experts silu %buf gate %wg up %wu down %wd
        : (tensor<8x?x4096xbf16>, tensor<8x14336x4096xbf16>,
           tensor<8x14336x4096xbf16>, tensor<8x4096x14336xbf16>)
        -> tensor<8x?x4096xbf16>
  }]> {
  let summary = "E expert FFNs applied to their rows of the expert buffer";
}

def Moe_DenseFfnOp : Moe_FfnOp<"dense_ffn",
    "input `[S, H]`; gate/up `[F, H]`, down `[H, F]`, up_bias `[F]`, "
    "down_bias `[H]`; result `[S, H]`.", [{
    %y = moe.dense_ffn gelu %x up %w1 bias %b1 down %w2 bias %b2
        : (tensor<?x1024xf32>, tensor<4096x1024xf32>, tensor<4096xf32>,
           tensor<1024x4096xf32>, tensor<1024xf32>) -> tensor<?x1024xf32>
  }]> {
  let summary = "an FFN without routing: dense layers, residual and shared MLPs";
}

def Moe_ResidualMixOp : Moe_Op<"residual_mix", [
    Pure, AttrSizedOperandSegments,
    AllTypesMatch<["moe_output", "mlp_output", "result"]>]> {
  let summary = "Residual-MoE (PR-MoE) mix of the MoE and the dense MLP";
  let description = [{
    DeepSpeed `use_residual`: `coef = softmax(x · Wc^T + bc)` with `Wc` of
    shape `[2, H]` (torch Linear layout) and `bc` `[2]`;
    `result = moe_output * coef[:, 0] + mlp_output * coef[:, 1]`.
    When the coefficient is known at compile time it is the `constant` pair
    instead.

    ```mlir
    %r = moe.residual_mix %m, %d coefficient(%x, %wc, %bc
        : tensor<?x1024xf32>, tensor<2x1024xf32>, tensor<2xf32>)
        : tensor<?x1024xf32>
    %r = moe.residual_mix %m, %d constant [0.25, 0.75] : tensor<?x1024xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$moe_output,
                       Moe_FloatTensor:$mlp_output,
                       Optional<Moe_FloatTensor>:$input,
                       Optional<Moe_FloatTensor>:$coef_weight,
                       Optional<Moe_FloatTensor>:$coef_bias,
                       OptionalAttr<DenseF64ArrayAttr>:$coefficients);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $moe_output `,` $mlp_output
    (`coefficient` `(` $input^ `,` $coef_weight `,` $coef_bias `:`
     type($input) `,` type($coef_weight) `,` type($coef_bias) `)`)?
    (`constant` $coefficients^)? attr-dict `:` type($result)
  }];
  let hasVerifier = 1;
  let hasFolder = 1;
  let hasCanonicalizer = 1;
}

def Moe_SharedAddOp : Moe_Op<"shared_add", [
    Pure, AttrSizedOperandSegments,
    AllTypesMatch<["routed", "shared", "result"]>]> {
  let summary = "add the shared experts' output to the routed output";
  let description = [{
    DeepSeek: `result = routed + shared`. Qwen-MoE (`gated`):
    `result = routed + sigmoid(x · w^T) * shared` with `w` of shape `[1, H]`.

    ```mlir
    %r = moe.shared_add %routed, %shared gated(%x, %wsg
        : tensor<?x2048xbf16>, tensor<1x2048xbf16>) : tensor<?x2048xbf16>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$routed, Moe_FloatTensor:$shared,
                       Optional<Moe_FloatTensor>:$input,
                       Optional<Moe_FloatTensor>:$gate_weight);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $routed `,` $shared
    (`gated` `(` $input^ `,` $gate_weight `:` type($input) `,`
     type($gate_weight) `)`)? attr-dict `:` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Fused ops (moe-fuse-kernels)
//===----------------------------------------------------------------------===//

def Moe_FusedGateOp : Moe_Op<"fused_gate", [
    Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "moe.gate as one kernel after the router GEMM";
  let description = [{
    The same operands, results and semantics as `moe.gate`; the lowering
    maps it to one fused runtime kernel (scores, selection, capacity slots,
    counts, normalisation and scaling) where `moe.gate` lowers to one kernel
    per stage. moe-fuse-kernels creates it when the logits feed nothing
    else.

    ```mlir
    %ids, %w, %slots, %counts, %cap = moe.fused_gate %logits
        <scoring = softmax, top_k = 2, normalize = selected>
        : tensor<?x8xf32>
    ```
  }];
  let arguments = (ins Moe_F32Tensor:$logits,
                       Optional<Moe_F32Tensor>:$correction_bias,
                       Moe_RoutingAttr:$routing);
  let results = (outs Moe_I32Tensor:$expert_ids, Moe_F32Tensor:$weights,
                      Moe_I32Tensor:$slots, Moe_I32Tensor:$counts,
                      Index:$capacity);
  let assemblyFormat = [{
    $logits (`correction` $correction_bias^)? $routing attr-dict
    `:` type($logits) (`,` type($correction_bias)^)?
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getNumExperts() {
      return getLogits().getType().getDimSize(1);
    }
  }];
}

def Moe_FusedCombineOp : Moe_Op<"fused_combine", [
    Pure, AttrSizedOperandSegments, AllTypesMatch<["expert_ids", "slots"]>,
    OptionalTypesMatchWith<"weights are the fp32 counterpart of expert_ids",
                   "expert_ids", "weights",
                   "::mlir::RankedTensorType::get(::llvm::cast<::mlir::RankedTensorType>($_self).getShape(), ::mlir::Float32Type::get($_self.getContext()))">]> {
  let summary = "combine with its epilogue: residual mix and shared add";
  let description = [{
    One kernel for what `moe.combine`, `moe.residual_mix` and
    `moe.shared_add` compute one after another, with every intermediate kept
    in fp32:

    - `r = sum_j weights[s, j] * input[expert_ids[s, j], slots[s, j]]`
      (weight 1 without `weights`, as `moe.combine`);
    - with `mix(...)`: `r = r * c[:, 0] + mlp * c[:, 1]`,
      `c = softmax(x · Wc^T + bc)`;
    - with `shared(...)`: `r = r + shared`, or with `shared_gate(...)`
      `r = r + sigmoid(x · w^T) * shared`.

    `x` is the layer input the coefficient and the shared gate read. Only
    moe-fuse-kernels creates this op.

    ```mlir
    %y = moe.fused_combine %out, %ids, %slots, %w shared(%sh : tensor<?x64xf32>)
        shared_gate(%wsg : tensor<1x64xf32>) x(%h : tensor<?x64xf32>)
        : tensor<8x?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_I32Tensor:$expert_ids,
                       Moe_I32Tensor:$slots, Optional<Moe_F32Tensor>:$weights,
                       Optional<Moe_FloatTensor>:$mlp_output,
                       Optional<Moe_FloatTensor>:$coef_weight,
                       Optional<Moe_FloatTensor>:$coef_bias,
                       Optional<Moe_FloatTensor>:$shared,
                       Optional<Moe_FloatTensor>:$shared_gate_weight,
                       Optional<Moe_FloatTensor>:$x);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $expert_ids `,` $slots (`,` $weights^)?
    (`mix` `(` $mlp_output^ `,` $coef_weight `,` $coef_bias `:`
     type($mlp_output) `,` type($coef_weight) `,` type($coef_bias) `)`)?
    (`shared` `(` $shared^ `:` type($shared) `)`)?
    (`shared_gate` `(` $shared_gate_weight^ `:` type($shared_gate_weight)
     `)`)?
    (`x` `(` $x^ `:` type($x) `)`)?
    attr-dict `:` type($input) `,` type($expert_ids) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Moe_FusedExpertsOp : Moe_Op<"fused_experts", [
    Pure, AttrSizedOperandSegments, AllTypesMatch<["input", "result"]>]> {
  let summary = "a gated moe.experts on packed gate/up weights, one kernel";
  let description = [{
    The same FFN as a GATED `moe.experts`, `down(act(gate(x)) * up(x))`,
    with gate and up packed per expert: `gate_up [E, 2F, H]` holds each
    expert's gate rows `[0, F)` then its up rows `[F, 2F)` (moe-fuse-kernels
    packs them with a `tensor.concat` along dimension 1 of two weight
    arguments, which the lowering applies when the weights load). One
    grouped GEMM gives `[gate | up]`, the activation and gating product run
    in its epilogue, a second grouped GEMM gives down.

    With `shared(...)` a gated shared expert with the same activation
    (`gate_up [2Fs, H]`, `down [H, Fs]`) runs in the same grouped GEMMs on
    the rank's tokens `x [S, H]`; `shared_result = FFN_shared(x)`.

    ```mlir
    %gu = tensor.concat dim(1) %wg, %wu
        : (tensor<8x128x64xf32>, tensor<8x128x64xf32>) -> tensor<8x256x64xf32>
    %y = moe.fused_experts silu %buf gate_up %gu down %wd
        : (tensor<8x?x64xf32>, tensor<8x256x64xf32>, tensor<8x64x128xf32>)
        -> tensor<8x?x64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_FloatTensor:$gate_up,
                       Moe_FloatTensor:$down_weight,
                       Optional<Moe_FloatTensor>:$shared_input,
                       Optional<Moe_FloatTensor>:$shared_gate_up,
                       Optional<Moe_FloatTensor>:$shared_down_weight,
                       EnumProp<Moe_Activation>:$activation);
  let results = (outs Moe_FloatTensor:$result,
                      Optional<Moe_FloatTensor>:$shared_result);
  let assemblyFormat = [{
    $activation $input `gate_up` $gate_up `down` $down_weight
    (`shared` `(` $shared_input^ `gate_up` $shared_gate_up `down`
     $shared_down_weight `)`)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// F: the width of the gate (and up) half of gate_up.
    int64_t getFfnSize() {
      return getDownWeight().getType().getDimSize(2);
    }
    int64_t getSharedFfnSize() {
      return getSharedDownWeight().getType().getDimSize(1);
    }
  }];
}

//===----------------------------------------------------------------------===//
// The decoder around the FFN stack (docs/Dialects/MoeRationale.md, "The
// whole model")
//===----------------------------------------------------------------------===//

def Moe_EmbeddingOp : Moe_Op<"embedding", [Pure]> {
  let summary = "token embedding: rows of the table gathered by token id";
  let description = [{
    `result[s] = table[ids[s]]`; an id outside `[0, V)` is a run-time error.

    ```mlir
    %x = moe.embedding %ids, %table : tensor<?xi32>, tensor<512x64xf32>
        -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Moe_I32Tensor:$ids, Moe_FloatTensor:$table);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $ids `,` $table attr-dict `:` type($ids) `,` type($table) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

def Moe_RmsNormOp : Moe_Op<"rms_norm", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "RMSNorm per token: weight * x / sqrt(mean(x^2) + epsilon)";
  let description = [{
    In fp32; the normalised x is rounded to x's dtype before the weight
    multiplies it (the Hugging Face RMSNorm of Llama, Mixtral, Qwen, OLMoE,
    DeepSeek).

    ```mlir
    %n = moe.rms_norm %x, %w epsilon 1.0e-06 : tensor<?x64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_FloatTensor:$weight,
                       F64Attr:$epsilon);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `epsilon` $epsilon attr-dict `:` type($input) `,`
    type($weight)
  }];
  let hasVerifier = 1;
}

def Moe_AttentionOp : Moe_Op<"attention", [AttrSizedOperandSegments,
    AllTypesMatch<["positions", "sequences"]>]> {
  let summary = "causal multi-head / grouped-query attention with RoPE over "
                "a KV cache";
  let description = [{
    For each token s of sequence `sequences[s]` at position `positions[s]`:
    `q = x Wq^T (+ bq)`, `k`, `v` likewise with `kv_heads` heads (GQA when
    `kv_heads < heads`); optional q/k RMSNorm (`q_norm`, `k_norm`: a `[D]`
    weight normalises each head, Qwen3-MoE; a `[heads * D]` weight the whole
    projection, OLMoE), then `rope` (when present; a model with learned
    absolute positions, the GPT, has none) on q and k at the token's
    position; with `qk_norm_after_rope` (Hunyuan-MoE) the norm comes after
    the rope. The
    token's k and v are stored in `cache` at (sequence, position); then q
    attends, with a max-subtracted fp32 softmax scaled by `scale` (when
    present, Granite's `attention_multiplier`; else `1/sqrt(D)`), to
    the cache entries of its sequence at positions `<= positions[s]`
    (causal prefill and single-token decode are the same op); with
    `sliding_window` w > 0 only to those at positions `> positions[s] - w`.
    Optional `sinks` ([heads], gpt-oss) add one logit per head to the
    softmax denominator (no value). The result is `o Wo^T`. `cache` is
    state the op reads and writes. With `clip_qkv` c (DBRX), q, k and v are
    clamped to [-c, c] right after their projections (and biases).

    ```mlir
    %a = moe.attention %x positions %pos sequences %seq cache %kv
        : !moe.kv_cache<2, 16, f32> q %wq k %wk v %wv o %wo
        heads 4 kv_heads 2 head_dim 16 rope #moe.rope<theta = 10000.0>
        : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>,
          tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_I32Tensor:$positions,
                       Moe_I32Tensor:$sequences,
                       Arg<Moe_KvCacheType, "read and written",
                           [MemRead, MemWrite]>:$cache,
                       Moe_FloatTensor:$q_weight, Moe_FloatTensor:$k_weight,
                       Moe_FloatTensor:$v_weight, Moe_FloatTensor:$o_weight,
                       Optional<Moe_FloatTensor>:$q_bias,
                       Optional<Moe_FloatTensor>:$k_bias,
                       Optional<Moe_FloatTensor>:$v_bias,
                       Optional<Moe_FloatTensor>:$q_norm,
                       Optional<Moe_FloatTensor>:$k_norm,
                       Optional<Moe_FloatTensor>:$sinks,
                       I64Prop:$heads, I64Prop:$kv_heads, I64Prop:$head_dim,
                       OptionalAttr<Moe_RopeAttr>:$rope,
                       DefaultValuedAttr<F64Attr, "1.0e-6">:$norm_epsilon,
                       DefaultValuedProp<I64Prop, "0">:$sliding_window,
                       OptionalAttr<F64Attr>:$clip_qkv,
                       OptionalAttr<F64Attr>:$scale,
                       UnitAttr:$qk_norm_after_rope);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `positions` $positions `sequences` $sequences `cache` $cache `:`
    type($cache) `q` $q_weight `k` $k_weight `v` $v_weight `o` $o_weight
    (`bias` `(` $q_bias^ `,` $k_bias `,` $v_bias `:` type($q_bias) `,`
     type($k_bias) `,` type($v_bias) `)`)?
    (`qk_norm` `(` $q_norm^ `,` $k_norm `:` type($q_norm) `,` type($k_norm)
     `)` `epsilon` $norm_epsilon)?
    (`qk_norm_after_rope` $qk_norm_after_rope^)?
    (`sinks` $sinks^ `:` type($sinks))?
    `heads` $heads `kv_heads` $kv_heads `head_dim` $head_dim
    (`sliding_window` $sliding_window^)? (`clip_qkv` $clip_qkv^)?
    (`scale` $scale^)? (`rope` $rope^)? attr-dict `:` type($input) `,` type($positions) `,` type($q_weight) `,`
    type($k_weight) `,` type($v_weight) `,` type($o_weight) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

def Moe_GatherRowsOp : Moe_Op<"gather_rows", [Pure]> {
  let summary = "the token rows that sample: result[i] = input[rows[i]]";
  let description = [{
    Before the final norm and the LM head, so that they run on the rows
    whose logits are used (the last prompt token of each sequence in a
    prefill) rather than on every token. A row outside the step's tokens is
    a run-time error.

    ```mlir
    %last = moe.gather_rows %x, %rows : tensor<?x64xf32>, tensor<?xi32>
        -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_I32Tensor:$rows);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $rows attr-dict `:` type($input) `,` type($rows) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

def Moe_LmHeadOp : Moe_Op<"lm_head", [Pure]> {
  let summary = "logits = x . W^T in fp32";
  let description = [{
    `W` is the LM head `[V, H]` (the embedding table itself when the
    checkpoint ties them).

    ```mlir
    %logits = moe.lm_head %x, %w : tensor<?x64xf32>, tensor<512x64xf32>
        -> tensor<?x512xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_FloatTensor:$weight);
  let results = (outs Moe_F32Tensor:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

def Moe_ArgmaxOp : Moe_Op<"argmax", [Pure]> {
  let summary = "greedy sampling: the index of each row's largest logit";
  let description = [{
    Ties go to the lower index (as `torch.argmax` and `generate` do). A NaN
    row is a run-time error.

    ```mlir
    %next = moe.argmax %logits : tensor<?x512xf32> -> tensor<?xi32>
    ```
  }];
  let arguments = (ins Moe_F32Tensor:$input);
  let results = (outs Moe_I32Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// The PR-MoE GPT's decoder pieces (docs/Dialects/MoeRationale.md, "The
// PR-MoE GPT")
//===----------------------------------------------------------------------===//

def Moe_LayerNormOp : Moe_Op<"layer_norm", [Pure,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "LayerNorm per token: (x - mean) / sqrt(var + epsilon) * "
                "weight (+ bias)";
  let description = [{
    `torch.nn.LayerNorm` over the hidden dimension (biased variance), in
    fp32, rounded once to x's dtype: the pre-attention, pre-MLP and final
    norms of the Megatron-DeepSpeed GPT.

    ```mlir
    %n = moe.layer_norm %x, %w bias %b epsilon 1.0e-05
        : tensor<?x64xf32>, tensor<64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_FloatTensor:$weight,
                       Optional<Moe_FloatTensor>:$bias, F64Attr:$epsilon);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $bias^)? `epsilon` $epsilon attr-dict `:`
    type($input) `,` type($weight) (`,` type($bias)^)?
  }];
  let hasVerifier = 1;
}

def Moe_ScaleOp : Moe_Op<"scale", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "result = input * factor";
  let description = [{
    In fp32, rounded once to the input's dtype: Granite's multipliers on
    the embeddings (`embedding_multiplier`), on the attention's output
    before the residual add (`residual_multiplier`, after tensor-parallel
    attention's partial outputs are summed) and on the logits
    (`1 / logits_scaling`).

    ```mlir
    %y = moe.scale %x factor 2.200000e-01 : tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, F64Attr:$factor);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `factor` $factor attr-dict `:` type($input)
  }];
  let hasVerifier = 1;
}

def Moe_BiasAddOp : Moe_Op<"bias_add", [Pure,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "result[s] = input[s] + bias";
  let description = [{
    A projection's bias kept apart from its GEMM: the attention output
    projection's bias of the GPT is added once, after tensor-parallel
    attention's partial outputs are summed (each rank adding it would add
    it tp times).

    ```mlir
    %y = moe.bias_add %a, %b : tensor<?x64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_FloatTensor:$bias);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $bias attr-dict `:` type($input) `,` type($bias)
  }];
  let hasVerifier = 1;
}

def Moe_PositionEmbeddingOp : Moe_Op<"position_embedding", [Pure,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "learned absolute positions: result[s] = input[s] + "
                "table[positions[s]]";
  let description = [{
    The GPT's position embedding, added to the token embedding; a position
    outside `[0, P)` (P = the table's rows, max_position_embeddings) is a
    run-time error.

    ```mlir
    %h = moe.position_embedding %x positions %pos table %wpe
        : tensor<?x64xf32>, tensor<?xi32>, tensor<128x64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_I32Tensor:$positions,
                       Moe_FloatTensor:$table);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `positions` $positions `table` $table attr-dict `:` type($input)
    `,` type($positions) `,` type($table)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// DeepSeek multi-head latent attention (docs/Dialects/MoeRationale.md,
// "Multi-head latent attention")
//===----------------------------------------------------------------------===//

def Moe_LatentAttentionOp : Moe_Op<"latent_attention", [AttrSizedOperandSegments,
    AllTypesMatch<["positions", "sequences"]>]> {
  let summary = "DeepSeek multi-head latent attention over a compressed KV "
                "cache";
  let description = [{
    For each token s of sequence `sequences[s]` at position `positions[s]`,
    with `n` = nope_dim, `d` = rope_dim, `v` = v_dim, `r` = the cache's rank:
    - the query `q = x Wq^T`, or with `q_a`: `q = RMSNorm(x Wq_a^T) Wq^T`
      (low rank q; `Wq` is then q_b_proj), `[heads, n + d]`: `q_nope`, then
      `q_pe` rotated at the token's position;
    - `kv = x Wkv_a^T` `[r + d]`: the latent `c = RMSNorm(kv[:r])` and the
      shared key `k_pe = rope(kv[r:])`, both stored in `cache` at
      (sequence, position);
    - per head, with `kv_b` `[heads * (n + v), r]` holding W_UK `[n, r]` then
      W_UV `[v, r]` per head: `score_t = scale * (q_nope . W_UK c_t + q_pe .
      k_pe_t)` over the cache entries of the sequence at positions `<=
      positions[s]`, max-subtracted fp32 softmax, `o = sum_t p_t W_UV c_t`;
    - the result is `o Wo^T` (`Wo` `[hidden, heads * v]`).
    The rope pairs neighbouring dimensions (DeepSeek's layout). `scale` is
    the softmax scale, `(n + d)^-0.5` times YaRN's mscale(factor,
    mscale_all_dim)^2 when the checkpoint asks for it (the importer computes
    it). Prefill and decode are the same op; the lowering computes it in
    the absorbed form. `cache` is state the op reads and writes.

    ```mlir
    %a = moe.latent_attention %x positions %pos sequences %seq cache %c
        : !moe.latent_cache<16, 8, f32> q %wq kv_a %wkva norm %nkv kv_b %wkvb
        o %wo heads 4 nope_dim 8 v_dim 16 scale 0.25 epsilon 1.0e-06
        rope #moe.rope<theta = 10000.0>
        : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>,
          tensor<24x64xf32>, tensor<16xf32>, tensor<96x16xf32>,
          tensor<64x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_I32Tensor:$positions,
                       Moe_I32Tensor:$sequences,
                       Arg<Moe_LatentCacheType, "read and written",
                           [MemRead, MemWrite]>:$cache,
                       Optional<Moe_FloatTensor>:$q_a_weight,
                       Optional<Moe_FloatTensor>:$q_a_norm,
                       Moe_FloatTensor:$q_weight, Moe_FloatTensor:$kv_a_weight,
                       Moe_FloatTensor:$kv_a_norm, Moe_FloatTensor:$kv_b_weight,
                       Moe_FloatTensor:$o_weight,
                       I64Prop:$heads, I64Prop:$nope_dim, I64Prop:$v_dim,
                       F64Attr:$scale, F64Attr:$epsilon, Moe_RopeAttr:$rope);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `positions` $positions `sequences` $sequences `cache` $cache `:`
    type($cache)
    (`q_a` $q_a_weight^ `norm` $q_a_norm `:` type($q_a_weight) `,`
     type($q_a_norm))?
    `q` $q_weight `kv_a` $kv_a_weight `norm` $kv_a_norm `kv_b` $kv_b_weight
    `o` $o_weight `heads` $heads `nope_dim` $nope_dim `v_dim` $v_dim
    `scale` $scale `epsilon` $epsilon `rope` $rope attr-dict `:`
    type($input) `,` type($positions) `,` type($q_weight) `,`
    type($kv_a_weight) `,` type($kv_a_norm) `,` type($kv_b_weight) `,`
    type($o_weight) `->` type($result)
  }];
  let extraClassDeclaration = [{
    int64_t getRank() { return getCache().getType().getRank(); }
    int64_t getRopeDim() { return getCache().getType().getRopeDim(); }
    int64_t getQueryDim() { return getNopeDim() + getRopeDim(); }
  }];
  let hasVerifier = 1;
}

#endif // MOE_DIALECT_MOE_IR_MOEOPS_TD
