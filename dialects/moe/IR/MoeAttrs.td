//===- MoeAttrs.td - moe dialect attributes ----------------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEATTRS_TD
#define MOE_DIALECT_MOE_IR_MOEATTRS_TD

include "dialects/moe/IR/MoeBase.td"

class Moe_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Moe_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

// A double, printed in the shortest form that round-trips (2.5, 1.0e-20).
class Moe_F64Parameter<string default>
    : APFloatParameter<"a 64-bit float"> {
  let parser = [{ [&]() -> ::mlir::FailureOr<::llvm::APFloat> {
    double value;
    if (::mlir::failed($_parser.parseFloat(value)))
      return ::mlir::failure();
    return ::llvm::APFloat(value);
  }() }];
  let printer = [{ ::mlir::moe::printShortestDouble($_printer, $_self) }];
  let defaultValue = "::llvm::APFloat(" # default # ")";
}

class Moe_EnumParameter<EnumAttrInfo info, string default>
    : EnumParameter<info> {
  let defaultValue = info.cppType # "::" # default;
}

def Moe_RopeAttr : Moe_Attr<"Rope", "rope"> {
  let summary = "rotary position embedding of an attention op";
  let description = [{
    The Hugging Face `rope_theta` and `rope_scaling` of a checkpoint, field
    for field; the runtime derives the frequencies from them
    (runtime/common/Rope.h, the one home of the formulas). `rotate_half`
    pairing (dimension i with i + D/2), over the whole head, or
    over its first `rotary_dim` dims (GLM-4.5's partial_rotary_factor: the
    frequencies are over those dims, the rest pass unchanged; even, 0: all).
    `interleaved` pairs dimension 2i with 2i + 1 instead (ERNIE-4.5).
    `attention_factor` multiplies cos and sin (YaRN's mscale ratio, computed
    by the importer). longrope takes `short_factor` / `long_factor`
    (head_dim / 2 entries each) and `short_mscale` / `long_mscale` (which
    multiply cos and sin in its place): the long ones when the call's largest
    position + 1 exceeds `original_max_position`. Parameters equal to their
    default are omitted.

    ```mlir
    #moe.rope<theta = 1000000.0>
    #moe.rope<type = llama3, theta = 500000.0, factor = 8.0,
              original_max_position = 8192>
    ```
  }];
  let parameters = (ins
    Moe_EnumParameter<Moe_RopeType, "standard">:$type,
    Moe_F64Parameter<"10000.0">:$theta,
    Moe_F64Parameter<"1.0">:$factor,
    Moe_F64Parameter<"1.0">:$low_freq_factor,
    Moe_F64Parameter<"4.0">:$high_freq_factor,
    DefaultValuedParameter<"int64_t", "0">:$original_max_position,
    Moe_F64Parameter<"32.0">:$beta_fast,
    Moe_F64Parameter<"1.0">:$beta_slow,
    Moe_F64Parameter<"1.0">:$attention_factor,
    DefaultValuedParameter<"bool", "true">:$truncate,
    OptionalParameter<"::mlir::DenseF64ArrayAttr">:$short_factor,
    OptionalParameter<"::mlir::DenseF64ArrayAttr">:$long_factor,
    Moe_F64Parameter<"1.0">:$short_mscale,
    Moe_F64Parameter<"1.0">:$long_mscale,
    DefaultValuedParameter<"int64_t", "0">:$rotary_dim,
    DefaultValuedParameter<"bool", "false">:$interleaved
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Moe_RoutingAttr : Moe_Attr<"Routing", "routing"> {
  let summary = "the routing policy of a gate";
  let description = [{
    Everything that decides which experts a token goes to and with what
    weight. It is an attribute rather than a set of op properties because a
    model's layers share one policy (uniqued once for a 58-layer model) and
    because the lowering and the cost model read the policy as one value.

    Parameters equal to their default are omitted when printed.

    ```mlir
    #moe.routing<scoring = softmax, top_k = 2, normalize = selected>
    #moe.routing<scoring = sigmoid, top_k = 8, n_group = 8, topk_group = 4,
                 group_score = top2_sum, normalize = selected,
                 norm_epsilon = 1.0E-20, routed_scaling_factor = 2.5>
    #moe.routing<scoring = softmax, top_k = 1, capacity_factor = 1.0,
                 min_capacity = 4, drop_order = choice_major>
    #moe.routing<scoring = softmax, top_k = 4, normalize = pnorm, norm_p = 2.0>
    #moe.routing<scoring = sparsemixer, top_k = 2, jitter_eps = 0.01>
    #moe.routing<scoring = sigmoid, top_k = 1, weights = input>
    ```

    `capacity_factor = 0` means dropless. `weights = input` (Llama 4): each
    choice's weight scales the token's row at the dispatch, so the expert
    computes `expert(x * w)`, and the combine sums the rows unweighted. Local rules are checked here; the
    rules that need the expert count are checked by the gate's verifier.
  }];
  let parameters = (ins
    EnumParameter<Moe_ScoringFunc>:$scoring,
    "int64_t":$top_k,
    DefaultValuedParameter<"int64_t", "1">:$n_group,
    DefaultValuedParameter<"int64_t", "1">:$topk_group,
    Moe_EnumParameter<Moe_GroupScore, "max">:$group_score,
    Moe_EnumParameter<Moe_Normalization, "none">:$normalize,
    Moe_F64Parameter<"0.0">:$norm_epsilon,
    Moe_F64Parameter<"1.0">:$routed_scaling_factor,
    Moe_F64Parameter<"0.0">:$capacity_factor,
    DefaultValuedParameter<"int64_t", "0">:$min_capacity,
    Moe_EnumParameter<Moe_DropOrder, "choice_major">:$drop_order,
    Moe_F64Parameter<"1.0">:$norm_p,
    Moe_F64Parameter<"0.0">:$jitter_eps,
    Moe_EnumParameter<Moe_WeightSite, "output">:$weights
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    bool isDropless() const { return getCapacityFactor().isZero(); }
    bool isGroupLimited() const { return getNGroup() > 1; }
    bool weighsInput() const { return getWeights() == WeightSite::input; }
    /// Capacity per expert for `tokens` local tokens and `experts` experts:
    /// max(min_capacity, ceil(k * S / E * cf)). Only for capacity routing.
    int64_t getCapacity(int64_t tokens, int64_t experts) const;
  }];
}

def Moe_MeshAttr : Moe_Attr<"Mesh", "mesh"> {
  let summary = "the devices a module is compiled for";
  let description = [{
    `nodes x gpus_per_node` devices, ranks numbered node-major. The hardware
    numbers feed the cost model; the defaults describe an H100 SXM node
    (80 GiB HBM3 at 3350 GB/s, 989 dense bf16 TFLOP/s, NVLink 4 at 450 GB/s
    per direction, one 400 Gb/s NIC per GPU = 50 GB/s) and can be overridden.

    ```mlir
    module attributes {moe.mesh = #moe.mesh<nodes = 2, gpus_per_node = 8>}
    ```
  }];
  let parameters = (ins
    "int64_t":$nodes,
    "int64_t":$gpus_per_node,
    DefaultValuedParameter<"int64_t", "kDefaultMemoryBytes">:$memory_bytes,
    Moe_F64Parameter<"kDefaultMemoryGbps">:$memory_gbps,
    Moe_F64Parameter<"kDefaultPeakTflops">:$peak_tflops,
    Moe_F64Parameter<"kDefaultIntraNodeGbps">:$intra_node_gbps,
    Moe_F64Parameter<"kDefaultInterNodeGbps">:$inter_node_gbps
  );
  let builders = [
    // A mesh of H100 nodes.
    AttrBuilder<(ins "int64_t":$nodes, "int64_t":$gpus_per_node), [{
      return $_get($_ctxt, nodes, gpus_per_node, kDefaultMemoryBytes,
                   APFloat(kDefaultMemoryGbps), APFloat(kDefaultPeakTflops),
                   APFloat(kDefaultIntraNodeGbps),
                   APFloat(kDefaultInterNodeGbps));
    }]>
  ];
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    static constexpr int64_t kDefaultMemoryBytes = 80LL << 30;
    static constexpr double kDefaultMemoryGbps = 3350.0;
    static constexpr double kDefaultPeakTflops = 989.0;
    static constexpr double kDefaultIntraNodeGbps = 450.0;
    static constexpr double kDefaultInterNodeGbps = 50.0;
    int64_t getNumRanks() const { return getNodes() * getGpusPerNode(); }
    MeshShape getShape() const { return {getNodes(), getGpusPerNode()}; }
  }];
}

