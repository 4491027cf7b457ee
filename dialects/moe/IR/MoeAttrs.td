//===- MoeAttrs.td - moe dialect attributes ----------------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEATTRS_TD
#define MOE_DIALECT_MOE_IR_MOEATTRS_TD

include "dialects/moe/IR/MoeBase.td"

class Moe_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Moe_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

// A double, printed in the shortest form that round-trips.
class Moe_F64Parameter<string default>
    : APFloatParameter<"a 64-bit float"> {
  let parser = [{ [&]() -> ::mlir::FailureOr<::llvm::APFloat> {
    double value;
    if (::mlir::failed($_parser.parseFloat(value)))
      return ::mlir::failure();
    return ::llvm::APFloat(value);
  }() }];
  let printer = [{ $_printer.printFloat($_self) }];
  let defaultValue = "::llvm::APFloat(" # default # ")";
}

class Moe_EnumParameter<EnumAttrInfo info, string default>
    : EnumParameter<info> {
  let defaultValue = info.cppType # "::" # default;
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
    ```

    `capacity_factor = 0` means dropless. Local rules are checked here; the
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
    Moe_EnumParameter<Moe_DropOrder, "choice_major">:$drop_order
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    bool isDropless() const { return getCapacityFactor().isZero(); }
    bool isGroupLimited() const { return getNGroup() > 1; }
    /// Capacity per expert for `tokens` local tokens and `experts` experts:
    /// max(min_capacity, ceil(k * S / E * cf)). Only for capacity routing.
    int64_t getCapacity(int64_t tokens, int64_t experts) const;
  }];
}

#endif // MOE_DIALECT_MOE_IR_MOEATTRS_TD
