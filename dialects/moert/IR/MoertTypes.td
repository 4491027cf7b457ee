//===- MoertTypes.td - moert dialect types -----------------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOERT_IR_MOERTTYPES_TD
#define MOE_DIALECT_MOERT_IR_MOERTTYPES_TD

include "dialects/moert/IR/MoertBase.td"

class Moert_Type<string name, string typeMnemonic>
    : TypeDef<Moert_Dialect, name> {
  let mnemonic = typeMnemonic;
}

def Moert_ContextType : Moert_Type<"Context", "context"> {
  let summary = "moert_context_t: the calling rank";
}

def Moert_GroupType : Moert_Type<"Group", "group"> {
  let summary = "moert_group_t: a group of ranks for collectives";
}

def Moert_WeightsType : Moert_Type<"Weights", "weights"> {
  let summary = "moert_weights_t: an open safetensors file";
}

def Moert_StatsType : Moert_Type<"Stats", "stats"> {
  let summary = "moert_model_layer_stats_t *: per-layer statistics of a step";
}

def Moert_BufferType : Moert_Type<"Buffer", "buffer"> {
  let summary = "moert_buffer_t of a static size in bytes";
  let parameters = (ins "int64_t":$bytes);
  let assemblyFormat = "`<` $bytes `>`";
  let genVerifyDecl = 1;
}

def Moert_ViewType : Moert_Type<"View", "view"> {
  let summary = "moert_view_t: `count` elements of `elementType` in a buffer";
  let description = [{
    `!moert.view<bf16, 4096>`. The element type is a storage dtype of the
    runtime: f32, f16, bf16, i32 or i64, or f8E4M3FN for the data of
    block-quantized weights (`moert.quantized_experts`).
  }];
  let parameters = (ins "::mlir::Type":$elementType, "int64_t":$count);
  let assemblyFormat = "`<` $elementType `,` $count `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Bytes of one element.
    int64_t getElementBytes() const;
    /// f32, f16 or bf16: what the runtime computes with.
    bool isFloat() const {
      ::mlir::Type t = getElementType();
      return t.isF32() || t.isF16() || t.isBF16();
    }
  }];
}

// Plain `Type` storage so that the assembly formats print view and buffer
// types in full (`!moert.view<f32, 64>`), not in the stripped `<f32, 64>`.
def Moert_View : Type<CPred<"::llvm::isa<::mlir::moert::ViewType>($_self)">,
                      "moert view">;
def Moert_Buffer : Type<CPred<"::llvm::isa<::mlir::moert::BufferType>($_self)">,
                        "moert buffer">;

#endif // MOE_DIALECT_MOERT_IR_MOERTTYPES_TD
