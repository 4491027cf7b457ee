//===- Passes.td - kernel fusion passes --------------------*- tablegen -*-===//

#ifndef MOE_PASSES_FUSION_PASSES_TD
#define MOE_PASSES_FUSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def FuseKernels : Pass<"moe-fuse-kernels"> {
  let summary = "fuse moe op chains into the runtime's fused kernels";
  let description = [{
    One rewrite pattern per fusion, each legal only when the intermediate it
    removes has no other user:

    - `moe.combine` becomes `moe.fused_combine`, whose epilogue absorbs the
      `moe.residual_mix` (learned coefficient) and the `moe.shared_add`
      (plain or sigmoid-gated) that consume it. moe-lower-to-runtime also
      folds the layer's residual add into it when the layer yields it.

    Without this pass (moe-compile `fuse=false`) every op lowers to its own
    runtime kernel.
  }];
  let dependentDialects = ["::mlir::moe::MoeDialect"];
}

#endif // MOE_PASSES_FUSION_PASSES_TD
