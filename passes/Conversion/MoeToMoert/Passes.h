//===- Passes.h - moe to moert conversion -----------------------*- C++ -*-===//

#ifndef MOE_PASSES_CONVERSION_MOETOMOERT_PASSES_H
#define MOE_PASSES_CONVERSION_MOETOMOERT_PASSES_H

#include "dialects/moe/IR/MoeOps.h"
#include "dialects/moert/IR/MoertOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Pass/Pass.h"

namespace mlir::moe {

#define GEN_PASS_DECL
#include "passes/Conversion/MoeToMoert/Passes.h.inc"

/// convert-moe-to-moert's options as Passes.td declares them, for the
/// pipelines that offer them again (ForwardedOption).
struct ConvertMoeToMoertDeclaredOptions {
  Pass::Option<bool> &staticCapacity;
  Pass::Option<int64_t> &maxBatch, &maxSeq;
};
ConvertMoeToMoertDeclaredOptions &declaredConvertMoeToMoertOptions();

#define GEN_PASS_REGISTRATION
#include "passes/Conversion/MoeToMoert/Passes.h.inc"

} // namespace mlir::moe

#endif // MOE_PASSES_CONVERSION_MOETOMOERT_PASSES_H
