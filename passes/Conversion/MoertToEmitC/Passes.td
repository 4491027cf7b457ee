//===- Passes.td - moert to EmitC conversion ---------------*- tablegen -*-===//

#ifndef MOE_PASSES_CONVERSION_MOERTTOEMITC_PASSES_TD
#define MOE_PASSES_CONVERSION_MOERTTOEMITC_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoertToEmitC : Pass<"convert-moert-to-emitc", "::mlir::ModuleOp"> {
  let summary = "moert calls to EmitC: the C++ of a compiled model";
  let description = [{
    Turns the `moert.entry` functions of convert-moe-to-moert into the
    exported C ABI of runtime/moert_model.h (`moe_model_init`,
    `moe_model_step`, `moe_model_info`) made of `emitc` calls into
    runtime/moert.h. Every call's status is checked: a failure returns it
    and sets `*where` to the layer and the call. The module must hold exactly
    one model (one init and one step entry).
  }];
  let dependentDialects = ["::mlir::emitc::EmitCDialect"];
}

#endif // MOE_PASSES_CONVERSION_MOERTTOEMITC_PASSES_TD
