//===- MoertCall.td - one declaration per runtime call -----*- tablegen -*-===//
//
// A moert op that is a call of runtime/moert.h names its C function and
// lists the call's arguments in ABI order; from that list ODS generates the
// op's `buildCall`, which the one generic EmitC pattern
// (passes/Conversion/MoertToEmitC) runs. Views the call writes are
// `Moert_Out` (MemWrite), views it reads `Moert_In` (MemRead), so passes that
// count bytes read the op's memory effects.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOERT_IR_MOERTCALL_TD
#define MOE_DIALECT_MOERT_IR_MOERTCALL_TD

include "dialects/moert/IR/MoertTypes.td"
include "mlir/IR/OpBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Moert_RuntimeCallOpInterface : OpInterface<"RuntimeCallOpInterface"> {
  let cppNamespace = "::mlir::moert";
  let description = [{
    An op that is one call of a runtime/moert.h function returning
    `moert_status_t`. Declared with `Moert_CallOp`.
  }];
  let methods = [
    StaticInterfaceMethod<"The C function the op calls.", "::llvm::StringRef",
                          "getCallee">,
    StaticInterfaceMethod<[{
      The part of a MoE layer the call's kernel computes (router, gate,
      dispatch, experts, dense_ffn, combine, exchange); empty for calls that
      launch no kernel (groups, weight loading, statistics).
    }], "::llvm::StringRef", "getKernelFamily">,
  ];
}

//===----------------------------------------------------------------------===//
// Views by what the call does with them
//===----------------------------------------------------------------------===//

def Moert_In : Arg<Moert_View, "read by the call", [MemRead]>;
def Moert_OptIn : Arg<Optional<Moert_View>, "read by the call", [MemRead]>;
def Moert_Out : Arg<Moert_View, "written by the call", [MemWrite]>;
def Moert_OptOut : Arg<Optional<Moert_View>, "written by the call",
                       [MemWrite]>;
def Moert_InOut : Arg<Moert_View, "updated in place", [MemRead, MemWrite]>;

//===----------------------------------------------------------------------===//
// Encoders: C arguments built from several op arguments
//===----------------------------------------------------------------------===//

// `(Moert_X $a, $b)` in a call's argument list becomes
// `call.<method>(a, b)`: the CallBuilder method that appends the C
// argument(s) it encodes.
class Moert_Encoder<string builderMethod> {
  string method = builderMethod;
}
// &moert_gate_config_t from the routing, the expert count [and the static
// capacity].
def Moert_GateConfig : Moert_Encoder<"gateConfig">;
// &moert_ffn_desc_t: gated when a gate weight is present, plain otherwise.
def Moert_FfnDesc : Moert_Encoder<"ffnDesc">;
// &moert_packed_ffn_desc_t.
def Moert_PackedFfnDesc : Moert_Encoder<"packedFfnDesc">;
// &moert_quantized_ffn_desc_t.
def Moert_QuantizedFfnDesc : Moert_Encoder<"quantizedFfnDesc">;
// The shared expert of moert_fused_experts: its descriptor, input, output
// and token count (nullptr, absent views and 0 without one).
def Moert_SharedFfn : Moert_Encoder<"sharedFfn">;
// &moert_weight_request_t.
def Moert_WeightRequest : Moert_Encoder<"weightRequest">;
// &moert_fused_view_t from the fused tensor's shape, offset, expert stride
// and strides.
def Moert_FusedView : Moert_Encoder<"fusedView">;
// &moert_rope_config_t from a #moe.rope.
def Moert_RopeConfig : Moert_Encoder<"ropeConfig">;
// A rank table as (const int32_t *ranks, rows, columns).
def Moert_RankTable : Moert_Encoder<"rankTable">;
// The address of a local that receives the op's next result, initialised
// from the encoder's argument if it has one.
def Moert_Result : Moert_Encoder<"result">;

//===----------------------------------------------------------------------===//
// The call op class
//===----------------------------------------------------------------------===//

// ODS getter name of argument `name`: get + CamelCase.
class Moert_Getter<string name> {
  string value = "get" # !foldl("", !range(!size(name)), acc, i,
      !if(!eq(!substr(name, i, 1), "_"), acc,
          !if(!eq(!if(!eq(i, 0), "_",
                      !substr(name, !if(!eq(i, 0), 0, !sub(i, 1)), 1)), "_"),
              acc # !toupper(!substr(name, i, 1)),
              acc # !substr(name, i, 1))));
}

// Whether op argument `name` is an operand: a type constraint, bare or in
// an Arg (Moert_In, ...).
class Moert_IsOperand<dag arguments, string name> {
  bit value = !or(
      !initialized(!getdagarg<TypeConstraint>(arguments, name)),
      !and(!initialized(!getdagarg<OpVariable>(arguments, name)),
           !isa<TypeConstraint>(
               !getdagarg<OpVariable>(arguments, name).constraint)));
}

// The C++ value of op argument `name`: operands through the adaptor (the
// converted values), properties and attributes from the op.
class Moert_CallValue<dag arguments, string name> {
  string value = !if(Moert_IsOperand<arguments, name>.value, "a.", "")
      # Moert_Getter<name>.value # "()";
}

// `call.<method>(values...);` for an encoder entry.
class Moert_EncoderStatement<dag arguments, dag encoded> {
  string value = "call." # !cast<Moert_Encoder>(!getdagop(encoded)).method
      # "(" # !interleave(!foreach(j, !range(!size(encoded)),
                  Moert_CallValue<arguments, !getdagname(encoded, j)>.value),
                          ", ") # ");";
}

// One statement of buildCall for entry `index` of `callArguments`. (The
// entry is read inline: a record field holding `?` would never resolve.)
class Moert_CallStatement<dag arguments, dag callArguments, int index> {
  string value = !if(!initialized(!getdagarg<dag>(callArguments, index)),
      Moert_EncoderStatement<arguments,
                             !getdagarg<dag>(callArguments, index)>.value,
      "call.arg(" # Moert_CallValue<arguments,
                                    !getdagname(callArguments, index)>.value
          # ");");
}

// An op that calls `callee` (a runtime/moert.h function returning
// moert_status_t). `family` is its getKernelFamily().
class Moert_CallOp<string mnemonic, string callee, string family,
                   list<Trait> traits = []>
    : Moert_Op<mnemonic, traits # [Moert_RuntimeCallOpInterface]> {
  // The C arguments in ABI order: `$name` passes that op argument as it is
  // (a view, an i64, a static size, an enum); `(Moert_Encoder $a, ...)`
  // builds one or more C arguments from several. By default the op's
  // arguments are the call's, in their order.
  dag callArguments = arguments;
  // Op-specific declarations (extraClassDeclaration holds the call's).
  code extraCallOpDeclaration = "";

  let extraClassDeclaration = [{
    static ::llvm::StringRef getCallee() { return "}] # callee # [{"; }
    static ::llvm::StringRef getKernelFamily() { return "}] # family # [{"; }
    /// Appends the C arguments in ABI order (generated from callArguments).
    template <typename CallBuilderT>
    void buildCall(CallBuilderT &call, Adaptor a) {
      }] # !interleave(!foreach(i, !range(!size(callArguments)),
               Moert_CallStatement<arguments, callArguments, i>.value),
                       "\n      ") # [{
    }
  }] # extraCallOpDeclaration;
}

#endif // MOE_DIALECT_MOERT_IR_MOERTCALL_TD
