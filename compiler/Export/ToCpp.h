//===- ToCpp.h - a compiled model as one C++ source -------------*- C++ -*-===//

#ifndef MOE_COMPILER_EXPORT_TOCPP_H
#define MOE_COMPILER_EXPORT_TOCPP_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::moe {

/// Prints the EmitC module of moe-compile (convert-moert-to-emitc) as C++.
LogicalResult translateModelToCpp(ModuleOp module, llvm::raw_ostream &os);

/// Registers `--moe-to-cpp`.
void registerExportToCpp();

} // namespace mlir::moe

#endif // MOE_COMPILER_EXPORT_TOCPP_H
