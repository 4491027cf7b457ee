//===- Passes.td - moe to moert conversion -----------------*- tablegen -*-===//

#ifndef MOE_PASSES_CONVERSION_MOETOMOERT_PASSES_TD
#define MOE_PASSES_CONVERSION_MOETOMOERT_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoeToMoert : Pass<"convert-moe-to-moert", "::mlir::ModuleOp"> {
  let summary = "lower moe tensors to moert calls on statically planned buffers";
  let description = [{
    Rewrites every model function `@f(%x: tensor<?xHxT>, weights...)` into
    two entries over one persistent state buffer per rank (the rank's weight
    shards, then the activation arena):
    `@f_init(%ctx: !moert.context, %weights: !moert.weights, %state)` loads
    every weight shard the rank needs once; its slice (expert range, F-slice)
    comes from the weight's `moe.shard` and its layer's plan at the rank's
    run-time coordinates (`moert.rank`). `@f_step(%ctx, %state,
    %stats: !moert.stats, %tokens: i64, %x: !moert.view<T, N*H>)` runs the
    layers (each a timed `moert.layer`) on views of the arena and leaves the
    result in `%x`.

    `tokens` (or the module attribute `moert.max_tokens`) is N, the most
    tokens a rank processes per step: dynamic token dimensions take that
    bound, capacities the bound `#moe.routing` gives for N (dropless: N, as a
    token picks an expert at most once). Values whose live ranges do not
    overlap share arena bytes; the arena size (peak activation bytes per
    rank) and the weight bytes are recorded as `moert.peak_bytes` and
    `moert.weight_bytes` and printed with `report`.

    Expert parallelism: `moe.sync_capacity` becomes an i64 MAX all-reduce
    over the rank's group (init keeps the group of the row holding the rank,
    `moert.keep_group`; the step looks it up, `moert.group`), `moe.all_to_all` becomes
    `moert.all_to_all` (`moert.all_to_all_sliced` for sliced experts) and,
    on the way to the experts,
    also exchanges the gate's counts, which become the row counts of the G
    blocks of each local expert. With tp > 1 only tp index 0 passes the down
    bias of a sliced FFN (`if` a run-time predicate), and `shard.all_gather`
    / `shard.reduce_scatter` over grid axis 2 become `moert.all_gather` /
    `moert.reduce_scatter` over the layer's tp groups.
  }];
  let dependentDialects = ["::mlir::moert::MoertDialect",
                           "::mlir::arith::ArithDialect"];
  let options = [
    Option<"tokens", "tokens", "int64_t", /*default=*/"0",
           "Most tokens per rank per step (default: the module's "
           "moert.max_tokens)">,
    Option<"report", "report", "bool", /*default=*/"false",
           "Print the buffer plan (arena and weight bytes) to stdout">,
    Option<"staticCapacity", "static-capacity", "bool", /*default=*/"false",
           "Dropless gates use C = the token bound instead of their largest "
           "count (no count is read back and no capacity is all-reduced: "
           "the step can be captured in a CUDA graph; the expert GEMMs "
           "then cover C rows per expert)">,
    Option<"maxBatch", "max-batch", "int64_t", /*default=*/"0",
           "Sequences each rank's KV caches hold (whole decoders)">,
    Option<"maxSeq", "max-seq", "int64_t", /*default=*/"0",
           "Positions per sequence each rank's KV caches hold (whole "
           "decoders)">,
  ];
}

#endif // MOE_PASSES_CONVERSION_MOETOMOERT_PASSES_TD
