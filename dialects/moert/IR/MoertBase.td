//===- MoertBase.td - moert dialect definition -------------*- tablegen -*-===//
//
// The runtime-call level of moe-mlir: one op per entry point of
// runtime/moert.h, on statically planned buffers.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOERT_IR_MOERTBASE_TD
#define MOE_DIALECT_MOERT_IR_MOERTBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Moert_Dialect : Dialect {
  let name = "moert";
  let cppNamespace = "::mlir::moert";
  let summary = "calls into libmoert on statically planned buffers";
  let description = [{
    Each op is one function of the runtime's C ABI (runtime/moert.h) with the
    same operands, so lowering to C is a 1:1 mapping. Memory is explicit:
    `moert.alloc` gives a buffer of a static byte size, `moert.view` a typed
    window of it at an element offset; kernels read and write views. Sizes
    the ABI passes as integers are properties when they are static (hidden,
    experts, top-k) and `i64` operands when they depend on the step (tokens,
    dropless capacity). A view's element count is the largest extent it can
    hold; verifiers check it against the static sizes.

    Routing policies reuse `#moe.routing`: the runtime's gate configuration is
    exactly that policy plus the expert count.
  }];
  let useDefaultTypePrinterParser = 1;
  let dependentDialects = ["::mlir::moe::MoeDialect"];
}

class Moert_Op<string mnemonic, list<Trait> traits = []>
    : Op<Moert_Dialect, mnemonic, traits> {
  // Every local rule is checked in MoertOps.cpp.
  let hasVerifier = 1;
}

def Moert_ReduceOp : I32EnumAttr<"ReduceOp", "reduction of a collective", [
      I32EnumAttrCase<"sum", 0>,
      I32EnumAttrCase<"max", 1>
    ]> {
  let cppNamespace = "::mlir::moert";
  let genSpecializedAttr = 0;
}

// moert_weight_format_t: how moert.quantized_experts' weights are stored.
def Moert_WeightFormat : I32EnumAttr<"WeightFormat",
    "storage of quantized weights", [
      I32EnumAttrCase<"fp8_e4m3_block", 0>,
      I32EnumAttrCase<"mxfp4", 1>
    ]> {
  let cppNamespace = "::mlir::moert";
  let genSpecializedAttr = 0;
}

#endif // MOE_DIALECT_MOERT_IR_MOERTBASE_TD
