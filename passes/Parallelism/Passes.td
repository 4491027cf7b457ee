//===- Passes.td - parallelism passes ----------------------*- tablegen -*-===//

#ifndef MOE_PASSES_PARALLELISM_PASSES_TD
#define MOE_PASSES_PARALLELISM_PASSES_TD

include "mlir/Pass/PassBase.td"

def AssignParallelism : Pass<"moe-assign-parallelism", "::mlir::ModuleOp"> {
  let summary = "choose each layer's expert / tensor / data parallel plan and "
                "rewrite the model to per-rank shapes";
  let description = [{
    For every `moe.layer`, picks a plan `dp x ep x tp` on the mesh with the
    cost model (passes/Parallelism/CostModel.h): ep = min(experts, ranks) as in
    DeepSpeed-MoE (their gcd when min does not divide both) unless forced, tp slices each expert's FFN (and the layer's
    dense MLPs) when that is faster or needed to fit memory, dp replicates the
    rest, and the all-to-all is hierarchical when the exchange group spans
    nodes and the model says it is faster. Then it rewrites the layer:

    - `moe.plan` on the layer; weight arguments take their per-rank shapes
      and a `moe.shard` attribute saying how they were split;
    - dispatch -> `moe.all_to_all to_experts` -> experts ->
      `moe.all_to_all from_experts` -> combine for the exchange group, with
      `moe.sync_capacity` for dropless routing;
    - dense MLPs under tp > 1 all-gather their tokens, run on their slice and
      reduce-scatter the partial sums (`shard.all_gather` /
      `shard.reduce_scatter` on a `shard.grid` of shape dp x ep x tp);
    - attention under `attention-tp` > 1 splits heads and all-reduces the
      partial outputs; the tp ranks then hold the same tokens, so each
      dropless MoE layer without expert slicing can drop the duplicates
      (DeepSpeed-TED; `duplicate-tokens`): `shard.all_slice` of the tokens over the attention
      grid's tp axis at the layer's start, `shard.all_gather` of its output
      before the residual add; member m of a group of G holds rows
      [m*c, min(S, (m+1)*c)) with c = ceil(S / G).

    Plans that do not fit device memory or whose degrees do not divide the
    mesh are rejected with a diagnostic at the layer. `report` prints one
    table row per layer, a JSON object per distinct plan, or an SVG
    picture of the plan (PlanReport.h) to stdout or `report-file`.
  }];
  let dependentDialects = ["::mlir::moe::MoeDialect",
                           "::mlir::shard::ShardDialect"];
  let options = [
    Option<"mesh", "mesh", "std::string", /*default=*/"",
           "Mesh as NODESxGPUS, e.g. 2x8 (default: the module's moe.mesh)">,
    Option<"memoryGiB", "memory-gib", "double", /*default=*/"0",
           "Device memory in GiB (default: the mesh's, 80)">,
    Option<"intraNodeGBps", "intra-node-gbps", "double", /*default=*/"0",
           "Per-GPU NVLink bandwidth in GB/s (default: the mesh's, 450)">,
    Option<"interNodeGBps", "inter-node-gbps", "double", /*default=*/"0",
           "Per-GPU inter-node bandwidth in GB/s (default: the mesh's, 50)">,
    Option<"policy", "policy", "::mlir::moe::cost::Policy",
           /*default=*/"::mlir::moe::cost::Policy::throughput",
           "What the plans are fastest for",
           [{::llvm::cl::values(
               clEnumValN(::mlir::moe::cost::Policy::latency, "latency",
                          "small steps (decode)"),
               clEnumValN(::mlir::moe::cost::Policy::throughput, "throughput",
                          "large steps (prefill)"))}]>,
    Option<"tokens", "tokens", "int64_t", /*default=*/"0",
           "Tokens per rank per step to plan for (default: 8 for latency, "
           "4096 for throughput)">,
    Option<"ep", "ep", "int64_t", /*default=*/"0",
           "Force the expert-parallel degree of MoE layers (0: min(experts, "
           "ranks), or their gcd when that does not divide both)">,
    Option<"tp", "tp", "int64_t", /*default=*/"0",
           "Force the expert-slicing degree (0: the cost model's choice)">,
    Option<"attentionTp", "attention-tp", "int64_t", /*default=*/"1",
           "Tensor-parallel degree of attention layers: heads split over "
           "this many consecutive ranks that hold the same tokens, partial "
           "outputs all-reduced (1: data parallel; 0: the cost model's "
           "choice)">,
    Option<"duplicateTokens", "duplicate-tokens",
           "::mlir::moe::DuplicateTokens",
           /*default=*/"::mlir::moe::DuplicateTokens::automatic",
           "Under attention-tp > 1 the tp ranks hold the same tokens: a "
           "dropless MoE layer may run on each rank's share of them, an "
           "all-gather restoring them (DeepSpeed-TED)",
           [{::llvm::cl::values(
               clEnumValN(::mlir::moe::DuplicateTokens::automatic, "auto",
                          "drop them where the cost model says it is faster"),
               clEnumValN(::mlir::moe::DuplicateTokens::drop, "drop",
                          "every layer that can drops them"),
               clEnumValN(::mlir::moe::DuplicateTokens::keep, "keep",
                          "every rank runs the layer on all the tokens"))}]>,
    Option<"allToAll", "all-to-all", "::mlir::moe::AllToAllChoice",
           /*default=*/"::mlir::moe::AllToAllChoice::automatic",
           "The all-to-all variant",
           [{::llvm::cl::values(
               clEnumValN(::mlir::moe::AllToAllChoice::automatic, "auto",
                          "the cost model's choice"),
               clEnumValN(::mlir::moe::AllToAllChoice::flat, "flat",
                          "one exchange among all ranks of the group"),
               clEnumValN(::mlir::moe::AllToAllChoice::hierarchical,
                          "hierarchical",
                          "inside each node, then across nodes"))}]>,
    Option<"report", "report", "::mlir::moe::PlanReport",
           /*default=*/"::mlir::moe::PlanReport::none",
           "Print the plan to stdout",
           [{::llvm::cl::values(
               clEnumValN(::mlir::moe::PlanReport::none, "none",
                          "print nothing"),
               clEnumValN(::mlir::moe::PlanReport::table, "table",
                          "a table row per layer"),
               clEnumValN(::mlir::moe::PlanReport::json, "json",
                          "a JSON object per distinct layer plan"),
               clEnumValN(::mlir::moe::PlanReport::svg, "svg",
                          "a picture of the mesh and the layers' plans"))}]>,
    Option<"reportFile", "report-file", "std::string", /*default=*/"",
           "Write the report to this file instead of stdout">,
  ];
}

#endif // MOE_PASSES_PARALLELISM_PASSES_TD