def Moe_PlanAttr : Moe_Attr<"Plan", "plan"> {
  let summary = "how one layer is spread over the mesh";
  let description = [{
    The `dp x ep x tp` ranks of the mesh, rank = (d * ep + e) * tp + t:
    expert-parallel groups hold the experts split `ep` ways; each expert's FFN
    is sliced `tp` ways (column-split gate/up, row-split down, partial sums
    added by the returning all-to-all); `dp` replicas hold the same weights.
    Dense MLPs of the layer are tensor-parallel over `tp` and replicated
    otherwise. `all_to_all` is the exchange variant.

    ```mlir
    #moe.plan<dp = 4, ep = 32, tp = 1, all_to_all = hierarchical>
    ```
  }];
  let parameters = (ins
    "int64_t":$dp,
    "int64_t":$ep,
    "int64_t":$tp,
    Moe_EnumParameter<Moe_AllToAllVariant, "flat">:$all_to_all
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    int64_t getNumRanks() const { return getDp() * getEp() * getTp(); }
    /// The all-to-all groups, one row per replica d: its ep * tp ranks
    /// (expert-slicing partners next to each other).
    ::llvm::SmallVector<::llvm::SmallVector<int64_t>> getExchangeGroups() const;
    /// Degree of `axis` (ep or tp) and the rank stride between neighbours on
    /// it: a rank's coordinate on `axis` is (rank / stride) % degree.
    int64_t getDegree(ShardAxis axis) const;
    int64_t getRankStride(ShardAxis axis) const;
  }];
}

