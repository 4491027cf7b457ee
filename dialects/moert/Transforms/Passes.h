//===- Passes.h - moert passes ----------------------------------*- C++ -*-===//

#ifndef MOE_DIALECTS_MOERT_TRANSFORMS_PASSES_H
#define MOE_DIALECTS_MOERT_TRANSFORMS_PASSES_H

#include "dialects/moert/IR/MoertDialect.h"
#include "mlir/Pass/Pass.h"

namespace mlir::moert {

#define GEN_PASS_DECL
#include "dialects/moert/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "dialects/moert/Transforms/Passes.h.inc"

} // namespace mlir::moert

#endif // MOE_DIALECTS_MOERT_TRANSFORMS_PASSES_H
