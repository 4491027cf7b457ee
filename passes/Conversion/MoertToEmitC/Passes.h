//===- Passes.h - moert to EmitC conversion ---------------------*- C++ -*-===//

#ifndef MOE_PASSES_CONVERSION_MOERTTOEMITC_PASSES_H
#define MOE_PASSES_CONVERSION_MOERTTOEMITC_PASSES_H

#include "mlir/Dialect/EmitC/IR/EmitC.h"
#include "mlir/Pass/Pass.h"

namespace mlir::moert {

#define GEN_PASS_DECL
#include "passes/Conversion/MoertToEmitC/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Conversion/MoertToEmitC/Passes.h.inc"

} // namespace mlir::moert

#endif // MOE_PASSES_CONVERSION_MOERTTOEMITC_PASSES_H