def Moe_ShardAttr : Moe_Attr<"Shard", "shard"> {
  let summary = "how a weight argument is split by its layer's plan";
  let description = [{
    One axis per tensor dimension: `ep` splits it over the expert-parallel
    ranks, `tp` over the expert-slicing ranks, `none` keeps it whole.

    ```mlir
    %w1: tensor<1x7168x4096xbf16> {moe.shard = #moe.shard<[ep, tp, none]>}
    ```
  }];
  let parameters = (ins ArrayRefParameter<"ShardAxis">:$dims);
  let assemblyFormat = "`<` `[` $dims `]` `>`";
}

def Moe_FusedViewAttr : Moe_Attr<"FusedView", "fused_view"> {
  let summary = "where a weight argument lies inside one fused tensor";
  let description = [{
    On a weight argument next to `moe.weight`, whose key then names one
    tensor of `shape` (no `{e}`): element `(i_0, ...)` of expert `e`'s
    tensor (the argument without its leading `E` when `strides` has one entry
    fewer than the argument's rank) is element
    `offset + e * expert_stride + sum_d i_d * strides[d]` of that tensor,
    row-major. The gate half of GPT-OSS's interleaved `[E, H, 2F]`
    `gate_up_proj` as a `[E, F, H]` argument:

    ```mlir
    %g: tensor<4x24x32xf32> {moe.weight = "model.layers.0.mlp.experts.gate_up_proj",
      moe.fused_view = #moe.fused_view<shape = [4, 32, 48], offset = 0,
                                       expert_stride = 1536, strides = [2, 48]>}
    ```
  }];
  let parameters = (ins ArrayRefParameter<"int64_t">:$shape,
                        "int64_t":$offset, "int64_t":$expert_stride,
                        ArrayRefParameter<"int64_t">:$strides);
  let assemblyFormat = [{
    `<` `shape` `=` `[` $shape `]` `,` `offset` `=` $offset `,`
    `expert_stride` `=` $expert_stride `,` `strides` `=` `[` $strides `]` `>`
  }];
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Whether every element of `experts` experts (1: no expert dimension)
    /// of a tensor of `extents` lies inside the fused tensor.
    bool fits(int64_t experts, ::llvm::ArrayRef<int64_t> extents) const;
  }];
}

#endif // MOE_DIALECT_MOE_IR_MOEATTRS_TD
