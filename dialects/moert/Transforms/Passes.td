//===- Passes.td - moert passes ----------------------------*- tablegen -*-===//

#ifndef MOE_DIALECTS_MOERT_TRANSFORMS_PASSES_TD
#define MOE_DIALECTS_MOERT_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def CountKernels : Pass<"moert-count-kernels", "::mlir::ModuleOp"> {
  let summary = "print the runtime calls and bytes of a lowered model";
  let description = [{
    On the output of convert-moe-to-moert, prints per step function and
    `moert.layer` the runtime kernels it launches and the bytes they read and
    write. A kernel is a runtime call op with a kernel family
    (`RuntimeCallOpInterface`); its bytes are the views its memory effects
    read and write, each distinct view counted at its full extent (the
    planned size at the token bound, `moert.max_tokens`), weights included.
    The IR is unchanged. bench/fusion.py compares fuse=true with fuse=false.

    ```
    kernels @fused_step tokens 16
    layer 0: launches 1 read 37248 written 4096
    total: launches 1 read 37248 written 4096
    kernel moert.fused_combine: launches 1 read 37248 written 4096
    family combine: launches 1 read 37248 written 4096
    ```
    The `kernel` lines sum the step over each runtime call, the `family`
    lines over each kernel family, in order of first use.
  }];
  let dependentDialects = ["::mlir::moert::MoertDialect"];
}

#endif // MOE_DIALECTS_MOERT_TRANSFORMS_PASSES_TD
