//===- Passes.td - kernel fusion passes --------------------*- tablegen -*-===//

#ifndef MOE_PASSES_FUSION_PASSES_TD
#define MOE_PASSES_FUSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def FuseKernels : Pass<"moe-fuse-kernels"> {
  let summary = "fuse moe op chains into the runtime's fused kernels";
  let description = [{
    One rewrite pattern per fusion, each legal only when the intermediate it
    removes has no other user:

    - `moe.gate` becomes `moe.fused_gate` (one kernel after the router
      GEMM instead of one per stage) when the logits have no other user;
    - `moe.combine` becomes `moe.fused_combine`, whose epilogue absorbs the
      `moe.residual_mix` (learned coefficient) and the `moe.shared_add`
      (plain or sigmoid-gated) that consume it. convert-moe-to-moert also
      folds the layer's residual add into it when the layer yields it;
    - a GATED `moe.experts` becomes `moe.fused_experts` on one packed
      `gate_up [E, 2F, H]` weight (a `tensor.concat` of gate and up along F)
      when gate and up are function arguments (weights) of one dtype that
      nothing else reads: the packing then happens when the weights load,
      and the FFN runs as two grouped GEMMs with the activation and gating
      product in the first one's epilogue. A plain (GeLU/ReLU with biases)
      `moe.experts` stays: it is one runtime call already;
    - a gated shared expert (`moe.dense_ffn` feeding the fused combine's
      shared operand, nothing else) with the routed experts' activation and
      dtype, not tensor-parallel (its input is not a `shard.all_gather`),
      and with its own packable gate and up, joins the `moe.fused_experts`
      as its shared problem (SGLang-style shared-expert folding).

    Without this pass (moe-compile `fuse=false`) every op lowers to its own
    runtime kernel.
  }];
  let dependentDialects = ["::mlir::moe::MoeDialect",
                           "::mlir::tensor::TensorDialect"];
}

#endif // MOE_PASSES_FUSION_PASSES_TD
